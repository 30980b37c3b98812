"""Scheduled backups (§9.1.2, R26): on schedule, one node at a time (job lease), due by the database, restorable,
retention, failures alerted."""

from __future__ import annotations

import asyncio
import json
import os
import time
from pathlib import Path
from types import SimpleNamespace

from esimota import config
from esimota.jobs import backups
from esimota.jobs.leader import JobRunner
from esimota.service import backup, ops_notify, staff
from esimota.sim import fleetdata
from tests.support import databases

from .test_backup import esimota


def _env(monkeypatch, tmp_path, **extra) -> Path:
    home = tmp_path / "home"
    monkeypatch.setenv("ESIMOTA_HOME", str(home))
    for name in ("ESIMOTA_BACKUP_DIR", "ESIMOTA_BACKUP_COPY_DIR", "ESIMOTA_BACKUP_KEEP_DAYS"):
        monkeypatch.delenv(name, raising=False)
    for name, value in extra.items():
        monkeypatch.setenv(name, value)
    return home


async def _idle(platform, lease) -> None:
    await asyncio.Event().wait()


async def _lease(pool, node: str = "node-a"):
    """The backups lease as a node's job runner takes it (one round of the real runner)."""
    runner = JobRunner(pool, node, (("backups", _idle),))
    await runner.step()
    return runner, runner.jobs["backups"].lease


async def test_scheduled_backup_is_restorable_and_old_ones_are_deleted(pool, db_url, pg_server_url, tmp_path,
                                                                        monkeypatch):
    """A pass makes an encrypted backup with its off-site copy that `backup restore` accepts; older ones go."""
    offsite = tmp_path / "offsite"
    home = _env(monkeypatch, tmp_path, ESIMOTA_BACKUP_COPY_DIR=str(offsite))
    await staff.add(pool, "root", "Root", "admin", None)
    await fleetdata.generate(pool, 3)
    runner, lease = await _lease(pool)
    first = await backups.run_once(pool, db_url, 3600, lease)
    dump = Path(first["file"])
    assert dump.parent == home / "backups" and (offsite / dump.name).is_file() and first["rows"] > 0
    assert await backups.run_once(pool, db_url, 3600, lease) is None  # not due: the newest is younger than the interval
    row = await pool.fetchrow("SELECT actor, target FROM audit_log WHERE action = 'backup.create'")
    assert tuple(row) == (backups.ACTOR, dump.name)

    name = await databases.create(pg_server_url, "esimota_r_")
    try:
        proc = esimota(db_url, home, "backup", "restore", str(offsite / dump.name), "--database-url",
                       databases.url_of(pg_server_url, name), "--json")
        assert proc.returncode == 0, proc.stderr + proc.stdout
        assert json.loads(proc.stdout)["verified"]
    finally:
        await databases.drop(pg_server_url, name)

    old = time.time() - 40 * 86400  # older than ESIMOTA_BACKUP_KEEP_DAYS (30): the next pass deletes it
    for d in (home / "backups", offsite):
        for f in d.glob("esimota-*"):
            os.utime(f, (old, old))
    await pool.execute("UPDATE backups SET created_at = now() - interval '40 days'")  # as the files
    await pool.execute("DELETE FROM job_runs")  # a new period
    left = home / "backups" / (dump.name + backup.PARTIAL)  # what a node killed mid-dump leaves
    left.write_bytes(b"cut short")
    os.utime(left, (old, old))
    second = await backups.run_once(pool, db_url, 3600, lease)
    await runner.release()
    assert len(second["pruned"]) == 3 and not dump.exists() and not (offsite / dump.name).exists()
    assert str(left) in second["pruned"] and not left.exists()
    assert sorted(p.name for p in offsite.iterdir()) == sorted([Path(second["file"]).name,
                                                               Path(second["manifest"]).name])


async def test_a_failed_backup_opens_a_severe_alert_until_one_succeeds(pool, db_url, tmp_path, monkeypatch):
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    _env(monkeypatch, tmp_path, ESIMOTA_BACKUP_DIR=str(not_a_dir))
    runner, lease = await _lease(pool)
    try:
        await backups.run_once(pool, db_url, 3600, lease)
        raise AssertionError("the backup should have failed")
    except OSError:
        pass
    alert = await pool.fetchrow("SELECT severity, subject, detail FROM alerts WHERE kind = 'BACKUP_FAILED' "
                                "AND closed_at IS NULL")
    assert (alert["severity"], alert["subject"]) == ("severe", "backup") and "FileExistsError" in alert["detail"]
    assert await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'backup.failed'") == 1
    assert await ops_notify.queue(pool) == 1  # posted to the operator's webhook like any severe alert
    assert await backups.next_wait(pool, 3600, failed=True) == backups.RETRY_S
    assert await pool.fetchval("SELECT status FROM job_runs WHERE job = 'backups'") == "failed"
    monkeypatch.setenv("ESIMOTA_BACKUP_DIR", str(tmp_path / "backups"))
    assert await backups.run_once(pool, db_url, 3600, lease)  # the failed period is tried again
    await runner.release()
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE kind = 'BACKUP_FAILED' AND closed_at IS NULL") == 0


async def test_a_node_without_the_lease_makes_no_backup(pool, db_url, tmp_path, monkeypatch):
    """Another node holds the backups lease: this node's pass makes nothing."""
    home = _env(monkeypatch, tmp_path)
    holder, _ = await _lease(pool, "node-a")
    other, lease_b = await _lease(pool, "node-b")
    assert other.running() == [] and holder.running() == ["backups"]
    assert await backups.run_once(pool, db_url, 3600, lease_b) is None
    assert backup.newest(home / "backups") is None
    await holder.release()
    await other.step()
    assert await backups.run_once(pool, db_url, 3600, lease_b) is not None
    await other.release()


async def test_backup_due_is_decided_by_the_database_across_two_nodes(pool, db_url, tmp_path, monkeypatch):
    """Issue 18: node B, whose own folder is empty, makes no backup when node A made one within the interval;
    the record names node A. Each node asked its local folder before: one backup per node per interval."""
    _env(monkeypatch, tmp_path, ESIMOTA_BACKUP_DIR=str(tmp_path / "a"), ESIMOTA_NODE_ID="node-a")
    runner_a, lease_a = await _lease(pool, "node-a")
    made = await backups.run_once(pool, db_url, 3600, lease_a)
    await runner_a.release()  # node A drains; node B takes the lease over
    monkeypatch.setenv("ESIMOTA_BACKUP_DIR", str(tmp_path / "b"))
    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    runner_b, lease_b = await _lease(pool, "node-b")
    assert runner_b.running() == ["backups"]
    assert await backups.run_once(pool, db_url, 3600, lease_b) is None
    await runner_b.release()
    assert not (tmp_path / "b").exists() and Path(made["file"]).parent == tmp_path / "a"
    rows = [tuple(r) for r in await pool.fetch("SELECT node, file FROM backups")]
    assert rows == [("node-a", made["file"])]
    assert json.loads(Path(made["manifest"]).read_text())["node"] == "node-a"


async def test_the_job_runs_on_its_schedule_and_is_off_by_default(pool, db_url, tmp_path, monkeypatch):
    """ESIMOTA_BACKUP_INTERVAL in hours: a backup at start when none is recent, then one per interval."""
    home = _env(monkeypatch, tmp_path)
    monkeypatch.delenv("ESIMOTA_BACKUP_INTERVAL", raising=False)
    assert config.Settings().backup_interval_h == 0
    off = SimpleNamespace(pool=pool, settings=SimpleNamespace(backup_interval_h=0.0, database_url=db_url))
    runner, lease = await _lease(pool)
    await asyncio.wait_for(backups.job(off, lease), 1)  # returns at once: nothing scheduled
    monkeypatch.setenv("ESIMOTA_BACKUP_INTERVAL", str(1 / 3600))
    settings = config.Settings()
    assert settings.backup_interval_h == 1 / 3600
    settings.database_url = db_url
    task = asyncio.create_task(backups.job(SimpleNamespace(pool=pool, settings=settings), lease))
    try:
        deadline = time.monotonic() + 60
        while await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'backup.create'") < 2:
            assert time.monotonic() < deadline and not task.done(), task
            await asyncio.sleep(0.2)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await runner.release()
    made = await pool.fetchval("SELECT count(*) FROM audit_log WHERE action = 'backup.create' AND actor = $1",
                               backups.ACTOR)
    assert made >= 2 and len(list((home / "backups").glob("*.manifest.json"))) >= 2
    periods = await pool.fetchval("SELECT count(*) FROM job_runs WHERE job = 'backups'")
    assert await pool.fetchval("SELECT count(*) FROM backups") <= periods  # at most one backup per period


async def test_a_backup_cut_short_by_a_death_is_made_by_the_next_holder_in_the_same_period(pool, db_url, tmp_path,
                                                                                         monkeypatch):
    """Issue 18: node A claims the backup period and dies mid-backup (its job gone, its database session ended
    as PostgreSQL ends a dead node's); node B, holding the lease next, claims the same period again and makes
    the backup — one backup in that period, by B, not one skipped until the next period."""
    import asyncpg

    monkeypatch.setenv("ESIMOTA_LEASE_TTL", "1.5")
    home = _env(monkeypatch, tmp_path, ESIMOTA_NODE_ID="node-a")
    interval_s = 1e9  # one period for the whole test, wherever the clock stands
    runner_a, lease_a = await _lease(pool, "node-a")
    blocker = await asyncpg.connect(db_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("LOCK TABLE chips IN ACCESS EXCLUSIVE MODE")  # the backup's checksums wait on it
    pass_a = asyncio.create_task(backups.run_once(pool, db_url, interval_s, lease_a))
    deadline = time.monotonic() + 60
    waiting = "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'chips'::regclass"
    while await pool.fetchval(waiting) != 1:
        assert time.monotonic() < deadline and not pass_a.done(), pass_a
        await asyncio.sleep(0.05)
    assert await pool.fetchval("SELECT node || ' ' || status FROM job_runs WHERE job = 'backups'") == "node-a running"
    for held in runner_a.jobs.values():  # node A dies: its job and its pass stop, its sessions end
        held.task.cancel()
    pass_a.cancel()
    await asyncio.gather(pass_a, return_exceptions=True)
    await blocker.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE pg_backend_pid() = ANY("
                          "pg_blocking_pids(pid))")
    await lock.rollback()
    await blocker.close()

    monkeypatch.setenv("ESIMOTA_NODE_ID", "node-b")
    runner_b = JobRunner(pool, "node-b", (("backups", _idle),))
    while not runner_b.running():  # A's lease expires by the database's clock
        assert time.monotonic() < deadline
        await runner_b.step()
        await asyncio.sleep(0.1)
    made = await backups.run_once(pool, db_url, interval_s, runner_b.jobs["backups"].lease)
    await runner_b.release()
    assert made["node"] == "node-b"
    assert [tuple(r) for r in await pool.fetch("SELECT node FROM backups")] == [("node-b",)]
    run = await pool.fetchrow("SELECT node, status, attempts FROM job_runs WHERE job = 'backups'")
    assert tuple(run) == ("node-b", "done", 2)
    assert sorted(p.name for p in (home / "backups").iterdir()) == sorted([Path(made["file"]).name,
                                                                          Path(made["manifest"]).name])


async def test_a_backup_still_being_made_by_a_drained_node_is_not_made_twice(pool, db_url, tmp_path, monkeypatch):
    """Issue 18: node A drains mid-backup — its job stops and its lease goes back at once, but the dump, in a
    thread of its own, goes on. Node B, holding the lease next, claims the period again: its pass finds the
    backup being made (BACKUP_BUSY, no alert) instead of making a second one; once A's backup is recorded,
    the period has one backup and B's next pass makes none."""
    import asyncpg

    from esimota.errors import Conflict

    _env(monkeypatch, tmp_path, ESIMOTA_NODE_ID="node-a")
    interval_s = 1e9  # one period for the whole test
    runner_a, lease_a = await _lease(pool, "node-a")
    blocker = await asyncpg.connect(db_url)
    lock = blocker.transaction()
    await lock.start()
    await blocker.execute("LOCK TABLE chips IN ACCESS EXCLUSIVE MODE")  # A's backup waits mid-way
    pass_a = asyncio.create_task(backups.run_once(pool, db_url, interval_s, lease_a))
    deadline = time.monotonic() + 60
    while await pool.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND "
                              "relation = 'chips'::regclass") != 1:
        assert time.monotonic() < deadline and not pass_a.done(), pass_a
        await asyncio.sleep(0.05)
    pass_a.cancel()  # SIGTERM: the job stops and the lease is given back
    await asyncio.gather(pass_a, return_exceptions=True)
    await runner_a.release()

    runner_b, lease_b = await _lease(pool, "node-b")  # (one process: ESIMOTA_NODE_ID stays A's for its thread)
    assert runner_b.running() == ["backups"]
    try:
        await backups.run_once(pool, db_url, interval_s, lease_b)
        raise AssertionError("node B made a second backup beside node A's")
    except Conflict as exc:
        assert exc.reason == "BACKUP_BUSY"
    assert await pool.fetchval("SELECT count(*) FROM alerts WHERE kind = 'BACKUP_FAILED'") == 0
    assert tuple(await pool.fetchrow("SELECT node, status FROM job_runs WHERE job = 'backups'")) == ("node-b",
                                                                                                   "failed")
    await lock.rollback()  # A's dump goes on and is recorded
    await blocker.close()
    while await pool.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory'") != 0:
        assert time.monotonic() < deadline  # A's backup session ends with its backup recorded
        await asyncio.sleep(0.05)
    assert await backups.run_once(pool, db_url, interval_s, lease_b) is None  # not due: A's counts
    await runner_b.release()
    assert [tuple(r) for r in await pool.fetch("SELECT node FROM backups")] == [("node-a",)]
