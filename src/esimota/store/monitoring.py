"""Number monitoring's repository (R32, R12): the checks' queries, region restrictions, high-risk areas.

A check's rows are asyncpg Records (subject, chip_id, number_id, detail): what an alert is opened for.
"""

from __future__ import annotations

from typing import Any

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
REGION_NUMBER = "SELECT id FROM numbers WHERE msisdn = $1"
CLEAR_REGION = "DELETE FROM region_restrictions WHERE number_id = $1"
SET_REGION = "INSERT INTO region_restrictions (number_id, cities) VALUES ($1, $2)"
REMOVE_HIGH_RISK = "DELETE FROM high_risk_areas WHERE city = $1"
SET_HIGH_RISK = """INSERT INTO high_risk_areas (city, reason) VALUES ($1, $2) ON CONFLICT (city) DO UPDATE SET reason = excluded.reason"""


CHECKS = {"quota": QUOTA, "region": REGION, "high_risk": HIGH_RISK, "blacklisted": BLACKLISTED, "expiring": EXPIRING}


async def check(conn: Any, query: str, *params: Any) -> list[Any]:
    """The rows of one check (a name of CHECKS) with its parameters."""
    return await conn.fetch(CHECKS[query], *params)


async def chip_by_eid(db: Any, eid: str) -> Any:
    """A Record (id, eid, imei) of the chip, or None."""
    return await db.fetchrow(CHIP_BY_EID, eid)


async def number_id(db: Any, msisdn: str) -> int | None:
    return await db.fetchval(REGION_NUMBER, msisdn)


async def restrict_region(conn: Any, number_id: int, cities: list[str]) -> None:
    """The number may be used only in `cities` from now on (none: no restriction)."""
    await conn.execute(CLEAR_REGION, number_id)
    if cities:
        await conn.execute(SET_REGION, number_id, cities)


async def set_high_risk(conn: Any, city: str, reason: str | None) -> None:
    """Add (with its reason) or remove (reason None) a high-risk area."""
    if reason is None:
        await conn.execute(REMOVE_HIGH_RISK, city)
    else:
        await conn.execute(SET_HIGH_RISK, city, reason)


async def note_imei(conn: Any, number_id: int, imei: str) -> None:
    """The IMEI the number's latest usage or location record carried."""
    await conn.execute(LAST_IMEI, number_id, imei)


async def eid_of_number(conn: Any, number_id: int) -> str | None:
    """The EID of the chip the number is written into, or reserved for by an open task; None otherwise."""
    return await conn.fetchval(CHIP_OF_NUMBER, number_id)
