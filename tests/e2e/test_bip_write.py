"""A write end to end over BCP/1 (DESIGN §5.4; R1–R4, R8, R9): apply, power-on, script, REPORT.

Real sockets on 127.0.0.1, the real platform worker, the real PostgreSQL, the simulated device.
"""

import asyncio
import datetime as dt
import sys

import pytest

from esimota.codec import bcp
from esimota.ota import personalise as P
from esimota.ota import wire
from esimota.sim import fleetdata
from esimota.sim.card import ADF, MF
from esimota.sim.device import Device, Faults
from tests.support.bip import apply_all, gather_limited, worker

pytestmark = pytest.mark.pure_twin  # the multiplexer runs compiled, and as its twin in the ESIMOTA_PURE=1 leg


@pytest.fixture
async def platform(db_url):
    async with worker(db_url) as p:
        yield p


async def _state(pool, eid):
    return await pool.fetchval("SELECT state FROM chips WHERE eid = $1", eid)


async def _events(pool, eid):
    rows = await pool.fetch("SELECT operation, from_state, to_state FROM task_events e JOIN chips c "
                            "ON c.id = e.chip_id WHERE c.eid = $1 ORDER BY e.id", eid)
    return [(r["operation"], r["from_state"], r["to_state"]) for r in rows]


async def test_write_end_to_end_card_holds_the_number(pool, platform):
    fleet = await fleetdata.generate(pool, 1)
    [applied] = await apply_all(pool, fleet)
    spec = fleet.devices[0]
    dev = Device(spec, "127.0.0.1", platform.ports["bip"])
    out = await dev.run()
    assert out.ok and out.report_result == bcp.REPORT_SUCCESS and out.close_reason == bcp.CLOSE_DONE, out
    row = await pool.fetchrow("SELECT n.msisdn, n.iccid, n.status, t.state, t.task_id, c.active_iccid FROM tasks t "
                              "JOIN numbers n ON n.id = t.number_id JOIN chips c ON c.id = t.chip_id "
                              "WHERE c.eid = $1", spec.eid)
    assert row["state"] == 4 and row["status"] == "bound" and row["task_id"] == applied.task_id
    assert await _state(pool, spec.eid) == 4 and row["active_iccid"] == row["iccid"]
    num = next(n for n in fleet.numbers if n["iccid"] == row["iccid"])
    # the card holds exactly the number's ICCID, IMSI, ACC, MSISDN and keys
    assert dev.files.read(MF, 0x2FE2) == P.ef_iccid(num["iccid"])
    assert dev.files.read(ADF, 0x6F07) == P.ef_imsi(num["imsi"])
    assert dev.files.read(ADF, 0x6F78) == P.ef_acc(num["imsi"])
    assert dev.files.read(ADF, 0x6F40)[:14] == P.ef_msisdn(num["msisdn"])
    assert (dev.applet.ki, dev.applet.opc) == (num["ki"], num["opc"])
    assert await _events(pool, spec.eid) == [("apply", 1, 2), ("power_on", 2, 3), ("succeed", 3, 4)]
    payload = await pool.fetchval("SELECT payload FROM callback_outbox o JOIN tasks t ON t.id = o.task_id "
                                  "WHERE t.task_id = $1", applied.task_id)
    assert '"write_result": "success"' in payload and num["msisdn"] in payload
    progress = await pool.fetchrow("SELECT script_acked, script_total, script_done FROM tasks WHERE task_id = $1",
                                   applied.task_id)
    assert tuple(progress) == (24, 24, True)
    flow = await pool.fetchval("SELECT remaining_flow_bytes FROM chips WHERE eid = $1", spec.eid)
    assert flow < 10 * 1024 * 1024  # test traffic was charged (R3)


@pytest.mark.parametrize("fault,reason", [("bad_mac", bcp.CLOSE_BAD_MAC), ("unknown", bcp.CLOSE_UNKNOWN_CARD),
                                         ("no_apply", bcp.CLOSE_STATE), ("no_flow", bcp.CLOSE_NO_TRAFFIC)])
async def test_hello_refusals_close_with_their_reason(pool, platform, fault, reason):
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(bad_mac=fault == "bad_mac"))
    spec = fleet.devices[0]
    if fault != "no_apply":
        await apply_all(pool, fleet)
    if fault == "unknown":
        spec.eid = fleetdata.make_eid(99_999_999)
    if fault == "no_flow":
        await pool.execute("UPDATE chips SET remaining_flow_bytes = 0 WHERE eid = $1", spec.eid)
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert out.close_reason == reason and not out.ok
    if fault == "unknown":  # no chip, no key: counted per source and minute, not a row per frame
        recorded = await pool.fetchval("SELECT reason FROM bip_refusals WHERE source = '127.0.0.1'")
    else:
        recorded = await pool.fetchval("SELECT close_reason FROM bip_attempts WHERE eid = $1", spec.eid)
    assert recorded == reason
    if fault != "unknown":
        assert await _state(pool, spec.eid) == (1 if fault == "no_apply" else 2)


async def test_replayed_counter_is_refused_but_counter_kept(pool, platform):
    fleet = await fleetdata.generate(pool, 1)
    await apply_all(pool, fleet)
    spec = fleet.devices[0]
    await pool.execute("UPDATE chip_counters SET card_counter = 10 FROM chips c "
                       "WHERE c.id = chip_counters.chip_id AND c.eid = $1", spec.eid)
    spec.counter = 4
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert out.close_reason == bcp.CLOSE_REPLAYED
    assert await _state(pool, spec.eid) == 2


async def test_chip_fault_fails_the_write(pool, platform):
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(chip_fault=True))
    await apply_all(pool, fleet)
    spec = fleet.devices[0]
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert not out.ok and out.close_reason == bcp.CLOSE_DONE and not out.report_result
    assert await _state(pool, spec.eid) == 5
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM exceptions")]
    assert kinds == ["CHIP_FAULT"]
    assert (await _events(pool, spec.eid))[-1] == ("fail", 3, 5)


async def test_another_device_is_card_device_separation(pool, platform):
    """R32: a HELLO from another IMEI than the bound one raises the separation alert; the write goes on."""
    fleet = await fleetdata.generate(pool, 1)
    await apply_all(pool, fleet)
    spec = fleet.devices[0]
    spec.imei = fleetdata.make_imei(777)
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert out.ok
    alerts = await pool.fetch("SELECT * FROM alerts")
    assert len(alerts) == 1 and fleetdata.make_imei(777) in str(dict(alerts[0]))


async def test_readback_mismatch_is_a_data_error(pool, platform):
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(corrupt_readback=True))
    await apply_all(pool, fleet)
    out = await Device(fleet.devices[0], "127.0.0.1", platform.ports["bip"]).run()
    assert not out.ok
    assert await _state(pool, fleet.devices[0].eid) == 5
    assert await pool.fetchval("SELECT result FROM tasks") == "data error"


async def test_number_not_communicating_stays_writing_then_succeeds(pool, platform):
    """§6.2.4.1 / R9: REPORT 01 keeps the card in 写卡中 and opens an exception; a later 00 succeeds."""
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(no_comm=1))
    await apply_all(pool, fleet)
    spec = fleet.devices[0]
    out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
    assert out.ok and dev_reports(out) >= 2
    assert await pool.fetchval("SELECT kind FROM exceptions") == "NUMBER_NOT_COMMUNICATING"
    # table 4: 1 h to handle it
    assert await pool.fetchval("SELECT deadline_at - opened_at FROM exceptions") == dt.timedelta(hours=1)
    ops = [e[0] for e in await _events(pool, spec.eid)]
    assert ops == ["apply", "power_on", "not_communicating", "succeed"]


def dev_reports(out) -> int:
    return out.channels - 1


async def test_drop_at_every_frame_resumes_and_completes(pool, platform):
    """§5.4.4: a dropped channel resumes at the first chunk not acknowledged."""
    n = 8
    fleet = await fleetdata.generate(pool, n, buffer_size=160,
                                     faults=lambda i: Faults(drop_at_frame=i + 1))
    await apply_all(pool, fleet)
    for spec in fleet.devices:
        out = await Device(spec, "127.0.0.1", platform.ports["bip"]).run()
        assert out.ok, (spec.faults.drop_at_frame, out)
    states = [r["state"] for r in await pool.fetch("SELECT state FROM chips")]
    assert states == [4] * n
    bound = await pool.fetchval("SELECT count(DISTINCT chip_id) FROM numbers WHERE status = 'bound'")
    assert bound == n


async def _hostile_channel(port: int, frame: bytes) -> bytes:
    """One channel, one bad frame: everything the platform answers until it cuts the channel."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(frame)
        return await reader.read()
    except ConnectionError:  # cut unread (ota.guard)
        return b""
    finally:
        writer.close()


async def test_unknown_card_hellos_are_counted_not_stored_and_cut_when_over_the_limit(pool, db_url):
    """Issue 14: 10,000 HELLOs of unknown cards from one address leave no bip_attempts row and at most a
    few dozen count rows (one per source, reason and minute) holding exactly the frames answered
    CLOSE(01); past the source's token bucket (20/s) channels are cut without a database write."""
    async with worker(db_url) as platform:
        hello = wire.hello_frame(bytes(16), fleetdata.make_eid(99_999_997), "89860000000000000000", None, 1, 512, 1)
        answers = await gather_limited([_hostile_channel(platform.ports["bip"], hello) for _ in range(10_000)])
        refused = sum(1 for a in answers if a[2:4] == bytes((bcp.CLOSE, bcp.CLOSE_UNKNOWN_CARD)))
        cut = sum(1 for a in answers if a == b"")
        assert refused + cut == 10_000 and cut > 0 and platform.bip_driver.guard.cut >= cut
    assert await pool.fetchval("SELECT count(*) FROM bip_attempts") == 0
    rows = await pool.fetch("SELECT source, reason, frames FROM bip_refusals")
    assert 1 <= len(rows) <= 36 and {(r["source"], r["reason"]) for r in rows} == {("127.0.0.1", 1)}
    assert sum(r["frames"] for r in rows) == refused


async def test_garbage_before_any_hello_is_counted_not_stored(pool, db_url):
    """Issue 14's attack run: malformed frames need no key and no EID, yet each one refused before a HELLO
    verified (CLOSE 06) added a bip_attempts row naming no chip (20 a second per address, kept for months).
    They are now counted per source, reason and minute like unknown cards; no bip_attempts row."""
    async with worker(db_url) as platform:
        bad = [bytes((0, 3, 0x07, 1, 2)), bytes((0, 0)), bytes((0, 4, 0x03, 0, 0, 0))]
        answers = await gather_limited([_hostile_channel(platform.ports["bip"], bad[i % 3]) for i in range(2000)])
        refused = sum(1 for a in answers if a[2:4] == bytes((bcp.CLOSE, bcp.CLOSE_PROTOCOL)))
        assert refused > 0 and refused + sum(1 for a in answers if a == b"") == 2000
    assert await pool.fetchval("SELECT count(*) FROM bip_attempts") == 0
    rows = await pool.fetch("SELECT source, reason, frames FROM bip_refusals")
    assert 1 <= len(rows) <= 6 and {(r["source"], r["reason"]) for r in rows} == {("127.0.0.1", bcp.CLOSE_PROTOCOL)}
    assert sum(r["frames"] for r in rows) == refused


async def test_hostile_channels_leave_no_state_behind(pool, db_url):
    """RELIABILITY.md (hostile BIP input): after 3,000 channels of bad frames, 200 at a time so that
    they crowd the same slots of the timing wheel, the worker holds what it held before — no channel,
    no transport, no deadline, and no slot of the wheel still holding the table it grew to. (The
    per-address refusal limit is off here: every channel is to reach the multiplexer.)"""
    async with worker(db_url, bip_refusals_per_s=0) as platform:
        await _hostile_channels_leave_no_state_behind(platform)


async def _hostile_channels_leave_no_state_behind(platform):
    driver = platform.bip_driver
    wheel = driver.mux.wheel
    tables = sum(sys.getsizeof(s) for s in wheel.slots)
    port = platform.ports["bip"]
    bad = [bytes((0, 3, 0x07, 1, 2)),  # no such frame type: CLOSE(06)
           bytes((0, 0)),  # length 0: CLOSE(06)
           bytes((0, 4, bcp.RESPONSE, 0, 0, 0)),  # a RESPONSE before any HELLO: CLOSE(06)
           wire.hello_frame(bytes(16), fleetdata.make_eid(99_999_998), "89860000000000000000", None, 1, 512, 1)]
    answers = await gather_limited([_hostile_channel(port, bad[i % len(bad)]) for i in range(3000)], limit=200)
    assert all(a[2:3] == bytes((bcp.CLOSE,)) for a in answers)
    assert {a[3] for a in answers} == {1, 6}  # unknown chip, protocol error
    for _ in range(200):  # the worker's side of the last cuts runs on this loop too
        if not driver.transports and not driver.mux.channels:
            break
        await asyncio.sleep(0.01)
    assert not driver.transports and not driver.mux.channels and not driver.mux.by_eid
    assert len(wheel) == 0 and not wheel.slot_of
    assert sum(sys.getsizeof(s) for s in wheel.slots) == tables
