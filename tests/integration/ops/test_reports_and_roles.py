"""Reports (R24, R29, R33, R34), signed exports and their verification, and staff roles (R28) on a real database."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esimota.errors import InvalidArgument, PermissionDenied
from esimota.service import monitoring, ops, reports, reports_export, staff
from esimota.service.common import CST
from esimota.sim import fleetdata
from tests.support import cards
from tests.support.bip import apply_all

os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)


def esimota(db_url, home, *argv, staff_user=None):
    env = dict(os.environ, ESIMOTA_HOME=str(home), DATABASE_URL=db_url)
    env.pop("ESIMOTA_STAFF", None)
    if staff_user:
        env["ESIMOTA_STAFF"] = staff_user
    return subprocess.run([sys.executable, "-m", "esimota.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=120)


@pytest.fixture
async def people(pool):
    """The bootstrap admin, an operator and an auditor (§10.1.3)."""
    await staff.add(pool, "root", "Root", "admin", None)
    await staff.add(pool, "olga", "Olga", "operator", "root")
    await staff.add(pool, "audrey", "Audrey", "auditor", "root")


async def _written(pool, n: int, *, faults: dict | None = None, unwritten: int = 0) -> fleetdata.Fleet:
    """n subscribers applied for; all but the last `unwritten` written over the BIP channel by the simulated
    card (state 4, number bound), or failed as `faults` {index: fault} makes them (state 5)."""
    fleet = await fleetdata.generate(pool, n)
    await apply_all(pool, fleet)
    async with cards.endpoint(pool) as port:
        for i, spec in enumerate(fleet.devices[:n - unwritten]):
            fault = (faults or {}).get(i)
            out = await cards.write(spec, port, **({fault: True} if fault else {}))
            assert out.ok is (fault is None), out
    return fleet


async def _counts(pool) -> dict:
    tables = [r[0] for r in await pool.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                                             "AND tablename <> 'audit_log'")]
    return {t: await pool.fetchval(f'SELECT count(*) FROM "{t}"') for t in tables}


async def test_an_auditor_reads_but_cannot_change_anything(pool, people, tmp_path):
    """R28 least privilege: every changing action refused to an auditor, each refusal audited; reads allowed."""
    fleet = await _written(pool, 2)
    async with pool.acquire() as conn:
        await ops.raise_exception(conn, "CHIP_FAULT", chip_id=1, detail="x")
    before = await _counts(pool)
    attempts = [
        staff.add(pool, "eve", "Eve", "admin", "audrey"),
        staff.set_roles(pool, "audrey", "admin", "audrey"),
        staff.disable(pool, "root", "audrey"),
        staff.review(pool, "audrey", mark=True),
    ]
    for coro in attempts:
        with pytest.raises(PermissionDenied) as exc:
            await coro
        assert exc.value.reason == "ROLE_FORBIDDEN"
    for action in ("export.create", "exception.handle", "chip.manage", "monitor.configure", "backup.create", "backup.restore",
                   "client.manage", "keys.rotate", "resources.import"):
        with pytest.raises(PermissionDenied):
            await staff.authorize(pool, "audrey", action)
    assert await _counts(pool) == before  # nothing changed but the audit log
    denied = await pool.fetchval("SELECT count(*) FROM audit_log WHERE actor = 'staff:audrey' AND action = 'denied'")
    assert denied == 4 + 9
    assert await staff.authorize(pool, "audrey", "report.read") == "staff:audrey"
    review = await staff.review(pool, "audrey")
    assert review["unused"] == ["olga"]  # root added the others, audrey read; olga never acted
    del fleet


async def test_nobody_and_leavers_are_refused(pool, people):
    """Every change is traceable to a person: no identity, unknown or disabled accounts are refused."""
    os.environ.pop("ESIMOTA_STAFF", None)
    with pytest.raises(PermissionDenied) as exc:
        await staff.authorize(pool, None, "report.read")
    assert exc.value.reason == "STAFF_REQUIRED"
    await staff.disable(pool, "olga", "root")
    with pytest.raises(PermissionDenied) as exc:
        await staff.authorize(pool, "olga", "report.read")
    assert exc.value.reason == "STAFF_UNKNOWN"
    with pytest.raises(InvalidArgument) as exc:
        await staff.disable(pool, "root", "root")
    assert exc.value.reason == "LAST_ADMIN"
    assert await pool.fetchval("SELECT disabled_at FROM staff_accounts WHERE username = 'root'") is None
    await pool.execute("UPDATE staff_accounts SET last_active_at = now() - interval '100 days' WHERE username = 'audrey'")
    assert (await staff.review(pool, "root"))["stale"] == ["audrey"]


async def test_monthly_exception_review_rates_and_in_time_share(pool):
    """§8.3.2 / R24: count and rate per class, share handled in time (closed before the deadline)."""
    fleet = await fleetdata.generate(pool, 4)
    await apply_all(pool, fleet)
    async with pool.acquire() as conn:
        for chip in (1, 2, 3):
            await ops.raise_exception(conn, "CHIP_FAULT", chip_id=chip)
        await ops.raise_exception(conn, "NO_RESOURCE", subject="11")
    await pool.execute("UPDATE exceptions SET closed_at = opened_at + interval '1 hour' WHERE chip_id IN (1, 2)")
    await pool.execute("UPDATE exceptions SET closed_at = opened_at + interval '30 hours' WHERE chip_id = 3")
    month = dt.datetime.now(CST).strftime("%Y-%m")
    out = await reports.exception_review(pool, *reports.month_range(month))
    write = out["classes"]["write"]
    assert (write["count"], write["in_time"], write["due"], write["handled_in_time"]) == (3, 2, 3, 0.6667)
    assert write["per_1000_applies"] == 750.0 and out["applies"] == 4
    assert out["classes"]["apply"]["open"] == 1 and out["classes"]["apply"]["handled_in_time"] is None
    assert out["frequent"][0] == {"kind": "CHIP_FAULT", "count": 3, "phenomenon": "写卡失败，提示芯片故障"}
    with pytest.raises(InvalidArgument):
        reports.month_range("2024-13")


async def test_quality_indicators(pool):
    """§10.3.1 / R29: write success rate and interface call success rate per period."""
    await _written(pool, 3, faults={0: "chip_fault"})
    await pool.execute("INSERT INTO api_calls (at, transport, route, code, latency_ms) SELECT now(), 'http', 'r', c, 1 "
                       "FROM unnest(ARRAY[200, 200, 200, 401, 500]) c")
    today = dt.datetime.now(CST).date()
    q = await reports.quality(pool, reports.day(str(today), "--from"), reports.day(str(today + dt.timedelta(days=1)), "--to"))
    assert q["writes"]["write_success_rate"] == 0.6667 and q["interface"]["call_success_rate"] == 0.6
    assert q["interface"]["availability"] == 0.8


async def test_subscriber_export_signed_verified_and_tamper_detected(pool, db_url, people, tmp_path):
    """R34: as of the last day 24:00, SHA-256 manifest, Ed25519 signature; a changed byte fails `report verify`."""
    home = tmp_path / "home"
    await _written(pool, 3)
    month = dt.datetime.now(CST).strftime("%Y-%m")
    proc = esimota(db_url, home, "report", "subscribers", "--month", month, "--json", staff_user="olga")
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["rows"] == 3 and out["as_of"].endswith("+08:00")
    assert not (home / "export-signing.key").exists()  # under DATABASE_URL it is given, never generated (issue 18)
    data = (Path(out["path"]) / "subscribers.csv").read_text()
    assert data.splitlines()[0].startswith("msisdn,iccid,eid") and "imsi" not in data.splitlines()[0]
    pub = tmp_path / "platform.pub"
    pub.write_text(reports_export.public_key_hex(home))
    ok = esimota(db_url, home, "report", "verify", out["path"], "--public-key", str(pub), "--json")
    assert ok.returncode == 0 and json.loads(ok.stdout)["ok"]
    csv_path = Path(out["path"]) / "subscribers.csv"
    csv_path.write_text(data.replace(data.splitlines()[1], data.splitlines()[1].replace("1", "2", 1)))
    bad = esimota(db_url, home, "report", "verify", out["path"], "--public-key", str(pub), "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["error"] == "EXPORT_TAMPERED"
    csv_path.write_text(data)
    manifest = Path(out["path"]) / "manifest.json"
    manifest.write_text(manifest.read_text().replace('"rows": 3', '"rows": 4'))
    with pytest.raises(InvalidArgument) as exc:
        reports_export.verify(out["path"], pub.read_text())
    assert exc.value.reason == "SIGNATURE_INVALID"
    denied = esimota(db_url, home, "report", "subscribers", "--month", month, "--json", staff_user="audrey")
    assert denied.returncode == 2 and json.loads(denied.stdout)["error"] == "ROLE_FORBIDDEN"
    actions = {r[0] for r in await pool.fetch("SELECT action FROM audit_log")}
    assert {"export.create", "denied"} <= actions


async def test_service_report_and_export_retention(pool, people, tmp_path):
    """R33: users by province and field, new writes, security, open problems; R34: deleted after 24 months."""
    await _written(pool, 2)
    half = f"{dt.datetime.now(CST).year}-H{1 if dt.datetime.now(CST).month <= 6 else 2}"
    out = await reports_export.export_service_report(pool, half, "staff:olga", home=tmp_path)
    report = out["report"]
    assert report["users"]["total"] == 2 and report["users"]["by_province"][0]["province_code"] == "44"
    assert report["users"]["by_application_field"] == [{"field": "未分类", "users": 2}]
    assert report["new_writes"]["total"] == 2
    reports_export.verify(out["path"], reports_export.public_key_hex(tmp_path))
    await pool.execute("UPDATE regulator_exports SET expires_at = now() - interval '1 day'")
    assert await reports_export.purge(pool) == 1 and not Path(out["path"]).exists()
    with pytest.raises(InvalidArgument):
        reports.half_range("2024-H3")


async def test_monitoring_alerts(pool):
    """R32 / R12: quota, card–device separation, region, high-risk area, blacklist, expiry 30 days ahead."""
    fleet = await _written(pool, 3, unwritten=1)  # the third card waits for its power-on (state 2)
    a, b, c = fleet.devices
    await pool.execute("UPDATE numbers SET used_flow_mb = monthly_quota_mb WHERE chip_id = 1")
    await pool.execute("UPDATE numbers SET city = '深圳' WHERE chip_id = 2")
    msisdn2 = await pool.fetchval("SELECT msisdn FROM numbers WHERE chip_id = 2")
    await monitoring.restrict_region(pool, msisdn2, ["广州"], "staff:olga")
    await monitoring.set_high_risk(pool, "深圳", "fraud ring", "staff:olga")
    await pool.execute("INSERT INTO blacklist (kind, value, reason) VALUES ('imei', $1, 'stolen')", c.imei)
    await pool.execute("UPDATE chips SET temp_expires_on = current_date + 10 WHERE id = 3")
    assert await monitoring.check_device(pool, a.eid, fleetdata.make_imei(424242), source="hello")
    assert not await monitoring.check_device(pool, b.eid, b.imei)
    await monitoring.scan(pool)
    kinds = {(r["kind"], r["severity"]) for r in await pool.fetch("SELECT kind, severity FROM alerts WHERE closed_at IS NULL")}
    assert kinds == {("QUOTA_WARNING", "general"), ("QUOTA_EXCEEDED", "severe"), ("REGION_VIOLATION", "severe"),
                     ("HIGH_RISK_AREA", "severe"), ("BLACKLISTED", "severe"), ("TEMP_NUMBER_EXPIRING", "general"),
                     ("CARD_DEVICE_SEPARATION", "severe")}
    await monitoring.restrict_region(pool, msisdn2, [], "staff:olga")
    out = await monitoring.scan(pool)
    assert out["REGION_VIOLATION"] == (0, 1)  # lifted → closed
