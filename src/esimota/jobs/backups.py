"""Scheduled backups (§9.1.2, R26): every ESIMOTA_BACKUP_INTERVAL hours, one process at a time, retention applied."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import asyncpg
from prometheus_client import Gauge

from .. import runtime
from ..service import backup
from ..store import audit
from ..store import ops as ops_store

logger = logging.getLogger("esimota.backup")

ACTOR = "system:backup-schedule"
LOCK_KEY = 0x65_53_42_4B  # advisory lock: one scheduled backup at a time across workers and machines
ALERT = "BACKUP_FAILED"   # a severe alert: posted to ESIMOTA_NOTIFY_URL like the other severe ones
RETRY_S = 900.0           # after a failure, try again within 15 minutes (or the interval, if shorter)
LAST_OK = Gauge("esimota_backup_last_success_seconds", "Unix time of the last scheduled backup that succeeded (R26)",
                multiprocess_mode="max")


def _age_s(out_dir: Path) -> float | None:
    """Seconds since the newest backup in `out_dir` was made (manual ones count), None if there is none."""
    manifest = backup.newest(out_dir)
    return None if manifest is None else max(0.0, time.time() - manifest.stat().st_mtime)


def _create(url: str, out_dir: Path, copy_dir: Path | None, keep: int) -> dict:
    """backup.create in a thread of its own: pg_dump and the SHA-256 checks never block the worker's loop."""
    return asyncio.run(backup.create(url, out_dir, copy_dir, ACTOR, keep_days=keep))


async def _alert(pool: Any, error: str | None) -> None:
    """Open the BACKUP_FAILED alert with the error, or close it once a backup succeeds."""
    async with pool.acquire() as conn:
        if error is None:
            await ops_store.close_alerts(conn, ALERT, [], "a scheduled backup succeeded")
        else:
            await ops_store.open_alerts(conn, ALERT, "severe", ["backup"], [None], [None], [error[:500]])


async def run_once(pool: Any, url: str, interval_s: float) -> dict | None:
    """One scheduled pass: a backup unless another process holds the lock or one is younger than the interval.

    Returns the backup made (None when nothing was due); a failure is logged, alerted, audited and re-raised.
    """
    out_dir, copy_dir = backup.locations()
    lock = await asyncpg.connect(url)  # a connection of its own: the lock is a session's
    try:
        if not await ops_store.try_session_lock(lock, LOCK_KEY):
            return None
        age = _age_s(out_dir)
        if age is not None and age < interval_s - min(60.0, interval_s / 20):  # slack: timers are not exact
            return None
        try:
            out = await asyncio.to_thread(_create, url, out_dir, copy_dir, backup.keep_days())
        except Exception as exc:
            error = f"{type(exc).__name__}: {exc}"
            logger.error("scheduled backup failed", extra={"error": error[:300], "dir": str(out_dir)})
            await _alert(pool, error)
            await audit.record(pool, ACTOR, "backup.failed", str(out_dir), error=error[:300])
            raise
        await audit.record(pool, ACTOR, "backup.create", Path(out["file"]).name, offsite=copy_dir is not None,
                           pruned=len(out["pruned"]), scheduled=True)
        await _alert(pool, None)
        LAST_OK.set(time.time())
        logger.info("scheduled backup made", extra={"file": out["file"], "bytes": out["bytes"], "rows": out["rows"],
                                                   "offsite": out["copy"], "pruned": len(out["pruned"])})
        return out
    finally:
        await lock.close()  # closing the session releases the lock


def next_wait(interval_s: float, failed: bool) -> float:
    """Seconds until the next pass: the rest of the interval since the newest backup, sooner after a failure."""
    if failed:
        return min(RETRY_S, interval_s)
    age = _age_s(backup.locations()[0])
    return interval_s if age is None else max(1.0, interval_s - age)


async def job(platform: Any) -> None:
    """JOBS entry (worker 0): off unless ESIMOTA_BACKUP_INTERVAL (hours) is set."""
    interval_s = platform.settings.backup_interval_h * 3600
    if interval_s <= 0:
        logger.info("scheduled backups off (ESIMOTA_BACKUP_INTERVAL unset)")
        return
    url = platform.settings.database_url or await asyncio.to_thread(runtime.database_url)
    logger.info("scheduled backups on", extra={"every_h": platform.settings.backup_interval_h,
                                               "dir": str(backup.locations()[0])})
    failed, wait = False, 0.0  # a platform without a recent backup makes one at start
    while True:
        await asyncio.sleep(wait)
        try:
            await run_once(platform.pool, url, interval_s)
            failed = False
        except Exception:  # logged and alerted in run_once; the database may be down: retry sooner
            failed = True
        wait = next_wait(interval_s, failed)
