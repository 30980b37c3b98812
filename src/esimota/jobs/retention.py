"""Retention of the API call log, the BIP channel log and the console's sign-ins and sessions (R26, R27): rows
older than 190 days (≥ 6 months) are purged hourly; job runs older than RUNS_DAYS too."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..service import console_auth
from ..store import bip_log, call_log, leases

logger = logging.getLogger("esimota.retention")
INTERVAL_S = 3600.0
RUNS_DAYS = 35  # job_runs rows kept (issue 18): a month of periods to look back on


async def purge(pool: Any) -> int:
    """One pass: the call log, the BIP channel log and console sign-ins beyond their retention; old job_runs rows."""
    purged = await call_log.purge(pool)
    if purged:
        logger.info("call log purged", extra={"rows": purged, "days": call_log.RETENTION_DAYS})
    channel_rows = await bip_log.purge(pool)
    if channel_rows:
        logger.info("BIP channel log purged", extra={"rows": channel_rows, "days": bip_log.RETENTION_DAYS})
    console_rows = await console_auth.purge(pool)
    if console_rows:
        logger.info("console sign-ins and sessions purged", extra={"rows": console_rows})
    await leases.purge_runs(pool, RUNS_DAYS)
    return purged + channel_rows + console_rows


async def job(platform: Any, lease: Any) -> None:
    """Leased job: purge once per hour-long period (at start, then hourly); a failed pass is retried next turn."""
    while True:
        try:
            await lease.once(await lease.slot(INTERVAL_S), lambda: purge(platform.pool))
        except Exception as exc:  # the database may be down: try again later
            logger.warning("call log purge failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(INTERVAL_S)
