"""What the console's pages chart and count (R13, R29): writes per hour and day, cards by state, open exceptions by
deadline, batch progress, number inventory, quality per month, the audit log. SQL in store/console.py, store/audit.py."""

from __future__ import annotations

import datetime as dt
from typing import Any

from ..domain import identifiers
from ..errors import InvalidArgument, NotFound
from ..store import audit as audit_store
from ..store import clients as client_store
from ..store import console as store
from ..store import lists as list_store
from . import lists, reports
from .common import connection, now

AUDIT_PAGE = 100


def _slots(start: dt.datetime, count: int, step: dt.timedelta) -> list[dt.datetime]:
    return [(start + i * step).replace(tzinfo=None) for i in range(count)]


async def writes(db: Any, *, days: int = 0, hours: int = 0) -> list[tuple[str, int, int]]:
    """Finished writes per hour (hours=24) or per day (days=30), China Standard Time, every slot present:
    (label, succeeded, failed)."""
    if bool(days) == bool(hours):
        raise InvalidArgument("days or hours", reason="PERIOD_INVALID")
    unit, step = ("day", dt.timedelta(days=1)) if days else ("hour", dt.timedelta(hours=1))
    current = now().replace(minute=0, second=0, microsecond=0)
    if days:
        current = current.replace(hour=0)
    count = days or hours
    start = current - (count - 1) * step
    async with connection(db) as conn:
        rows = {r["slot"]: (r["ok"], r["failed"]) for r in await store.writes_by_slot(conn, start, unit)}
    fmt = "%m-%d" if days else "%H:00"
    return [(s.strftime(fmt), *rows.get(s, (0, 0))) for s in _slots(start, count, step)]


async def cards_by_state(db: Any) -> dict[int, int]:
    """Chips per lifecycle state (§6.3 table 2), every state present."""
    async with connection(db) as conn:
        got = {r["state"]: r["n"] for r in await store.cards_by_state(conn)}
    return {s: got.get(s, 0) for s in range(1, 7)}


async def open_exceptions(db: Any, limit: int = 20) -> list[list_store.ExceptionRow]:
    """Open exceptions, the nearest handling deadline first (overdue ones lead, R23/R24)."""
    async with connection(db) as conn:
        rows = await store.open_exceptions(conn, list_store.EXCEPTIONS.select, limit)
    return [list_store._row(list_store.ExceptionRow, r) for r in rows]


async def batch_progress(db: Any, limit: int = 50) -> list[dict]:
    """Production and logistics progress of the newest batches (R13 chip management)."""
    async with connection(db) as conn:
        return [dict(r) for r in await store.batch_progress(conn, limit)]


async def number_inventory(db: Any) -> dict[str, dict[str, int]]:
    """Operational numbers per province and status (available, allocated, reserved, bound)."""
    out: dict[str, dict[str, int]] = {}
    async with connection(db) as conn:
        for r in await store.number_inventory(conn):
            out.setdefault(r["province_code"], {})[r["status"]] = r["n"]
    return out


async def chip(db: Any, eid: str) -> list_store.ChipRow:
    """One chip's SIM information (R13) by its EID."""
    got = await lists.run(db, list_store.CHIPS, {"eid": identifiers.validate_eid((eid or "").strip())}, "", 1)
    if not got.rows:
        raise NotFound("unknown EID", reason="EID_NOT_FOUND")
    return got.rows[0]


async def client(db: Any, ref: str) -> client_store.Client:
    """One client account (no secret) by its id or its name (DESIGN §7)."""
    async with connection(db) as conn:
        return await client_store.resolve(conn, ref)


def months_back(count: int, today: dt.date | None = None) -> list[str]:
    """The last `count` months, oldest first, as YYYY-MM (this month last)."""
    day = today or now().date()
    year, month = day.year, day.month
    out = []
    for _ in range(count):
        out.append(f"{year:04d}-{month:02d}")
        year, month = (year, month - 1) if month > 1 else (year - 1, 12)
    return out[::-1]


async def quality_by_month(db: Any, count: int = 6) -> list[dict]:
    """§10.3.1 / R29 per month: write success, interface call success, exceptions handled in time."""
    out = []
    for month in months_back(count):
        start, end = reports.month_range(month)
        q = await reports.quality(db, start, end)
        out.append({"month": month, **q})
    return out


async def audit_log(db: Any, *, actor: str | None = None, action: str | None = None, before: int | None = None,
                    limit: int = AUDIT_PAGE) -> list[dict]:
    """The audit log (R1, R28), newest first; `before` is the last id of the previous page."""
    async with connection(db) as conn:
        rows = await audit_store.page(conn, actor or None, action or None, before, max(1, min(limit, 500)))
    return [dict(r) for r in rows]

