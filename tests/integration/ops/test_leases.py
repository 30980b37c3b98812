"""Background jobs under leases in PostgreSQL (issue 18): one node runs a job; cut off or killed, another takes
over; a done period never runs again, and a period cut short is finished by the next holder."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from urllib.parse import urlsplit

import asyncpg
import pytest

from esimota.jobs import exports
from esimota.jobs.leader import JobRunner
from esimota.service import reports_export, staff
from esimota.service.common import CST
from tests.support.databases import via_port
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import until, until_query

PERIOD_S = 0.2


def _ticking(events: list):
    """A leased job that records its start, each pass with its period, and its stop."""
    async def job(platform, lease):
        events.append(("start", lease.node, None))
        try:
            while True:
                period = await lease.slot(PERIOD_S)

                async def one(period=period):
                    events.append(("pass", lease.node, period))
                await lease.once(period, one)
                await asyncio.sleep(PERIOD_S / 4)
        finally:
            events.append(("stop", lease.node, None))
    return job


def _kill(runner: JobRunner, task: asyncio.Task) -> None:
    """As kill -9 would: the runner and its jobs stop at once, the lease is not given back."""
    task.cancel()
    for held in runner.jobs.values():
        if held.task is not None:
            held.task.cancel()


@pytest.mark.timeout(180)
async def test_one_node_runs_a_job_cut_off_or_killed_another_takes_over(pool, db_url, monkeypatch):
    monkeypatch.setenv("ESIMOTA_LEASE_TTL", "1.5")  # renewals every 0.25 s; production: 30 s and 5 s
    events: list = []
    jobs = (("tick", _ticking(events)),)
    host = urlsplit(db_url)
    async with FaultProxy(host.hostname, host.port) as proxy:
        pool_a = await asyncpg.create_pool(via_port(db_url, proxy.port), min_size=1, max_size=3)
        a, b = JobRunner(pool_a, "node-a", jobs), JobRunner(pool, "node-b", jobs)
        run_a = asyncio.create_task(a.run())
        await until(lambda: ("start", "node-a", None) in events, "node A starts the job")
        run_b = asyncio.create_task(b.run())
        await until(lambda: sum(e[:2] == ("pass", "node-a") for e in events) >= 5, "node A runs passes")
        assert b.running() == [] and a.running() == ["tick"]  # B tried every round and never got it

        proxy.pause()  # node A is cut off from PostgreSQL: it stops the job itself, then B takes over
        await until(lambda: ("start", "node-b", None) in events, "node B takes over")
        taken = events.index(("start", "node-b", None))
        assert not [e for e in events[taken:] if e[:2] == ("pass", "node-a")]  # never both at once
        await until(lambda: sum(e[:2] == ("pass", "node-b") for e in events) >= 5, "node B runs passes")

        c = JobRunner(pool, "node-c", jobs)
        run_c = asyncio.create_task(c.run())
        _kill(b, run_b)  # node B dies: C takes over once B's lease expires (by the database's clock)
        await until(lambda: ("start", "node-c", None) in events, "node C takes over")
        await until(lambda: sum(e[:2] == ("pass", "node-c") for e in events) >= 5, "node C runs passes")
        await c.release()
        run_c.cancel()
        _kill(a, run_a)
        pool_a.terminate()
    passes = [e[2] for e in events if e[0] == "pass"]
    assert len(passes) == len(set(passes))  # no period ran twice, whichever node ran it
    done = await pool.fetchval("SELECT count(*) FROM job_runs WHERE job = 'tick' AND status = 'done'")
    assert done <= len(passes)
    holders = await pool.fetch("SELECT node FROM job_runs WHERE job = 'tick' GROUP BY node ORDER BY node")
    assert [r["node"] for r in holders] == ["node-a", "node-b", "node-c"]
    assert await pool.fetchval("SELECT count(*) FROM job_leases WHERE job = 'tick'") == 0  # C gave it back


async def test_a_draining_node_gives_its_leases_back(pool, monkeypatch):
    """SIGTERM: `release` stops the jobs and deletes the leases, so the next node needs no expiry."""
    monkeypatch.setenv("ESIMOTA_LEASE_TTL", "60")
    events: list = []
    jobs = (("tick", _ticking(events)),)
    a, b = JobRunner(pool, "node-a", jobs), JobRunner(pool, "node-b", jobs)
    await a.step()
    await b.step()
    assert a.running() == ["tick"] and b.running() == []
    await a.release()
    await b.step()  # at once, not 60 s later
    assert b.running() == ["tick"] and ("stop", "node-a", None) in events
    await b.release()


async def _idle(platform, lease) -> None:
    await asyncio.Event().wait()


async def test_the_months_regulator_export_is_made_once_on_schedule(pool, tmp_path, monkeypatch):
    """R34: in the first days of a month, the previous month's subscribers (as of its last day 24:00) are
    exported by the node holding the lease into ESIMOTA_EXPORT_DIR; the other node, later, makes none."""
    import datetime as dt

    from esimota.jobs import exports
    from esimota.service.common import CST

    monkeypatch.setenv("ESIMOTA_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ESIMOTA_EXPORT_DIR", str(tmp_path / "shared-exports"))
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-a")
    now = dt.datetime(2026, 12, 2, 9, 0, tzinfo=CST)
    assert exports.month_due(now) == "2026-11" and exports.month_due(dt.datetime(2027, 1, 1, tzinfo=CST)) == "2026-12"
    jobs = (("regulator-exports", _idle),)
    a, b = JobRunner(pool, "node-a", jobs), JobRunner(pool, "node-b", jobs)
    await a.step()
    await b.step()
    assert await exports.run_once(pool, b.jobs["regulator-exports"].lease, now) is None  # B holds no lease
    made = await exports.run_once(pool, a.jobs["regulator-exports"].lease, now)
    assert made["path"].startswith(str(tmp_path / "shared-exports")) and made["as_of"].startswith("2026-12-01T00:00")
    await a.release()
    await b.step()
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    assert await exports.run_once(pool, b.jobs["regulator-exports"].lease, now) is None  # done: never twice
    await b.release()
    rows = await pool.fetch("SELECT period, node, created_by FROM regulator_exports")
    assert [tuple(r) for r in rows] == [("2026-11", "node-a", exports.ACTOR)]


def _export_env(monkeypatch, tmp_path, node: str):
    home = tmp_path / "home"
    monkeypatch.setenv("ESIMOTA_HOME", str(home))
    monkeypatch.setenv("ESIMOTA_EXPORT_DIR", str(tmp_path / "shared-exports"))
    monkeypatch.setenv("ESIMOTA_NODE_ID", node)
    return home


def _cli(db_url: str, home, *argv: str, code: int = 0, as_json: bool = True) -> dict | str:
    env = dict(os.environ, ESIMOTA_HOME=str(home), DATABASE_URL=db_url, ESIMOTA_STAFF="root")
    proc = subprocess.run([sys.executable, "-m", "esimota.cli", *argv] + ["--json"] * as_json, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == code, proc.stderr + proc.stdout
    return json.loads(proc.stdout) if as_json else proc.stdout


async def test_the_half_years_service_report_is_made_once_on_schedule(pool, db_url, tmp_path, monkeypatch):
    """R33: once a half-year has ended (CST), the node holding the regulator-exports lease makes its service
    report; the other node, later, makes none for it; the next half-year's comes when that one ends. Staff
    find it (`report exports`) and fetch it (`report open`) like every export, and it verifies."""
    home = _export_env(monkeypatch, tmp_path, "node-a")
    assert exports.half_due(dt.datetime(2026, 12, 31, 23, 59, tzinfo=CST)) == "2026-H1"
    assert exports.half_due(dt.datetime(2026, 12, 31, 16, 0, tzinfo=dt.timezone.utc)) == "2026-H2"  # 00:00 CST
    assert exports.half_due(dt.datetime(2027, 7, 1, tzinfo=CST)) == "2027-H1"
    jobs = (("regulator-exports", _idle),)
    a, b = JobRunner(pool, "node-a", jobs), JobRunner(pool, "node-b", jobs)
    await a.step()
    await b.step()
    jan = dt.datetime(2027, 1, 2, 9, 0, tzinfo=CST)
    assert await exports.run_once(pool, b.jobs["regulator-exports"].lease, jan, kind="service") is None  # no lease
    shared = tmp_path / "shared-exports"
    left, fresh, other = (shared / f"service-{p}-20270102T0{i}0000000000Z{reports_export.PARTIAL}"
                          for i, p in enumerate(("2026-H2", "2026-H2", "2026-H1")))
    for d in (left, fresh, other):  # what passes cut short leave (an unregistered DIR.partial), and one being written
        d.mkdir(parents=True)
    an_hour_ago = time.time() - 3600
    for d in (left, other):
        os.utime(d, (an_hour_ago, an_hour_ago))
    made = await exports.run_once(pool, a.jobs["regulator-exports"].lease, jan, kind="service")
    assert not left.exists() and fresh.is_dir() and other.is_dir()  # only this period's stale leftover goes
    for d in (fresh, other):
        d.rmdir()
    assert made["report"]["period"] == "2026-H2" and made["report"]["to"].startswith("2027-01-01T00:00:00+08:00")
    assert reports_export.verify(made["path"], reports_export.public_key_hex(home))["kind"] == "service"
    await a.release()
    await b.step()
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    lease_b = b.jobs["regulator-exports"].lease
    for later in (jan, dt.datetime(2027, 6, 30, 23, 59, tzinfo=CST)):  # the same half-year: done, never twice
        assert await exports.run_once(pool, lease_b, later, kind="service") is None
    july = await exports.run_once(pool, lease_b, dt.datetime(2027, 7, 1, 0, 30, tzinfo=CST), kind="service")
    assert july["report"]["period"] == "2027-H1"
    await b.release()
    rows = await pool.fetch("SELECT id, period, node, created_by FROM regulator_exports WHERE kind = 'service' "
                            "ORDER BY id")
    assert [tuple(r)[1:] for r in rows] == [("2026-H2", "node-a", exports.ACTOR), ("2027-H1", "node-b", exports.ACTOR)]
    runs = await pool.fetch("SELECT period, node, status FROM job_runs WHERE job = 'regulator-exports' ORDER BY period")
    assert [tuple(r) for r in runs] == [("service/2026-H2", "node-a", "done"), ("service/2027-H1", "node-b", "done")]

    await staff.add(pool, "root", "Root", "admin", None)
    listed = _cli(db_url, home, "report", "exports")["exports"]
    assert [(e["kind"], e["period"]) for e in listed] == [("service", "2026-H2"), ("service", "2027-H1")]
    opened = _cli(db_url, home, "report", "open", str(rows[0]["id"]))
    assert opened["path"] == made["path"] and (tmp_path / "shared-exports" / os.path.basename(made["path"])).is_dir()
    audited = await pool.fetch("SELECT actor, action FROM audit_log WHERE action IN ('export.list', 'export.read')")
    assert sorted(tuple(r) for r in audited) == [("staff:root", "export.list"), ("staff:root", "export.read")]


async def test_a_pass_killed_after_its_work_is_finished_without_doing_it_twice(pool, db_url, tmp_path, monkeypatch):
    """Issue 18: node A's pass registers the half-year's report and is killed before it can mark the period done;
    node B, once A's lease expired, claims the period again, finds the report registered and makes none: one
    report, the period done by B (attempt 2). `esimota monitor jobs` shows the period cut short, then done."""
    monkeypatch.setenv("ESIMOTA_LEASE_TTL", "1.5")
    home = _export_env(monkeypatch, tmp_path, "node-a")
    await staff.add(pool, "root", "Root", "admin", None)
    jobs = (("regulator-exports", _idle),)
    pool_a = await asyncpg.create_pool(db_url, min_size=1, max_size=3)
    a, b = JobRunner(pool_a, "node-a", jobs), JobRunner(pool, "node-b", jobs)
    run_a = asyncio.create_task(a.run())
    await until(lambda: a.running() == ["regulator-exports"], "node A holds the lease")
    jan = dt.datetime(2027, 1, 2, 9, 0, tzinfo=CST)
    blocker = await asyncpg.connect(db_url)
    tx = blocker.transaction()
    await tx.start()
    await blocker.execute("LOCK TABLE projects IN ACCESS EXCLUSIVE MODE")  # the report waits mid-pass
    pass_a = asyncio.create_task(exports.run_once(pool_a, a.jobs["regulator-exports"].lease, jan, kind="service"))
    runs = "SELECT status FROM job_runs WHERE job = 'regulator-exports' AND period = 'service/2026-H2'"
    await until_query(pool, runs, "running")
    holder = await asyncpg.connect(db_url)
    row_lock = holder.transaction()
    await row_lock.start()
    await holder.execute(runs + " FOR UPDATE")  # A's "done" will wait on this row
    await tx.rollback()  # the report goes on: made and registered
    await until_query(pool, "SELECT count(*) FROM regulator_exports", 1)
    _kill(a, run_a)  # between the registered report and the period marked done
    pass_a.cancel()
    await asyncio.gather(pass_a, return_exceptions=True)
    pool_a.terminate()
    await _terminate_waiters(holder)  # the dead node's session, as PostgreSQL ends it
    await row_lock.rollback()
    await holder.close()
    await blocker.close()
    lease_b = b.jobs["regulator-exports"].lease
    deadline = time.monotonic() + 60
    while await pool.fetchval("SELECT count(*) FROM job_leases WHERE expires_at > now()"):
        assert time.monotonic() < deadline, "node A's lease never expired"
        await asyncio.sleep(0.1)
    seen = _cli(db_url, home, "monitor", "jobs", "--job", "regulator-exports")
    assert [(r["node"], r["status"], r["cut_short"]) for r in seen["runs"]] == [("node-a", "running", True)]
    assert [(ls["job"], ls["node"], ls["valid"]) for ls in seen["leases"]] == [("regulator-exports", "node-a", False)]
    assert "token" not in seen["leases"][0]
    while not b.running():  # A's lease expires by the database's clock; B takes it
        assert time.monotonic() < deadline, "node B never took the lease"
        await b.step()
        await asyncio.sleep(0.1)
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    assert await exports.run_once(pool, lease_b, jan, kind="service") is None
    await b.release()
    rows = await pool.fetch("SELECT period, node FROM regulator_exports")
    assert [tuple(r) for r in rows] == [("2026-H2", "node-a")]
    run = await pool.fetchrow("SELECT node, status, attempts FROM job_runs WHERE job = 'regulator-exports'")
    assert tuple(run) == ("node-b", "done", 2)
    assert [p.name for p in (tmp_path / "shared-exports").iterdir()] == [os.path.basename(
        await pool.fetchval("SELECT path FROM regulator_exports"))]
    seen = _cli(db_url, home, "monitor", "jobs", "--status", "done")
    assert [(r["period"], r["node"], r["attempts"], r["cut_short"]) for r in seen["runs"]] == [
        ("service/2026-H2", "node-b", 2, False)]
    table = _cli(db_url, home, "monitor", "jobs", as_json=False)  # on a terminal: readable tables
    assert "service/2026-H2" in table and "node-b" in table and "{" not in table
    bad = _cli(db_url, home, "monitor", "jobs", "--status", "skipped", code=2)
    assert bad["error"] == "STATUS_INVALID"


async def _terminate_waiters(conn) -> None:
    await conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pg_backend_pid() = ANY("
                       "pg_blocking_pids(pid))")


async def test_a_pass_cancelled_here_is_run_again_here_and_a_done_period_never(pool, monkeypatch):
    """The holder's own pass cut short (the job cancelled: lease lost, drain) leaves its period to run again
    by the same runner once it holds the lease again; a period done stays done."""
    monkeypatch.setenv("ESIMOTA_LEASE_TTL", "60")
    runner = JobRunner(pool, "node-a", (("tick", _idle),))
    await runner.step()
    lease = runner.jobs["tick"].lease
    started, ran = asyncio.Event(), []

    async def hangs():
        started.set()
        await asyncio.Event().wait()
    cut = asyncio.create_task(lease.once("p/1", hangs))
    await started.wait()
    cut.cancel()
    await asyncio.gather(cut, return_exceptions=True)
    assert await pool.fetchval("SELECT status FROM job_runs WHERE period = 'p/1'") == "running"

    async def works():
        ran.append(1)
        return "made"
    assert await lease.once("p/1", works) == (True, "made")
    assert await lease.once("p/1", works) == (False, None)
    other = JobRunner(pool, "node-b", (("tick", _idle),))
    await runner.release()
    await other.step()
    assert await other.jobs["tick"].lease.once("p/1", works) == (False, None)  # done: not even by another node
    await other.release()
    assert ran == [1]
    assert tuple(await pool.fetchrow("SELECT status, attempts FROM job_runs WHERE period = 'p/1'")) == ("done", 2)
