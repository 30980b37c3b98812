"""Scheduled backups (§9.1.2, R26): every ESIMOTA_BACKUP_INTERVAL hours, one node at a time (job lease), due
when the database holds no backup younger than the interval (whichever node made it), retention applied."""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

from .. import metrics, runtime
from ..errors import Conflict
from ..service import backup
from ..store import audit, leases
from ..store import ops as ops_store

logger = logging.getLogger("esimota.backup")

ACTOR = "system:backup-schedule"
ALERT = "BACKUP_FAILED"   # a severe alert: posted to ESIMOTA_NOTIFY_URL like the other severe ones
RETRY_S = 900.0           # after a failure, try again within 15 minutes (or the interval, if shorter)


def _slack(interval_s: float) -> float:
    return min(60.0, interval_s / 20)  # timers are not exact


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


async def _make(pool: Any, url: str) -> dict:
    """One backup to ESIMOTA_BACKUP_DIR; a failure is logged, alerted, audited and re-raised."""
    out_dir, copy_dir = backup.locations()
    try:
        out = await asyncio.to_thread(_create, url, out_dir, copy_dir, backup.keep_days())
    except Conflict:  # BACKUP_BUSY: one is being made (by hand, or by a pass stopped mid-way): not a failure
        logger.info("scheduled backup waits: another backup is being made", extra={"dir": str(out_dir)})
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"
        logger.error("scheduled backup failed", extra={"error": error[:300], "dir": str(out_dir)})
        await _alert(pool, error)
        await audit.record(pool, ACTOR, "backup.failed", str(out_dir), error=error[:300])
        raise
    await audit.record(pool, ACTOR, "backup.create", Path(out["file"]).name, offsite=copy_dir is not None,
                       pruned=len(out["pruned"]), scheduled=True, node=out["node"])
    await _alert(pool, None)
    metrics.BACKUP_LAST.set(time.time())
    logger.info("scheduled backup made", extra={"file": out["file"], "bytes": out["bytes"], "rows": out["rows"],
                                               "offsite": out["copy"], "pruned": len(out["pruned"])})
    return out


async def due(pool: Any, interval_s: float) -> bool:
    """A backup is due when no node made one within the interval (the database says, not a local folder)."""
    age = await backup.age_s(pool)
    return age is None or age >= interval_s - _slack(interval_s)


async def run_once(pool: Any, url: str, interval_s: float, lease: Any) -> dict | None:
    """One scheduled pass under the job's lease: the backup made, or None when none was due or this
    interval's period ran already (on any node). A failure is re-raised (the period may be retried)."""
    if not await due(pool, interval_s):
        return None
    _, out = await lease.once(await lease.slot(interval_s), lambda: _make(pool, url))
    return out


async def next_wait(pool: Any, interval_s: float, failed: bool) -> float:
    """Seconds until the next pass: the rest of the interval since the newest backup, sooner after a failure."""
    if failed:
        return min(RETRY_S, interval_s)
    age = await backup.age_s(pool)
    if age is None or age >= interval_s - _slack(interval_s):  # still due: this period was cut short somewhere
        epoch = await leases.now_epoch(pool)
        return max(1.0, interval_s - epoch % interval_s)  # the next period, by the database's clock
    return max(1.0, interval_s - age)


async def job(platform: Any, lease: Any) -> None:
    """Leased job: off unless ESIMOTA_BACKUP_INTERVAL (hours) is set."""
    interval_s = platform.settings.backup_interval_h * 3600
    metrics.BACKUP_INTERVAL.set(max(0.0, interval_s))
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
            await run_once(platform.pool, url, interval_s, lease)
            failed = False
        except Exception:  # logged and alerted in _make; the database may be down: retry sooner
            failed = True
        try:
            wait = await next_wait(platform.pool, interval_s, failed)
        except Exception:
            wait = min(RETRY_S, interval_s)
