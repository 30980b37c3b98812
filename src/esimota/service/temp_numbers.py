"""Temporary numbers (R12, §5.3.1.3, table 4 last row): `chips reprovision` gives a chip a new one."""

from __future__ import annotations

import datetime as dt
from typing import Any

import asyncpg

from ..domain import identifiers, lifetimes
from ..domain.lifecycle import CardState
from ..errors import Conflict, InvalidArgument, PermissionDenied
from ..store import audit
from ..store import chips as chip_store
from ..store import lists as list_store
from .common import CST, connection, now

# a chip in these states may get a new temporary number; 3 is mid-write and 4 no longer uses one
REPROVISIONABLE = (CardState.PENDING_WRITE, CardState.AWAITING_POWER_ON, CardState.WRITE_FAILED,
                   CardState.APPLY_FAILED)


def _open_time(value: str | dt.date) -> dt.date:
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidArgument("open_time must be an ISO date (YYYY-MM-DD)", reason="OPEN_TIME_INVALID") from None


async def reprovision(db: Any, eid: str, *, temp_iccid: str, temp_msisdn: str, open_time: str | dt.date,
                      actor: str, today: dt.date | None = None) -> list_store.ChipRow:
    """A new temporary number for a chip (R12): audited, closes its TEMP_NUMBER_EXPIRED exception.

    The chip keeps its state: a card refused for an expired number (6) can be applied for again, a
    card waiting for power-on (2) can now open its channel. Its test traffic is not restored (R3).
    """
    eid = identifiers.validate_eid(eid)
    iccid = identifiers.validate_iccid(temp_iccid.strip())
    msisdn = identifiers.validate_msisdn(temp_msisdn.strip())
    opened = _open_time(open_time)
    today = today or now().astimezone(CST).date()
    async with connection(db) as conn, conn.transaction():
        chip = await chip_store.lock(conn, eid)
        if chip["state"] not in REPROVISIONABLE:
            raise PermissionDenied(f"a chip in state {chip['state']} cannot get a new temporary number",
                                   reason="STATE_NOT_ALLOWED")
        if opened > today:
            raise InvalidArgument("open_time is in the future", reason="OPEN_TIME_INVALID")
        lifetimes.check_not_expired(opened, chip["network_type"], today)
        try:
            await chip_store.reprovision(conn, chip["id"], iccid, msisdn, opened,
                                         lifetimes.expires_on(opened, chip["network_type"]))
        except asyncpg.UniqueViolationError:
            raise Conflict("the temporary ICCID or MSISDN belongs to another chip",
                           reason="TEMP_NUMBER_IN_USE") from None
        closed = await chip_store.close_expiry_notices(conn, chip["id"], "temporary number re-provisioned", actor)
        await audit.record(conn, actor, "chip.reprovision", eid, old_iccid=chip["temp_iccid"],
                           old_msisdn=chip["temp_msisdn"], temp_iccid=iccid, temp_msisdn=msisdn,
                           open_time=opened.isoformat(), closed_exceptions=closed)
        page = await list_store.page(conn, list_store.CHIPS, {"eid": eid}, before=None, limit=1, count=False)
    return page.rows[0]
