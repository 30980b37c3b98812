"""Number monitoring (R32, R12, §5.3.1.1 码号监控预警): quota, card–device separation, regions, blacklists, expiry."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from ..domain import identifiers, lifetimes
from ..errors import InvalidArgument, NotFound
from ..store import audit
from ..store import monitoring as monitoring_store
from ..store import ops as ops_store
from .common import connection, now

QUOTA_WARN = float(os.environ.get("ESIMOTA_QUOTA_WARN", "0.8") or 0.8)  # share of the monthly quota

SEPARATION = "CARD_DEVICE_SEPARATION"

# kind → (severity, query, parameters given the day): every check is a full, idempotent pass
CHECKS = {
    "QUOTA_WARNING": ("general", "quota", lambda today: (QUOTA_WARN,)),
    "QUOTA_EXCEEDED": ("severe", "quota", lambda today: (1.0,)),
    "REGION_VIOLATION": ("severe", "region", lambda today: ()),
    "HIGH_RISK_AREA": ("severe", "high_risk", lambda today: ()),
    "BLACKLISTED": ("severe", "blacklisted", lambda today: ()),
    "TEMP_NUMBER_EXPIRING": ("general", "expiring", lambda today: (today, lifetimes.ALERT_DAYS)),
}


async def _check(conn: Any, kind: str, today: dt.date) -> tuple[int, int]:
    severity, query, params = CHECKS[kind]
    rows = await monitoring_store.check(conn, query, *params(today))
    subjects = [r[0] for r in rows]
    opened = await ops_store.open_alerts(conn, kind, severity, subjects, [r[1] for r in rows],
                                         [r[2] for r in rows], [r[3] for r in rows])
    closed = await ops_store.close_alerts(conn, kind, subjects, "condition cleared")
    return len(opened), len(closed)


async def scan(db: Any, *, today: dt.date | None = None) -> dict[str, tuple[int, int]]:
    """Every R32 check once: {kind: (opened, closed)}; an alert stays open while its condition holds."""
    today = today or now().date()
    out = {}
    async with connection(db) as conn:
        for kind in CHECKS:
            async with conn.transaction():
                out[kind] = await _check(conn, kind, today)
    return out


async def check_device(db: Any, eid: str, imei: str | None, *, source: str = "hello") -> bool:
    """R32 card–device separation: call with the IMEI a HELLO or an ingested record carries.

    Returns True when it differs from the chip's bound IMEI; a severe alert is then opened (once).
    """
    if not imei:
        return False
    async with connection(db) as conn:
        chip = await monitoring_store.chip_by_eid(conn, eid)
        if chip is None or chip["imei"] is None or chip["imei"] == imei:
            return False
        await ops_store.open_alerts(conn, SEPARATION, "severe", [eid], [chip["id"]], [None],
                                    [f"{source}: IMEI {imei} differs from the bound {chip['imei']}"])
        return True


async def restrict_region(db: Any, msisdn: str, cities: list[str], actor: str) -> None:
    """R32: a fixed-location number may only be used in these cities (empty list lifts it)."""
    identifiers.validate_msisdn(msisdn)
    cities = [c.strip() for c in cities if c.strip()]
    async with connection(db) as conn, conn.transaction():
        number_id = await monitoring_store.number_id(conn, msisdn)
        if number_id is None:
            raise NotFound(f"no number {msisdn}", reason="NUMBER_NOT_FOUND")
        await monitoring_store.restrict_region(conn, number_id, cities)
        await audit.record(conn, actor, "monitor.region", msisdn, cities=cities)


async def set_high_risk(db: Any, city: str, reason: str | None, actor: str) -> None:
    """R32: add (with a reason) or remove (reason None) a configured high-risk area."""
    if not city.strip() or len(city) > 64:
        raise InvalidArgument("city is required (at most 64 characters)", reason="CITY_INVALID")
    async with connection(db) as conn, conn.transaction():
        await monitoring_store.set_high_risk(conn, city.strip(), reason)
        await audit.record(conn, actor, "monitor.high_risk", city.strip(), reason=reason)


async def check_number_device(db: Any, number_id: int, imei: str, *, source: str) -> bool:
    """R32 for the usage and location feeds: the IMEI a record of this number carries, against its chip's."""
    async with connection(db) as conn:
        await monitoring_store.note_imei(conn, number_id, imei)
        eid = await monitoring_store.eid_of_number(conn, number_id)
        if eid is None:
            return False
        return await check_device(conn, eid, imei, source=source)
