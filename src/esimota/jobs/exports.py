"""Scheduled regulator reports: each month's subscribers as of its last day 24:00, handed over before the 15th
(R34), and each half-year's service report (R33).

One node makes them (job lease); "is it due?" is asked of the database (regulator_exports, whichever node
wrote it, by hand or on schedule), and the month or half-year is a period of job_runs, done only once the
report is registered: a pass cut short (a node killed mid-pass) is finished by the next holder of the lease,
and a pass that finds the report registered already makes none. Files go to ESIMOTA_EXPORT_DIR (shared
storage when several nodes run).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from typing import Any, Awaitable, Callable

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


def half_due(now: dt.datetime) -> str:
    """The half-year whose service report is due at `now` (R33): the last one that has ended (CST)."""
    local = now.astimezone(CST)
    return f"{local.year}-H1" if local.month >= 7 else f"{local.year - 1}-H2"


Maker = Callable[[Any, str, str], Awaitable[dict]]
# kind -> (the period due at a time, the export that makes it); both kinds are regulator_exports rows
SCHEDULE: dict[str, tuple[Callable[[dt.datetime], str], Maker]] = {
    "subscribers": (month_due, reports_export.export_subscribers),
    "service": (half_due, reports_export.export_service_report),
}


async def run_once(pool: Any, lease: Any, now: dt.datetime | None = None, kind: str = "subscribers") -> dict | None:
    """One pass for `kind`: the report of the period due at `now`, unless one is registered already (made by
    hand, on schedule by any node, or by a pass cut short after registering it); None when nothing was made."""
    now = now or dt.datetime.now(CST)
    due, make = SCHEDULE[kind]
    period = due(now)

    async def step() -> dict | None:
        if await export_store.made(pool, kind, period):
            return None
        reports_export.sweep_partial(kind, period)
        return await make(pool, period, ACTOR)

    _, out = await lease.once(f"{kind}/{period}", step)
    if out is not None:
        late = kind == "subscribers" and now.astimezone(CST).day >= HANDOVER_DAY
        (logger.warning if late else logger.info)(
            "regulator export made" + (" late (R34: before the 15th)" if late else ""),
            extra={"kind": kind, "period": period, "id": out["id"], "path": out["path"]})
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
        for kind in SCHEDULE:
            try:
                await run_once(platform.pool, lease, kind=kind)
            except Exception as exc:  # the database may be down: the next pass tries again
                logger.warning("regulator export pass failed",
                               extra={"kind": kind, "error": f"{type(exc).__name__}: {exc}"[:300]})
        await asyncio.sleep(every_s)
