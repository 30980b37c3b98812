"""The BIP channel service (service/bip.py) behind the real driver, the simulator as the card (DESIGN §5.3, §5.4).

The transitions it drives (R9, R10, R11) and what each outcome leaves: state, number, exceptions, callback.
"""

import asyncio
import datetime as dt
import json

import pytest

from esimota.codec import bcp
from esimota.errors import PermissionDenied
from esimota.api.bip import driver as bip_driver
from esimota.ota import wire
from esimota.service import writing
from esimota.service.bip import ChannelService
from esimota.service.writing import ApplyRequest
from tests.support import cards

from ..conftest import BATCH_KEY, eid, iccid

KEY = bytes.fromhex(BATCH_KEY)


@pytest.fixture
async def port(pool):
    async with cards.endpoint(pool) as p:
        yield p


async def _state(pool, i):
    return await pool.fetchval("SELECT state FROM chips WHERE eid = $1", eid(i))


async def _number(pool, task_id):
    return await pool.fetchrow("SELECT n.* FROM numbers n JOIN tasks t ON t.number_id = n.id WHERE t.task_id = $1",
                               task_id)


async def _exceptions(pool, i):
    rows = await pool.fetch("SELECT kind, closed_at IS NOT NULL AS closed, resolution FROM exceptions e "
                            "JOIN chips c ON c.id = e.chip_id WHERE c.eid = $1 ORDER BY e.id", eid(i))
    return [(r["kind"], r["closed"]) for r in rows], [r["resolution"] for r in rows]


async def _payloads(pool, i):
    rows = await pool.fetch("SELECT payload FROM callback_outbox o JOIN tasks t ON t.id = o.task_id "
                            "JOIN chips c ON c.id = t.chip_id WHERE c.eid = $1 ORDER BY o.id", eid(i))
    return [json.loads(r[0]) for r in rows]


async def _send(port: int, frame: bytes) -> int:
    """One channel, one card frame: the reason of the CLOSE the platform answers."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        answer = await reader.read()
        assert answer[2] == bcp.CLOSE, answer
        return answer[3]
    finally:
        writer.close()


async def test_a_whole_write(pool, seeded, port):
    """§5.4: HELLO 2 → 3, resume, REPORT 01 keeps 3 (R9), REPORT 00 → 4 with binding and callback (R10)."""
    a, _ = seeded
    applied = await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    assert (await _number(pool, applied.task_id))["status"] == "reserved"  # DESIGN §3: reserved at apply
    spec = await cards.spec_for(pool, eid(1), KEY)
    dev = await cards.start_writing(spec, port)
    status = await writing.write_status(pool, a, eid=eid(1))
    assert (status.card_status, status.progress, status.write_time) == (3, 0, None)
    with pytest.raises(PermissionDenied):  # R20: no cancel while writing
        await writing.cancel_write(pool, a, eid=eid(1))
    spec.faults.no_comm = 1  # the first REPORT says 01 (§6.2.4.1)
    out = await cards.finish(dev)
    assert out.report_result == bcp.REPORT_SUCCESS and out.close_reason == bcp.CLOSE_DONE
    status = await writing.write_status(pool, a, eid=eid(1))
    assert (status.card_status, status.progress) == (4, 100) and status.write_time is not None
    number = await _number(pool, applied.task_id)
    assert number["status"] == "bound" and number["chip_id"] is not None
    [payload] = await _payloads(pool, 1)
    assert payload["write_result"] == "success" and payload["card_status"] == 4 and payload["write_time"]
    kinds, why = await _exceptions(pool, 1)
    assert kinds == [("NUMBER_NOT_COMMUNICATING", True)] and "communicates" in why[0]
    assert await pool.fetchval("SELECT remaining_flow_bytes FROM chips WHERE eid = $1", eid(1)) < 5 * 2**20
    with pytest.raises(PermissionDenied) as err:  # DESIGN §3: apply on 4 fails, the card stays 4
        await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    assert err.value.reason == "ALREADY_WRITTEN" and await _state(pool, 1) == 4
    ops = [r[0] for r in await pool.fetch("SELECT operation FROM task_events ORDER BY id")]
    assert ops == ["apply", "power_on", "power_on", "not_communicating", "succeed"]
    cntr = await pool.fetchval("SELECT cntr_reserved FROM chip_counters k JOIN chips c ON c.id = k.chip_id "
                               "WHERE c.eid = $1", eid(1))
    assert cntr == 2 * 64  # §5.3: a fresh block of platform CNTR values per session, never reused


@pytest.mark.parametrize("fault", ["chip_fault", "corrupt_readback", "lying_iccid"])
async def test_a_failure_gives_the_number_back_and_a_reapply_completes(pool, seeded, port, fault):
    """Table 2: 3 → 5 (chip fault, read-back mismatch, a REPORT 00 naming another ICCID: §5.4 steps 3, 5);
    the number is available again (DESIGN §3), the callback says failure with no write time (§7.2.2.3), and
    a re-apply of the chip with the same number completes and closes the failure's exception."""
    a, _ = seeded
    applied = await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="44"))
    spec = await cards.spec_for(pool, eid(2), KEY)
    faults = {"report_iccid": iccid(999)} if fault == "lying_iccid" else {fault: True}
    out = await cards.write(spec, port, **faults)
    assert await _state(pool, 2) == 5
    assert out.ok is (fault == "lying_iccid")  # only the liar believes it succeeded
    first = await _number(pool, applied.task_id)
    assert first["status"] == "available" and first["chip_id"] is None
    [payload] = await _payloads(pool, 2)
    assert (payload["write_result"], payload["write_time"], payload["card_status"]) == ("failure", "", 5)
    status = await writing.write_status(pool, a, task_id=applied.task_id)
    assert (status.card_status, status.write_time) == (5, None)
    kind = "CHIP_FAULT" if fault == "chip_fault" else "DATA_ERROR"
    assert (await _exceptions(pool, 2))[0] == [(kind, False)]
    if fault == "lying_iccid":  # a liar that heard no answer repeats its REPORT: judged already, CLOSE(00)
        spec.counter += 1
        assert await _send(port, wire.report_frame(spec.kid, eid(2), iccid(999), spec.counter, 0)) == 0
        assert len(await _payloads(pool, 2)) == 1 and await _state(pool, 2) == 5
    again = await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="44"))
    assert again.created and again.card_status == 2
    assert (await _number(pool, again.task_id))["id"] == first["id"]  # the pool gave the same number back
    assert (await cards.write(spec, port)).ok
    assert await _state(pool, 2) == 4 and (await _number(pool, again.task_id))["status"] == "bound"
    kinds, why = await _exceptions(pool, 2)
    assert kinds == [(kind, True)] and "re-apply" in why[0]


async def test_early_report_is_refused_until_the_script_is_acknowledged(pool, seeded, port):
    """§5.4 step 5: a REPORT before every chunk was acknowledged gets CLOSE 04, the card stays 3 with an
    exception; it resumes with HELLO(02), completes, and the exception closes itself."""
    a, _ = seeded
    await writing.apply_write(pool, a, ApplyRequest(eid(3), 1, province_code="44"))
    spec = await cards.spec_for(pool, eid(3), KEY, buffer_size=160)
    out = await cards.write(spec, port, early_report=2)
    assert out.early_close == 4 and out.ok
    ops = [r[0] for r in await pool.fetch("SELECT operation FROM task_events ORDER BY id")]
    assert ops == ["apply", "power_on", "power_on", "succeed"]
    assert (await _exceptions(pool, 3))[0] == [("EARLY_REPORT", True)]


async def test_hello_refusals(pool, seeded, port):
    """§5.4 step 1: state must be 2 or 3 (04); the verified counter advances whatever the outcome."""
    spec = await cards.spec_for(pool, eid(5), KEY)
    spec.counter = 6
    out = await cards.write(spec, port)
    assert out.close_reason == bcp.CLOSE_STATE and await _state(pool, 5) == 1
    counter = await pool.fetchval("SELECT card_counter FROM chip_counters k JOIN chips c ON c.id = k.chip_id "
                                  "WHERE c.eid = $1", eid(5))
    assert counter == 7


async def test_a_buffer_too_small_is_refused_alone(pool, seeded):
    """A card whose declared buffer cannot hold one C-APDU of its script gets CLOSE(06) and its own
    exception; the card that arrived in the same group is answered as if it were not there."""
    a, _ = seeded
    for i in (6, 7):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, province_code="44"))
    driver = bip_driver.Driver(ChannelService(pool))  # the mux and the service, fed one group by hand
    for cid, (i, buffer) in enumerate([(6, 40), (7, 1024)], 1):
        spec = await cards.spec_for(pool, eid(i), KEY)
        driver.mux.open(cid, 0.0)
        driver.mux.feed(cid, wire.hello_frame(spec.kid, eid(i), spec.temp_iccid, None, 1, buffer, 1), 0.0)
    _, _, events = driver.mux.drain()
    assert len(events) == 2
    driver.answer(await driver.service.handle(events, driver.guard.source))
    out, cuts, _ = driver.mux.drain()
    answers = {cid: frame[2:4] for cid, frame in out}
    assert answers[1] == bytes((bcp.CLOSE, bcp.CLOSE_PROTOCOL)) and 1 in cuts
    assert answers[2][:1] == bytes((bcp.COMMAND,)) and 2 not in cuts
    assert (await _state(pool, 6), await _state(pool, 7)) == (2, 3)
    assert (await _exceptions(pool, 6))[0] == [("CHANNEL_PROTOCOL_ERROR", False)]
    assert (await _exceptions(pool, 7))[0] == []


async def test_stuck_writing_closes_on_success_unless_severe(pool, seeded, port):
    """docs/operations.md: STUCK_WRITING closes itself when the card succeeds; a severe one (over 1 h, table 4)
    still needs its report (§8.3.1)."""
    from esimota.service import ops

    a, _ = seeded
    devices = {}
    for i, age in ((8, dt.timedelta(minutes=31)), (9, dt.timedelta(hours=2))):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, province_code="44"))
        devices[i] = await cards.start_writing(await cards.spec_for(pool, eid(i), KEY), port)
        await pool.execute("UPDATE tasks t SET progress_at = now() - $2::interval, started_at = now() - $2::interval "
                           "FROM chips c WHERE c.id = t.chip_id AND c.eid = $1", eid(i), age)  # time passes
    await ops.scan(pool)
    assert (await _exceptions(pool, 8))[0] == [("STUCK_WRITING", False)]
    assert (await _exceptions(pool, 9))[0] == [("STUCK_WRITING_SEVERE", False)]
    for dev in devices.values():
        await cards.finish(dev)
    kinds, why = await _exceptions(pool, 8)
    assert kinds == [("STUCK_WRITING", True)] and "succeeded" in why[0]
    assert (await _exceptions(pool, 9))[0] == [("STUCK_WRITING_SEVERE", False)]


async def test_no_resource_closes_when_a_number_is_given_back(pool, port):
    """Table 3 无可用省份资源 closes itself, with the reason, when the province has a number again — here the
    one a failed write gave back (DESIGN §3)."""
    from esimota.sim import fleetdata
    from esimota.store import clients as client_store

    fleet = await fleetdata.generate(pool, 2, numbers=1, province="45")
    client = await client_store.get(pool, fleet.client_id)
    first, second = fleet.devices
    await writing.apply_write(pool, client, ApplyRequest(first.eid, 1, province_code="45"))
    with pytest.raises(PermissionDenied) as err:
        await writing.apply_write(pool, client, ApplyRequest(second.eid, 1, province_code="45"))
    assert err.value.reason == "NO_RESOURCE"
    assert await pool.fetchval("SELECT closed_at FROM exceptions WHERE kind = 'NO_RESOURCE:45'") is None
    assert not (await cards.write(first, port, chip_fault=True)).ok
    row = await pool.fetchrow("SELECT closed_at, resolution FROM exceptions WHERE kind = 'NO_RESOURCE:45'")
    assert row["closed_at"] is not None and "given back" in row["resolution"]
    assert (await writing.apply_write(pool, client, ApplyRequest(second.eid, 1, province_code="45"))).created
