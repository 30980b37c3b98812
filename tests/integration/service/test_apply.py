"""Apply, cancel and status on a real PostgreSQL (§7.2.2, R5, R7, R8, R11, R12, R18, R20, R32)."""

import datetime as dt

import pytest

from esimota.domain.lifecycle import CardState
from esimota.errors import Conflict, ImportRejected, InvalidArgument, NotFound, PermissionDenied
from esimota.service import admin, writing
from esimota.service.writing import ApplyRequest

from ..conftest import eid, iccid, msisdn, reallocate, write_chips
from esimota.service import imports


async def state_of(pool, i):
    return await pool.fetchval("SELECT state FROM chips WHERE eid = $1", eid(i))


async def events(pool, i):
    rows = await pool.fetch("""SELECT operation, from_state, to_state, actor, reason FROM task_events
        WHERE chip_id = (SELECT id FROM chips WHERE eid = $1) ORDER BY id""", eid(i))
    return [tuple(r) for r in rows]


async def test_auto_apply_creates_task_reserves_number_and_records_event(pool, seeded):
    """R5 auto-allocation, R7: a valid apply creates a task and moves the card 1 → 2; R1 event stored."""
    a, _ = seeded
    res = await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    assert res.created and res.card_status == 2 and res.status_desc == "待开机上电"
    assert await state_of(pool, 1) == 2
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE status = 'reserved'") == 1
    assert await events(pool, 1) == [("apply", 1, 2, f"client:{a.client_id}", "write_type=1")]
    status = await writing.write_status(pool, a, task_id=res.task_id)
    assert (status.card_status, status.progress, status.write_time) == (2, 0, None)


async def test_repeat_is_idempotent_and_other_apply_conflicts(pool, seeded):
    """DESIGN §3, R18: the same apply repeated gives the same task; a different one or client is 409."""
    a, b = seeded
    first = await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="44"))
    again = await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="44"))
    assert again.task_id == first.task_id and not again.created
    with pytest.raises(Conflict) as err:
        await writing.apply_write(pool, a, ApplyRequest(eid(2), 1, province_code="11"))
    assert err.value.reason == "APPLY_CONFLICT"
    with pytest.raises(NotFound) as err:  # the chip is allocated to A: for B it does not exist (DESIGN §6)
        await writing.apply_write(pool, b, ApplyRequest(eid(2), 1, province_code="44"))
    assert err.value.reason == "EID_NOT_FOUND"
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1


async def test_no_resource_moves_card_to_apply_failed_and_opens_one_exception(pool, seeded):
    """Table 2 申请失败 and §8.2.1 table 3 (no province resource, 2 h): card 1 → 6; re-apply allowed."""
    a, _ = seeded
    for i in (3, 4):
        with pytest.raises(PermissionDenied) as err:
            await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, province_code="11"))
        assert err.value.reason == "NO_RESOURCE"
        assert await state_of(pool, i) == CardState.APPLY_FAILED
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE kind = 'NO_RESOURCE:11'") == 1
    assert (await events(pool, 3))[-1][:3] == ("apply_rejected", 1, 6)
    res = await writing.apply_write(pool, a, ApplyRequest(eid(3), 1, province_code="44"))
    assert res.card_status == 2 and await events(pool, 3) != []


async def test_designated_only_with_numbers_allocated_to_the_caller(pool, seeded):
    """R5 designated write; DESIGN §6: a number not allocated to the caller is 403."""
    a, b = seeded
    req = ApplyRequest(eid(5), 0, iccid=iccid(1), msisdn=msisdn(1))
    with pytest.raises(PermissionDenied) as err:
        await writing.apply_write(pool, a, req)
    assert err.value.reason == "NUMBER_NOT_ALLOCATED"
    await admin.allocate_numbers(pool, b.client_id, [iccid(1)])
    await reallocate(pool, b, 7, 8, 9)
    with pytest.raises(PermissionDenied):
        await writing.apply_write(pool, a, ApplyRequest(eid(6), 0, iccid=iccid(1), msisdn=msisdn(1)))
    ok = await writing.apply_write(pool, b, ApplyRequest(eid(7), 0, iccid=iccid(1), msisdn=msisdn(1)))
    assert ok.card_status == 2
    with pytest.raises(Conflict) as err:  # the number is taken now
        await writing.apply_write(pool, b, ApplyRequest(eid(8), 0, iccid=iccid(1), msisdn=msisdn(1)))
    assert err.value.reason == "NUMBER_IN_USE"
    # allocated to b already, in use: allocating it to b again is no error and changes nothing (as for chips)
    assert await admin.allocate_numbers(pool, b.client_id, [iccid(1)]) == [iccid(1)]
    assert await pool.fetchval("SELECT status FROM numbers WHERE iccid = $1", iccid(1)) != "available"
    with pytest.raises(ImportRejected) as rejected:
        await admin.allocate_numbers(pool, a.client_id, [iccid(1)])
    assert [p[1] for p in rejected.value.problems] == ["NUMBER_UNAVAILABLE"]
    with pytest.raises(InvalidArgument) as err:  # the ICCID and the MSISDN name two numbers: 400
        await writing.apply_write(pool, b, ApplyRequest(eid(9), 0, iccid=iccid(1), msisdn=msisdn(2)))
    assert err.value.reason == "NUMBER_MISMATCH"


async def test_expired_temporary_number_is_refused(pool, seeded, tmp_path):
    """R12, table 4 last row: an apply on an expired temporary number fails (NB-IoT: 180 d)."""
    a, _ = seeded
    old = dt.date.today() - dt.timedelta(days=181)
    await imports.import_chips(pool, str(write_chips(tmp_path / "old.csv", [100], open_time=old,
                                                     network="NB-IoT")), "B1")
    await admin.allocate_chips(pool, a.client_id, [eid(100)])
    with pytest.raises(PermissionDenied) as err:
        await writing.apply_write(pool, a, ApplyRequest(eid(100), 1, province_code="44"))
    assert err.value.reason == "TEMP_NUMBER_EXPIRED"
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE kind = 'TEMP_NUMBER_EXPIRED'") == 1
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE status <> 'available'") == 0


async def test_blacklisted_eid_and_imei(pool, seeded):
    """R32: blacklisted EIDs and IMEIs get no write."""
    a, _ = seeded
    await admin.blacklist(pool, "eid", eid(10), "stolen")
    from ..conftest import imei
    await admin.blacklist(pool, "imei", imei(11), "separated")
    for i, reason in ((10, "EID_BLACKLISTED"), (11, "IMEI_BLACKLISTED")):
        with pytest.raises(PermissionDenied) as err:
            await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, province_code="44"))
        assert err.value.reason == reason


async def test_cancel_only_while_awaiting_power_on(pool, seeded):
    """R20 §7.2.2.4: cancel in 2 → 1 and the number goes back; otherwise 403; unknown 404."""
    a, b = seeded
    res = await writing.apply_write(pool, a, ApplyRequest(eid(12), 1, province_code="44"))
    done = await writing.cancel_write(pool, a, task_id=res.task_id)
    assert done.task_id == res.task_id and await state_of(pool, 12) == 1
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE status = 'available'") == 10
    with pytest.raises(PermissionDenied) as err:
        await writing.cancel_write(pool, a, task_id=res.task_id)
    assert err.value.reason == "STATE_NOT_ALLOWED"
    with pytest.raises(PermissionDenied):
        await writing.cancel_write(pool, a, eid=eid(13))  # a card in 1
    with pytest.raises(NotFound):
        await writing.cancel_write(pool, a, task_id="Tnope")
    with pytest.raises(NotFound):
        await writing.cancel_write(pool, b, task_id=res.task_id)
    with pytest.raises(NotFound):
        await writing.cancel_write(pool, a, eid=eid(999))
    with pytest.raises(InvalidArgument):
        await writing.cancel_write(pool, a, eid="123")
    assert [e[:3] for e in await events(pool, 12)] == [("apply", 1, 2), ("cancel", 2, 1)]


async def test_parameter_errors(pool, seeded):
    """Table 3 row 1: EID invalid, write type missing, province missing → clear reasons."""
    a, _ = seeded
    cases = [(ApplyRequest("8904", 1, "44"), "EID_INVALID"), (ApplyRequest(eid(14), 7), "WRITE_TYPE_INVALID"),
             (ApplyRequest(eid(14), 1), "PROVINCE_REQUIRED"), (ApplyRequest(eid(14), 1, "99"), "PROVINCE_INVALID"),
             (ApplyRequest(eid(14), 0, iccid=iccid(1), msisdn="13800138000"), "MSISDN_NOT_IOT")]
    for req, reason in cases:
        with pytest.raises(InvalidArgument) as err:
            await writing.apply_write(pool, a, req)
        assert err.value.reason == reason
    with pytest.raises(NotFound):
        await writing.apply_write(pool, a, ApplyRequest(eid(5000), 1, "44"))


async def test_permission_and_disabled_client(pool, seeded):
    """DESIGN §6 per-API permissions; R28 disabled accounts do nothing."""
    a, _ = seeded
    only_chip = await admin.set_permissions(pool, a.client_id, "chip")
    with pytest.raises(PermissionDenied) as err:
        await writing.apply_write(pool, only_chip, ApplyRequest(eid(15), 1, "44"))
    assert err.value.reason == "NO_PERMISSION"
    gone = await admin.disable_client(pool, a.client_id)
    with pytest.raises(PermissionDenied) as err:
        await writing.write_status(pool, gone, eid=eid(15))
    assert err.value.reason == "CLIENT_DISABLED"
