"""Background jobs under leases in PostgreSQL (issue 18): one node runs a job; cut off or killed, another takes
over; a period never runs twice."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import asyncpg
import pytest

from esimota.jobs.leader import JobRunner
from tests.support.databases import via_port
from tests.support.faultproxy import FaultProxy
from tests.support.waiting import until

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
