"""Scheduled regulator exports (R34): each month's subscribers as of its last day 24:00, handed over before the 15th.

One node makes it (job lease); "is it due?" is asked of the database (regulator_exports, whichever node
wrote it, by hand or on schedule), and the month is a period of job_runs, so it is never made twice.
Files go to ESIMOTA_EXPORT_DIR (shared storage when several nodes run).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any

from ..service import reports_export
from ..service.common import CST
from ..store import exports as export_store
from .ops import interval

logger = logging.getLogger("esimota.exports")
ACTOR = "system:export-schedule"
HANDOVER_DAY = 15  # R34: the month's export is handed over before the 15th of the next month


def month_due(now: dt.datetime) -> str:
    """The month whose export is due at `now`: the previous one (its last day 24:00 has passed)."""
    first = now.astimezone(CST).replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    return (first - dt.timedelta(days=1)).strftime("%Y-%m")


async def run_once(pool: Any, lease: Any, now: dt.datetime | None = None) -> dict | None:
    """One pass: the previous month's export, unless one exists already; None when nothing was due."""
    now = now or dt.datetime.now(CST)
    month = month_due(now)
    if await export_store.subscribers_made(pool, month):
        return None
    _, out = await lease.once(f"subscribers/{month}", lambda: reports_export.export_subscribers(pool, month, ACTOR))
    if out is not None:
        late = now.astimezone(CST).day >= HANDOVER_DAY
        (logger.warning if late else logger.info)(
            "regulator export made" + (" late (R34: before the 15th)" if late else ""),
            extra={"month": month, "rows": out["rows"], "path": out["path"]})
    return out


async def job(platform: Any, lease: Any) -> None:
    """Leased job: hourly (ESIMOTA_EXPORT_INTERVAL seconds), first pass five minutes after the lease is taken;
    off with ESIMOTA_EXPORT_SCHEDULE=off."""
    if not platform.settings.exports_on:
        logger.info("scheduled regulator exports off (ESIMOTA_EXPORT_SCHEDULE=off)")
        return
    every_s = interval("EXPORT", 3600.0)
    await asyncio.sleep(min(300.0, every_s))
    while True:
        try:
            await run_once(platform.pool, lease)
        except Exception as exc:  # the database may be down: the next pass tries again
            logger.warning("regulator export pass failed", extra={"error": f"{type(exc).__name__}: {exc}"[:300]})
        await asyncio.sleep(every_s)
