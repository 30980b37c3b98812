"""Each exception of §8 tables 3–6 (R22, R23) raised by provoking its cause through the public interfaces.

Real sockets, the real worker (HTTP bridge without TLS, BIP endpoint), the simulator, the real PostgreSQL.
The detectors run as `ops.scan` (what the watchdog job runs every minute) so the tests need not wait.
"""

from __future__ import annotations

import asyncio
import datetime as dt

import aiohttp
import pytest

from esimota.domain import exceptions as catalogue
from esimota.errors import InvalidArgument
from esimota.service import ops, ops_notify
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support import cards
from tests.support.bip import apply_all, worker
from tests.support.receiver import Receiver
from tests.support.waiting import until_query


@pytest.fixture
async def platform(db_url):
    async with worker(db_url) as p:
        yield p


async def _open(pool, kind_like: str) -> list:
    return await pool.fetch("SELECT * FROM exceptions WHERE kind LIKE $1 ORDER BY id", kind_like)


def _deadline(row) -> dt.timedelta:
    return row["deadline_at"] - row["opened_at"]


async def _http(platform, path: str, **params) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as http:
        async with http.get(f"http://127.0.0.1:{platform.ports['http']}{path}", params=params) as r:
            return r.status, await r.json()


async def _flush(platform) -> None:
    await platform.api.call_log.flush()  # the call log is written behind every 0.2 s (R27)


async def test_stuck_writing_general_then_severe_notified_and_closed_with_report(pool, platform, monkeypatch):
    """DESIGN §3 / table 4 row 1: 30 min general, 1 h severe; §8.3.1: reported by webhook, closed by report."""
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(drop_at_frame=2))
    await apply_all(pool, fleet)
    out = await Device(fleet.devices[0], "127.0.0.1", platform.ports["bip"], max_channels=1).run()
    assert not out.ok and await pool.fetchval("SELECT state FROM chips") == 3
    await until_query(pool, "SELECT script_acked > 0 FROM tasks")  # progress is written behind (DESIGN §5.5)
    await pool.execute("UPDATE tasks SET progress_at = now() - interval '31 minutes'")
    res = await ops.scan(pool)
    [row] = await _open(pool, "STUCK%")
    assert res.opened == {"STUCK_WRITING": 1} and row["severity"] == "general" and row["class"] == "write"
    assert _deadline(row) == dt.timedelta(minutes=30)
    await pool.execute("UPDATE tasks SET progress_at = now() - interval '61 minutes'")
    assert (await ops.scan(pool)).escalated == 1
    [row] = await _open(pool, "STUCK%")
    assert (row["kind"], row["severity"]) == ("STUCK_WRITING_SEVERE", "severe") and row["escalated_at"]

    hook = Receiver()
    monkeypatch.setenv("ESIMOTA_NOTIFY_URL", await hook.start("/hook"))
    monkeypatch.setenv("ESIMOTA_NOTIFY_SECRET", "s3cret")
    try:
        assert await ops_notify.queue(pool) == 1
        async with aiohttp.ClientSession() as session:
            assert await ops_notify.deliver(pool, session) == 1
    finally:
        await hook.stop()
    body, headers = hook.bodies[0], hook.headers[0]
    assert body["kind"] == "STUCK_WRITING_SEVERE" and body["eid"] == fleet.devices[0].eid
    assert len(headers["X-Esimota-Signature"]) == 64 and "s3cret" not in str(body)
    assert await pool.fetchval("SELECT reported_at IS NOT NULL FROM exceptions WHERE id = $1", row["id"])
    with pytest.raises(InvalidArgument) as exc:
        await ops.close(pool, row["id"], "staff:op", "device re-powered")
    assert exc.value.reason == "REPORT_REQUIRED"
    closed = await ops.close(pool, row["id"], "staff:op", "device re-powered", "root cause: antenna")
    assert closed["closed_at"] and closed["report"] == "root cause: antenna"


async def test_no_province_resource_one_then_many_then_replenished(pool, platform):
    """Table 3 row 3: one province 2 h general; several provinces 4 h severe; replenished → closed."""
    fleet = await _partner_fleet(pool, 3, numbers=0)
    for eid, province in zip([d.eid for d in fleet.devices], ("11", "12")):
        code, body = await _apply_http(platform, fleet, eid, province)
        assert (code, body["error"]) == (403, "NO_RESOURCE"), body
    await ops.scan(pool)
    rows = {r["kind"]: r for r in await _open(pool, "NO_RESOURCE%")}
    assert set(rows) == {"NO_RESOURCE:11", "NO_RESOURCE:12", "NO_RESOURCE_MULTI"}
    assert _deadline(rows["NO_RESOURCE:11"]) == dt.timedelta(hours=2)
    assert rows["NO_RESOURCE_MULTI"]["severity"] == "severe" and _deadline(rows["NO_RESOURCE_MULTI"]) == dt.timedelta(hours=4)
    await fleetdata.generate(pool, 0, numbers=1, province="11", seed=7)
    assert (await ops.scan(pool)).resolved == 1
    assert await pool.fetchval("SELECT closed_at IS NOT NULL FROM exceptions WHERE kind = 'NO_RESOURCE:11'")


async def _partner_fleet(pool, count: int, **kw):
    """A fleet whose client the API's client cache can see (it reloads at most every 0.25 s)."""
    fleet = await fleetdata.generate(pool, count, **kw)
    await asyncio.sleep(0.3)
    return fleet


async def _apply_http(platform, fleet, eid: str, province: str | None, write_type: int = 1) -> tuple[int, dict]:
    _, tok = await _http(platform, "/api/v1/auth/token", client_id=fleet.client_id, client_secret=fleet.client_secret)
    params = {"token": tok["token"], "eid": eid, "write_type": write_type}
    if province:
        params["province_code"] = province
    return await _http(platform, "/api/v1/write/apply", **params)


async def test_bip_chip_fault_not_communicating_no_flow_and_bad_mac(pool, platform):
    """Table 4 (芯片故障 24 h, 运营号无法通信 1 h) and table 6 (流量耗尽 1 h, 模组无法交互 24 h) over BCP/1."""
    faults = [Faults(chip_fault=True), Faults(no_comm=1), Faults(), Faults(bad_mac=True)]
    fleet = await fleetdata.generate(pool, 4, faults=lambda i: faults[i])
    await apply_all(pool, fleet)
    await pool.execute("UPDATE chips SET remaining_flow_bytes = 0 WHERE eid = $1", fleet.devices[2].eid)
    devices = [Device(d, "127.0.0.1", platform.ports["bip"], max_channels=2) for d in fleet.devices]
    await asyncio.gather(*(d.run() for d in devices))
    await ops.scan(pool)
    got = {catalogue.base_kind(r["kind"]): r for r in await _open(pool, "%")}
    assert {"CHIP_FAULT", "NUMBER_NOT_COMMUNICATING", "NO_TEST_FLOW", "CHANNEL_AUTH_FAILED"} <= set(got)
    assert _deadline(got["CHIP_FAULT"]) == dt.timedelta(hours=24)
    assert _deadline(got["NUMBER_NOT_COMMUNICATING"]) == dt.timedelta(hours=1)  # reconciled with table 4
    assert got["NO_TEST_FLOW"]["class"] == "terminal" and _deadline(got["NO_TEST_FLOW"]) == dt.timedelta(hours=1)
    assert got["CHANNEL_AUTH_FAILED"]["class"] == "terminal"
    again = await ops.scan(pool)
    assert again.opened == {}  # the cursor over bip_attempts: nothing is opened twice


async def test_http_refused_applies_token_and_whitelist_bursts(pool, platform, monkeypatch):
    """Table 3 rows 1–2 and table 5 rows 1–2 from the call log (R27): refused applies, bursts of 401 and 403."""
    monkeypatch.setattr(ops, "TOKEN_BURST", 3)
    monkeypatch.setattr(ops, "WHITELIST_BURST", 2)
    fleet = await _partner_fleet(pool, 2)
    code, body = await _apply_http(platform, fleet, fleet.devices[0].eid, None)
    assert code == 400, body
    await apply_all(pool, fleet, eids=[fleet.devices[1].eid])  # written through the channel: state 4
    assert (await Device(fleet.devices[1], "127.0.0.1", platform.ports["bip"]).run()).ok
    code, body = await _apply_http(platform, fleet, fleet.devices[1].eid, "44")
    assert (code, body["error"]) == (403, "ALREADY_WRITTEN")
    for _ in range(3):
        assert (await _http(platform, "/api/v1/write/provinces", token="forged"))[0] == 401
    walled = await fleetdata.create_client(pool, name="walled", whitelist=("10.0.0.0/8",))
    await asyncio.sleep(0.3)
    for _ in range(2):
        code, body = await _http(platform, "/api/v1/auth/token", client_id=walled[0], client_secret=walled[2])
        assert (code, body["error"]) == (403, "IP_NOT_WHITELISTED")
    await _flush(platform)
    res = await ops.scan(pool)
    assert {"APPLY_INVALID", "ALREADY_WRITTEN", "TOKEN_FAILURES", "NOT_WHITELISTED"} <= set(res.opened), res
    rows = {catalogue.base_kind(r["kind"]): r for r in await _open(pool, "%")}
    assert rows["APPLY_INVALID"]["closed_at"] and rows["TOKEN_FAILURES"]["closed_at"]  # 即时处理
    assert rows["NOT_WHITELISTED"]["kind"] == "NOT_WHITELISTED:127.0.0.1"  # the refused address is the subject
    assert _deadline(rows["NOT_WHITELISTED"]) == dt.timedelta(minutes=30) and not rows["NOT_WHITELISTED"]["closed_at"]
    assert (await ops.scan(pool)).opened == {}  # one per subject and window


async def test_callbacks_failing_and_expired_temporary_number(pool, platform, monkeypatch):
    """Table 5 row 3 (回调信息接收失败, 1 h) while retries go on; table 4 last row (临时号码超期, 24 h)."""
    monkeypatch.setenv("ESIMOTA_CALLBACK_DELAY_SCALE", "0.001")
    fleet = await fleetdata.generate(pool, 2)
    await apply_all(pool, fleet)
    out = await Device(fleet.devices[0], "127.0.0.1", platform.ports["bip"]).run()
    assert out.ok
    for _ in range(100):
        if await pool.fetchval("SELECT attempts FROM callback_outbox") >= 3:
            break
        await asyncio.sleep(0.1)
    await pool.execute("UPDATE chips SET temp_expires_on = current_date - 1 WHERE eid = $1", fleet.devices[1].eid)
    await ops.scan(pool)
    rows = {catalogue.base_kind(r["kind"]): r for r in await _open(pool, "%")}
    assert rows["CALLBACK_FAILED"]["class"] == "interface" and _deadline(rows["CALLBACK_FAILED"]) == dt.timedelta(hours=1)
    assert _deadline(rows["TEMP_NUMBER_EXPIRED"]) == dt.timedelta(hours=24)


def test_catalogue_covers_tables_3_to_6():
    """R22/R23: every class is present, severities and deadlines as tables 3–6 give them."""
    assert {k.cls for k in catalogue.CATALOGUE.values()} == set(catalogue.CLASSES)
    assert catalogue.lookup("no_resource:44").deadline == dt.timedelta(hours=2)
    assert catalogue.lookup("chip_fault").deadline == dt.timedelta(hours=24)
    assert catalogue.lookup("STUCK_WRITING").deadline == dt.timedelta(minutes=30)
    with pytest.raises(InvalidArgument):
        catalogue.lookup("NOPE")


async def test_jobs_run_in_the_worker_and_metrics_show_quality(db_url, pool, monkeypatch):
    """The watchdog job of `esimota serve` opens a stuck-writing exception by itself; /metrics has R29 gauges."""
    for name in ("WATCHDOG", "QUALITY", "MONITOR", "NOTIFY"):
        monkeypatch.setenv(f"ESIMOTA_{name}_INTERVAL", "0.2")
    fleet = await fleetdata.generate(pool, 1)
    await apply_all(pool, fleet)
    async with cards.endpoint(pool) as port:
        await cards.start_writing(fleet.devices[0], port)  # HELLO accepted, then silence: 写卡中
    await pool.execute("UPDATE tasks SET started_at = now() - interval '2 hours', "
                       "progress_at = now() - interval '2 hours'")  # two hours pass
    async with worker(db_url) as p:
        for _ in range(50):
            if await pool.fetchval("SELECT severity FROM exceptions WHERE kind LIKE 'STUCK%'") == "severe":
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(0.5)
        code, text = 0, ""
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{p.ports['admin_http']}/metrics") as r:
                code, text = r.status, await r.text()
    assert await pool.fetchval("SELECT kind FROM exceptions") == "STUCK_WRITING_SEVERE"
    # open exceptions by class, severity and whether their deadline passed (issue 17)
    assert code == 200 and 'esimota_exceptions_open{class="write",overdue="false",severity="severe"} 1.0' in text
    assert 'esimota_tasks_waiting{state="writing"} 1.0' in text
    assert "esimota_quality_write_success_ratio" in text
