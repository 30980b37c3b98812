"""The BIP layer's database functions (DESIGN §5.3, §5.4) and the transitions they drive (R9, R10, R11)."""

import json

import pytest

from esimota.errors import PermissionDenied
from esimota.service import channel, writing
from esimota.service.channel import ProgressUpdate
from esimota.service.writing import ApplyRequest

from ..conftest import BATCH_KEY, eid, iccid, imsi, ki, opc


async def started(pool, client, i, counter=1):
    await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, province_code="44"))
    out = await channel.begin_write(pool, eid(i), counter)
    assert out.close_reason == channel.CLOSE_OK and out.state == 3
    return out.job


async def test_a_whole_write(pool, seeded):
    """§5.4: HELLO 2 → 3, progress, REPORT 01 keeps 3 (R9), REPORT 00 → 4 with binding and callback (R10)."""
    a, _ = seeded
    chip = await channel.load_chip(pool, eid(1))
    assert chip.master_key == bytes.fromhex(BATCH_KEY) and chip.card_counter == -1 and chip.state == 1
    assert await channel.load_chip(pool, eid(4444)) is None
    job = await started(pool, a, 1, counter=10)
    n = int(job.iccid[6:19])
    assert (job.imsi, job.ki, job.opc) == (imsi(n), bytes.fromhex(ki(n)), bytes.fromhex(opc(n)))
    assert job.ki.hex() not in repr(job) and job.imsi not in repr(job)  # DESIGN §2
    assert (await channel.begin_write(pool, eid(1), 10)).close_reason == channel.CLOSE_REPLAYED
    await channel.record_progress(pool, [ProgressUpdate(job.task_pk, job.chip_id, 5, 10, flow_bytes=1000)])
    assert (await writing.write_status(pool, a, eid=eid(1))).progress == 45
    with pytest.raises(PermissionDenied):  # R20: no cancel while writing
        await writing.cancel_write(pool, a, eid=eid(1))
    resume = await channel.begin_write(pool, eid(1), 11)
    assert resume.job.resumed and resume.job.script_acked == 5
    out = await channel.record_report(pool, eid(1), 12, channel.RESULT_NO_SERVICE, diagnostic="no attach")
    assert (out.close_reason, out.state) == (0, 3)
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE kind = 'NUMBER_NOT_COMMUNICATING' "
                               "AND closed_at IS NULL") == 1
    out = await channel.record_report(pool, eid(1), 13, channel.RESULT_SUCCESS, job.iccid)
    assert (out.close_reason, out.state, out.duplicate) == (0, 4, False)
    status = await writing.write_status(pool, a, eid=eid(1))
    assert (status.card_status, status.progress) == (4, 100) and status.write_time is not None
    assert await pool.fetchval("SELECT status FROM numbers WHERE iccid = $1", job.iccid) == "bound"
    payload = json.loads(await pool.fetchval("SELECT payload FROM callback_outbox"))
    assert payload["write_result"] == "success" and payload["card_status"] == 4 and payload["eid"] == eid(1)
    again = await channel.record_report(pool, eid(1), 14, channel.RESULT_SUCCESS, job.iccid)
    assert again.duplicate and again.close_reason == 0
    assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == 1
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE closed_at IS NULL") == 0
    assert await pool.fetchval("SELECT remaining_flow_bytes FROM chips WHERE eid = $1", eid(1)) == 5 * 2**20 - 1000
    with pytest.raises(PermissionDenied) as err:  # DESIGN §3: apply on 4 fails, the card stays 4
        await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    assert err.value.reason == "ALREADY_WRITTEN"
    assert await pool.fetchval("SELECT state FROM chips WHERE eid = $1", eid(1)) == 4
    ops = [r[0] for r in await pool.fetch("SELECT operation FROM task_events ORDER BY id")]
    assert ops == ["apply", "power_on", "power_on", "not_communicating", "succeed"]


async def test_failures_release_the_number_and_allow_reapply(pool, seeded):
    """Table 2: 3 → 5 on chip fault / data error (table 4), then re-apply 5 → 2."""
    a, _ = seeded
    job = await started(pool, a, 2)
    out = await channel.record_report(pool, eid(2), 2, channel.RESULT_CHIP_FAULT, diagnostic="EEPROM")
    assert out.state == 5
    assert await pool.fetchval("SELECT status FROM numbers WHERE iccid = $1", job.iccid) == "available"
    assert (await channel.record_report(pool, eid(2), 3, channel.RESULT_CHIP_FAULT)).duplicate
    assert (await channel.record_report(pool, eid(2), 4, channel.RESULT_SUCCESS)).close_reason == channel.CLOSE_STATE
    res = await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="44"))
    assert res.card_status == 2
    await channel.begin_write(pool, eid(2), 5)
    out = await channel.fail_write(pool, eid(2), channel.RESULT_DATA_ERROR, "read-back mismatch")
    assert out.state == 5
    wrong = await started(pool, a, 3)
    out = await channel.record_report(pool, eid(3), 2, channel.RESULT_SUCCESS, iccid(999))
    assert out.state == 5 and wrong.task_id
    kinds = {r[0] for r in await pool.fetch("SELECT kind FROM exceptions")}
    assert kinds == {"CHIP_FAULT", "DATA_ERROR"}
    results = [json.loads(r[0])["write_result"] for r in await pool.fetch("SELECT payload FROM callback_outbox")]
    assert results == ["failure"] * 3


async def test_hello_refusals(pool, seeded):
    """§5.4 step 1: state must be 2 or 3 (04); test traffic left (05); the counter still advances."""
    a, _ = seeded
    out = await channel.begin_write(pool, eid(5), 7)
    assert (out.close_reason, out.state) == (channel.CLOSE_STATE, 1)
    assert (await channel.load_chip(pool, eid(5))).card_counter == 7
    await writing.apply_write(pool, a, ApplyRequest(eid(6), 1, province_code="44"))
    await pool.execute("UPDATE chips SET remaining_flow_bytes = 0 WHERE eid = $1", eid(6))
    assert (await channel.begin_write(pool, eid(6), 1)).close_reason == channel.CLOSE_NO_TRAFFIC


async def test_platform_counter_blocks_strictly_increase(pool, seeded):
    """§5.3: the platform CNTR per chip strictly increases across sessions and restarts."""
    first = await channel.reserve_cntr(pool, eid(7), 100)
    second = await channel.reserve_cntr(pool, eid(7), 50)
    assert first == (1, 100) and second == (101, 150)
