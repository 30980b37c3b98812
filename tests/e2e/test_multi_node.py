"""Several nodes over one PostgreSQL (issue 18): no key generated under DATABASE_URL; a dead worker is restarted."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time

import aiohttp
import pytest

from esimota.server import LEASED_JOBS
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support.bip import apply_all
from tests.support.platform import free_port, serve
from tests.support.waiting import until_query

KEYS = ("ESIMOTA_MASTER_KEY", "ESIMOTA_BACKUP_KEY", "ESIMOTA_EXPORT_SIGNING_KEY")


@pytest.mark.parametrize("missing, extra", [
    ("ESIMOTA_MASTER_KEY", {}),
    ("ESIMOTA_BACKUP_KEY", {"ESIMOTA_BACKUP_INTERVAL": "24"}),
    ("ESIMOTA_EXPORT_SIGNING_KEY", {}),  # regulator exports are scheduled by default (R34)
])
def test_serve_refuses_to_start_without_a_key_under_database_url(tmp_path, db_url, missing, extra):
    """One clear line naming the key, exit 2, no traceback, and no key file made up in ESIMOTA_HOME."""
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if k != missing and k != "ESIMOTA_WORKER_ID"}
    env.update(extra, ESIMOTA_HOME=str(home), DATABASE_URL=db_url)
    ports = [str(free_port()) for _ in range(3)]
    proc = subprocess.run([sys.executable, "-m", "esimota.cli", "serve", "--http-port", ports[0], "--grpc-port",
                           ports[1], "--bip-port", ports[2], "--no-tls"], env=env, capture_output=True, text=True,
                          timeout=60)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1, proc.stderr
    assert "KEY_MISSING" in lines[0] and missing in lines[0] and "Traceback" not in proc.stderr
    assert not any((home / name).exists() for name in ("master.key", "backup.key", "export-signing.key"))


def test_the_export_key_is_not_needed_with_scheduled_exports_off(tmp_path, db_url):
    env = {"ESIMOTA_EXPORT_SCHEDULE": "off"}
    saved = os.environ.pop("ESIMOTA_EXPORT_SIGNING_KEY", None)
    try:
        served = serve(tmp_path / "home", db_url, tls=False, extra_env=env)
    finally:
        if saved is not None:
            os.environ["ESIMOTA_EXPORT_SIGNING_KEY"] = saved
    code, _ = served.stop(signal.SIGTERM, timeout=30)
    assert code == 0


async def _restart_counter(admin_url: str) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(admin_url + "/metrics") as r:
            lines = (await r.text()).splitlines()
    return "\n".join(ln for ln in lines if ln.startswith("esimota_worker_restarts_total"))


@pytest.mark.timeout(120)
async def test_a_killed_worker_is_restarted(tmp_path, db_url):
    """kill -9 of a worker: the supervisor logs it, starts it again after a back-off, and the new worker counts
    the restart in esimota_worker_restarts_total; the other worker served meanwhile."""
    served = serve(tmp_path / "home", db_url, workers=2, tls=False)
    try:
        first = served.pids
        victim = first[0]
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 60
        while len([p for p in served.pids if p not in first]) < 1:
            assert time.monotonic() < deadline and served.proc.poll() is None, served.lines[-5:]
            await asyncio.sleep(0.1)
        died = [ln for ln in served.lines if ln.get("msg") == "worker died; restarting"]
        assert len(died) == 1 and died[0]["pid"] == victim and died[0]["exit_code"] == -signal.SIGKILL
        assert died[0]["level"] == "error" and died[0]["restart_in_s"] == 1.0
        text = ""
        for _ in range(20):  # either worker answers /metrics; both read the shared multiprocess directory
            text = await _restart_counter(served.admin_url)
            if text:
                break
        assert text.endswith(" 1.0") and len(text.splitlines()) == 1, text
    finally:
        code, _ = served.stop(signal.SIGTERM, timeout=30)
    assert code == 0  # the restarted worker drained on SIGTERM like the other


class Balanced(Device):
    """A card behind a TCP balancer in front of two nodes: a refused connection goes to the next node."""

    def __init__(self, spec, ports: list[int]) -> None:
        super().__init__(spec, "127.0.0.1", ports[0])
        self.ports = list(ports)

    async def _connect(self):
        try:
            return await super()._connect()
        except OSError:
            self.ports.append(self.ports.pop(0))
            self.port = self.ports[0]
            return await super()._connect()


@pytest.mark.timeout(240)
async def test_a_draining_node_hands_its_channels_and_jobs_to_the_other(tmp_path, pool, db_url):
    """SIGTERM to node A mid-write: its listener closes, the card's channel resumes on node B and the write
    completes; A gives its job leases back, so B holds them all long before A's 60 s leases would expire."""
    fleet = await fleetdata.generate(pool, 1, buffer_size=160, faults=lambda i: Faults(latency=0.25))
    await apply_all(pool, fleet)
    env = {"ESIMOTA_LEASE_TTL": "60"}  # renewals every 10 s: only a release lets B in before a minute
    a = serve(tmp_path / "a", db_url, tls=False, extra_env=dict(env, ESIMOTA_NODE_ID="node-a"))
    b = None
    try:
        await until_query(pool, "SELECT count(*) FROM job_leases WHERE node = 'node-a'", len(LEASED_JOBS))
        b = serve(tmp_path / "b", db_url, tls=False, extra_env=dict(env, ESIMOTA_NODE_ID="node-b"))
        card = Balanced(fleet.devices[0], [a.bip_port, b.bip_port])
        run = asyncio.create_task(card.run())
        await until_query(pool, "SELECT script_acked > 0 FROM tasks")
        cntr_before = await pool.fetchval("SELECT cntr_reserved FROM chip_counters")
        code, _ = a.stop(signal.SIGTERM, timeout=30)
        assert code == 0
        out = await asyncio.wait_for(run, 120)
        assert out.ok and card.port == b.bip_port and out.channels >= 3, out  # write, resumed on B, report
        assert await pool.fetchval("SELECT state FROM chips") == 4
        assert await pool.fetchval("SELECT cntr_reserved FROM chip_counters") > cntr_before  # a fresh block
        await until_query(pool, "SELECT count(*) FROM job_leases WHERE node = 'node-b' AND expires_at > now()",
                     len(LEASED_JOBS), limit=40)
    finally:
        a.stop(signal.SIGKILL)
        if b is not None:
            b.stop(signal.SIGTERM, timeout=30)


async def _terminate_waiters(conn) -> None:
    """End the database sessions waiting on `conn`'s locks: a killed node's sessions, which PostgreSQL would
    end once it noticed the dead peer (a session blocked on a lock notices only when the lock is granted)."""
    await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pg_backend_pid() = ANY("
                       "pg_blocking_pids(pid))")


@pytest.mark.timeout(240)
async def test_a_node_killed_mid_export_leaves_the_period_to_the_survivor(tmp_path, pool, db_url):
    """Issue 18, R33, R34: node A takes the regulator-exports lease, claims the month's period and is killed
    (SIGKILL) in the middle of the pass; once A's lease expires, node B claims the same period again and makes
    the month's export (and the half-year's service report) — once each, nothing skipped, nothing twice."""
    import datetime as dt

    import asyncpg

    from esimota.jobs import exports
    from esimota.service.common import CST

    shared = tmp_path / "shared-exports"
    env = {"ESIMOTA_LEASE_TTL": "3", "ESIMOTA_EXPORT_INTERVAL": "1", "ESIMOTA_EXPORT_DIR": str(shared)}
    month, half = exports.month_due(dt.datetime.now(CST)), exports.half_due(dt.datetime.now(CST))
    blocker = await asyncpg.connect(db_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")  # both reports read projects
    a = serve(tmp_path / "a", db_url, tls=False, extra_env=dict(env, ESIMOTA_NODE_ID="node-a"))
    b = None
    try:
        run = f"SELECT node || ' ' || status FROM job_runs WHERE job = 'regulator-exports' AND period = 'subscribers/{month}'"
        await _until(pool, run, "node-a running")
        await _until(pool, "SELECT count(*) > 0 FROM pg_locks WHERE NOT granted AND relation = 'projects'::regclass",
                     True)
        a.stop(signal.SIGKILL)  # mid-pass: the period claimed, its report query waiting
        await _terminate_waiters(blocker)
        await lock.rollback()
        b = serve(tmp_path / "b", db_url, tls=False, extra_env=dict(env, ESIMOTA_NODE_ID="node-b"))
        done = "SELECT count(*) FROM job_runs WHERE job = 'regulator-exports' AND status = 'done'"
        await _until(pool, done, 2)
    finally:
        await blocker.close()
        a.stop(signal.SIGKILL)
        if b is not None:
            b.stop(signal.SIGTERM, timeout=30)
    runs = await pool.fetch("SELECT period, node, status, attempts FROM job_runs WHERE job = 'regulator-exports' "
                            "ORDER BY period")
    assert [tuple(r) for r in runs] == [(f"service/{half}", "node-b", "done", 1),
                                        (f"subscribers/{month}", "node-b", "done", 2)]
    made = await pool.fetch("SELECT kind, period, node, created_by, path FROM regulator_exports ORDER BY kind")
    assert [tuple(r)[:4] for r in made] == [("service", half, "node-b", exports.ACTOR),
                                            ("subscribers", month, "node-b", exports.ACTOR)]
    assert sorted(p.name for p in shared.iterdir()) == sorted(os.path.basename(r["path"]) for r in made)
