"""Issue 15 over real sockets: re-provisioning a temporary number then a write that completes (R12), the
write's history with its channel sessions (R1, 记录查询), a chip blacklisted after its apply (R32)."""

import datetime as dt

import pytest

from esimota.codec import bcp
from esimota.errors import PermissionDenied
from esimota.service import admin, history, lists, temp_numbers
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support.bip import apply_all, worker
from tests.support.waiting import until

pytestmark = pytest.mark.pure_twin


@pytest.fixture
async def platform(db_url):
    async with worker(db_url) as p:
        yield p


async def test_reprovision_then_a_write_that_completes_with_its_history(pool, platform):
    """R12: an expired temporary number blocks the apply (card 6, TEMP_NUMBER_EXPIRED); `reprovision` gives a
    new one, closes the exception, is audited; the re-apply writes; `tasks show` has every step (R1)."""
    old = dt.date.today() - dt.timedelta(days=300)  # 4G: 270 days, expired a month ago
    fleet = await fleetdata.generate(pool, 1, open_time=old)
    spec = fleet.devices[0]
    with pytest.raises(PermissionDenied) as err:
        await apply_all(pool, fleet)
    assert err.value.reason == "TEMP_NUMBER_EXPIRED"
    [exc] = (await lists.list_exceptions(pool, open_=True, category="write")).rows
    assert (exc.kind, exc.eid) == ("TEMP_NUMBER_EXPIRED", spec.eid)

    new_iccid, new_msisdn = "89860099999999999990", "1064099999999"
    row = await temp_numbers.reprovision(pool, spec.eid, temp_iccid=new_iccid, temp_msisdn=new_msisdn,
                                         open_time=dt.date.today().isoformat(), actor="staff:root")
    assert (row.temp_iccid, row.temp_msisdn, row.state) == (new_iccid, new_msisdn, 6)
    assert row.temp_expires_on == dt.date.today() + dt.timedelta(days=270)
    closed = await lists.get_exception(pool, exc.id)
    assert closed.closed_at is not None and closed.closed_by == "staff:root"
    audit = await pool.fetchrow("SELECT actor, detail FROM audit_log WHERE action = 'chip.reprovision'")
    assert audit["actor"] == "staff:root" and new_msisdn in audit["detail"]

    [applied] = await apply_all(pool, fleet)
    spec.temp_iccid = new_iccid  # the card now carries the new temporary profile
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert out.ok and out.report_result == bcp.REPORT_SUCCESS, out
    h = await history.task_history(pool, applied.task_id)
    assert [(e.operation, e.from_state, e.to_state) for e in h.events] == [
        ("apply", 6, 2), ("power_on", 2, 3), ("succeed", 3, 4)]
    [s] = h.sessions
    assert (s.resumed, s.end_event, s.close_reason) == (False, "done", bcp.CLOSE_DONE) and s.ended_at >= s.started_at
    assert s.frames == 4  # HELLO, one COMMAND (the whole script fits the buffer), its RESPONSE, CLOSE
    charged = 10 * 1024 * 1024 - await pool.fetchval("SELECT remaining_flow_bytes FROM chips WHERE eid = $1", spec.eid)
    assert s.bytes == charged > 0  # the session's bytes are the test traffic it was charged (R3)
    same = await history.task_history(pool, spec.eid)  # by EID: the chip's latest task
    assert same.task["task_id"] == applied.task_id and same.task["state"] == 4
    # the §7.3 callback's delivery attempts join the history as the dispatcher makes them (its target
    # here, port 9 on loopback, never answers 200: each attempt is recorded with why)
    attempts = await until(lambda: _attempts(pool, applied.task_id), "the callback attempt", 30)
    event_id = await pool.fetchval("SELECT event_id FROM callback_outbox")
    assert attempts[0].event_id == event_id and attempts[0].outcome != "delivered"


async def test_a_dropped_channel_is_two_sessions_the_second_resumed(pool, platform):
    """DESIGN §5.4 step 4 in the history: the cut session ends 'gone', the HELLO(02) one is marked resumed."""
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(drop_at_frame=1))
    [applied] = await apply_all(pool, fleet)
    out = await Device(fleet.devices[0], "127.0.0.1", platform.ports["bip"]).run()
    assert out.ok, out
    sessions = await until(lambda: _ended(pool, applied.task_id, 2), "two sessions ended", 30)
    assert [(s.resumed, s.end_event) for s in sessions] == [(False, "gone"), (True, "done")]
    events = (await history.task_history(pool, applied.task_id)).events
    assert [e.reason for e in events if e.operation == "power_on"] == ["power-on", "resume after a drop"]


async def _attempts(pool, task_id):
    return (await history.task_history(pool, task_id)).callback_attempts


async def _ended(pool, task_id, n):
    sessions = (await history.task_history(pool, task_id)).sessions
    return sessions if len(sessions) == n and all(s.ended_at for s in sessions) else None


@pytest.mark.parametrize("kind", ["eid", "imei"])
async def test_a_chip_blacklisted_after_its_apply_is_refused_at_hello(pool, platform, kind):
    """R32: the blacklist is checked again at HELLO: CLOSE 04, the attempt recorded, a severe exception,
    the card stays 待开机上电 and no session starts."""
    fleet = await fleetdata.generate(pool, 1)
    spec = fleet.devices[0]
    [applied] = await apply_all(pool, fleet)
    await admin.blacklist(pool, kind, spec.eid if kind == "eid" else spec.imei, "reported stolen")
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert not out.ok and out.close_reason == bcp.CLOSE_STATE
    attempt = await pool.fetchrow("SELECT close_reason, detail FROM bip_attempts WHERE eid = $1", spec.eid)
    assert (attempt["close_reason"], attempt["detail"]) == (bcp.CLOSE_STATE, "blacklisted")
    [exc] = (await lists.list_exceptions(pool, open_=True)).rows
    assert (exc.kind, exc.severity, exc.eid, exc.task_id) == ("BLACKLISTED_AT_HELLO", "severe", spec.eid,
                                                              applied.task_id)
    assert await pool.fetchval("SELECT state FROM chips WHERE eid = $1", spec.eid) == 2
    assert (await history.task_history(pool, applied.task_id)).sessions == []
