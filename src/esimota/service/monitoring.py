"""Number monitoring (R32, R12, §5.3.1.1 码号监控预警): quota, card–device separation, regions, blacklists, expiry."""

from __future__ import annotations

import datetime as dt
import os
from typing import Any

from ..domain import identifiers, lifetimes
from ..errors import InvalidArgument, NotFound
from ..store import audit
from ..store import ops as ops_store
from .common import connection, now

QUOTA_WARN = float(os.environ.get("ESIMOTA_QUOTA_WARN", "0.8") or 0.8)  # share of the monthly quota

QUOTA = """
SELECT n.msisdn AS subject, n.chip_id, n.id AS number_id,
       format('%s MB of %s MB used this month', n.used_flow_mb, n.monthly_quota_mb) AS detail
FROM numbers n WHERE n.monthly_quota_mb > 0 AND n.used_flow_mb >= n.monthly_quota_mb * $1"""
REGION = """
SELECT n.msisdn AS subject, n.chip_id, n.id AS number_id,
       format('seen in %s, restricted to %s', n.city, array_to_string(r.cities, ',')) AS detail
FROM numbers n JOIN region_restrictions r ON r.number_id = n.id
WHERE n.city IS NOT NULL AND NOT (n.city = ANY(r.cities))"""
HIGH_RISK = """
SELECT n.msisdn AS subject, n.chip_id, n.id AS number_id, format('seen in %s: %s', n.city, h.reason) AS detail
FROM numbers n JOIN high_risk_areas h ON h.city = n.city"""
BLACKLISTED = """
SELECT c.eid AS subject, c.id AS chip_id, NULL::bigint AS number_id, format('%s %s: %s', b.kind, b.value, b.reason)
FROM chips c JOIN blacklist b ON (b.kind = 'eid' AND b.value = c.eid) OR (b.kind = 'imei' AND b.value = c.imei)"""
EXPIRING = """
SELECT c.eid AS subject, c.id AS chip_id, NULL::bigint AS number_id,
       format('temporary number %s expires on %s', c.temp_msisdn, c.temp_expires_on) AS detail
FROM chips c WHERE c.state IN (1, 2, 3, 5, 6) AND c.temp_expires_on <= $1::date + $2::int"""
CHIP_BY_EID = "SELECT id, eid, imei FROM chips WHERE eid = $1"
# the chip a number is written into (bound), or reserved for by an open task
CHIP_OF_NUMBER = """
SELECT c.eid FROM numbers n JOIN chips c ON c.id = n.chip_id WHERE n.id = $1
UNION ALL
SELECT c.eid FROM tasks t JOIN chips c ON c.id = t.chip_id WHERE t.number_id = $1 AND t.state IN (2, 3)
LIMIT 1"""
LAST_IMEI = "UPDATE numbers SET last_imei = $2 WHERE id = $1"
SEPARATION = "CARD_DEVICE_SEPARATION"

# kind → (severity, query, parameters given the day): every check is a full, idempotent pass
CHECKS = {
    "QUOTA_WARNING": ("general", QUOTA, lambda today: (QUOTA_WARN,)),
    "QUOTA_EXCEEDED": ("severe", QUOTA, lambda today: (1.0,)),
    "REGION_VIOLATION": ("severe", REGION, lambda today: ()),
    "HIGH_RISK_AREA": ("severe", HIGH_RISK, lambda today: ()),
    "BLACKLISTED": ("severe", BLACKLISTED, lambda today: ()),
    "TEMP_NUMBER_EXPIRING": ("general", EXPIRING, lambda today: (today, lifetimes.ALERT_DAYS)),
}


async def _check(conn: Any, kind: str, today: dt.date) -> tuple[int, int]:
    severity, sql, params = CHECKS[kind]
    rows = await conn.fetch(sql, *params(today))
    subjects = [r[0] for r in rows]
    opened = await conn.fetch(ops_store.OPEN_ALERTS, kind, severity, subjects, [r[1] for r in rows],
                              [r[2] for r in rows], [r[3] for r in rows])
    closed = await conn.fetch(ops_store.CLOSE_ALERTS, kind, subjects, "condition cleared")
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
        chip = await conn.fetchrow(CHIP_BY_EID, eid)
        if chip is None or chip["imei"] is None or chip["imei"] == imei:
            return False
        await conn.execute(ops_store.OPEN_ALERTS, SEPARATION, "severe", [eid], [chip["id"]], [None],
                           [f"{source}: IMEI {imei} differs from the bound {chip['imei']}"])
        return True


async def restrict_region(db: Any, msisdn: str, cities: list[str], actor: str) -> None:
    """R32: a fixed-location number may only be used in these cities (empty list lifts it)."""
    identifiers.validate_msisdn(msisdn)
    cities = [c.strip() for c in cities if c.strip()]
    async with connection(db) as conn, conn.transaction():
        number_id = await conn.fetchval("SELECT id FROM numbers WHERE msisdn = $1", msisdn)
        if number_id is None:
            raise NotFound(f"no number {msisdn}", reason="NUMBER_NOT_FOUND")
        await conn.execute("DELETE FROM region_restrictions WHERE number_id = $1", number_id)
        if cities:
            await conn.execute("INSERT INTO region_restrictions (number_id, cities) VALUES ($1, $2)",
                               number_id, cities)
        await audit.record(conn, actor, "monitor.region", msisdn, cities=cities)


async def set_high_risk(db: Any, city: str, reason: str | None, actor: str) -> None:
    """R32: add (with a reason) or remove (reason None) a configured high-risk area."""
    if not city.strip() or len(city) > 64:
        raise InvalidArgument("city is required (at most 64 characters)", reason="CITY_INVALID")
    async with connection(db) as conn, conn.transaction():
        if reason is None:
            await conn.execute("DELETE FROM high_risk_areas WHERE city = $1", city.strip())
        else:
            await conn.execute("INSERT INTO high_risk_areas (city, reason) VALUES ($1, $2) ON CONFLICT (city) "
                               "DO UPDATE SET reason = excluded.reason", city.strip(), reason)
        await audit.record(conn, actor, "monitor.high_risk", city.strip(), reason=reason)


async def check_number_device(db: Any, number_id: int, imei: str, *, source: str) -> bool:
    """R32 for the usage and location feeds: the IMEI a record of this number carries, against its chip's."""
    async with connection(db) as conn:
        await conn.execute(LAST_IMEI, number_id, imei)
        eid = await conn.fetchval(CHIP_OF_NUMBER, number_id)
        if eid is None:
            return False
        return await check_device(conn, eid, imei, source=source)
