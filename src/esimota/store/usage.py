"""Usage records and locations of numbers (§7.2.3.3, §7.2.3.5, R21): the feeds' repository."""

from __future__ import annotations

import datetime as dt
from typing import Any

NUMBER_ID = "SELECT id FROM numbers WHERE msisdn = $1 OR iccid = $2"
INSERT_USAGE = """
INSERT INTO usage_records (record_id, number_id, month, used_mb, recorded_at)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::date[], $4::numeric[], $5::timestamptz[])
ON CONFLICT (record_id) DO NOTHING RETURNING number_id"""
# numbers.used_flow_mb mirrors the current month's total so every reader sees the same figure.
REFRESH_TOTALS = """
UPDATE numbers n SET used_flow_mb = coalesce(u.total, 0), usage_updated_at = u.last
FROM (SELECT n2.id, sum(r.used_mb) AS total, max(r.recorded_at) AS last
      FROM numbers n2 LEFT JOIN usage_records r ON r.number_id = n2.id AND r.month = $2
      WHERE n2.id = ANY($1::bigint[]) GROUP BY n2.id) u
WHERE n.id = u.id"""
MONTH_TOTAL = "SELECT coalesce(sum(used_mb), 0) AS used, max(recorded_at) AS last FROM usage_records " \
              "WHERE number_id = (SELECT id FROM numbers WHERE msisdn = $1) AND month = $2"
SET_LOCATION = """
UPDATE numbers SET city = $2, location_at = $3
WHERE id = $1 AND (location_at IS NULL OR location_at < $3)"""


async def number_id(db: Any, msisdn: str | None, iccid: str | None) -> int | None:
    """The number named by its MSISDN or its ICCID, or None."""
    return await db.fetchval(NUMBER_ID, msisdn, iccid)


async def add_usage(conn: Any, rows: list[tuple], current: dt.date) -> list[Any]:
    """Usage records (record_id, number_id, month, used_mb, recorded_at) in one statement; a record_id
    seen before adds nothing. Then the `current` month's totals of the numbers touched are mirrored on
    the numbers (records of other months are kept, never mirrored). Returns the Records (number_id) of
    the rows stored."""
    stored = await conn.fetch(INSERT_USAGE, *[list(col) for col in zip(*rows)])
    if any(r[2] == current for r in rows):
        await conn.execute(REFRESH_TOTALS, list({r[1] for r in rows if r[2] == current}), current)
    return stored


async def set_location(db: Any, number_id: int, city: str, at: dt.datetime) -> bool:
    """The number was seen in `city` at `at`; False if a later location is stored already (R21)."""
    done = await db.execute(SET_LOCATION, number_id, city, at)
    return done.endswith(" 1")


async def month_total(db: Any, msisdn: str, month: dt.date) -> Any:
    """A Record (used, last) of the number's usage in the month."""
    return await db.fetchrow(MONTH_TOTAL, msisdn, month)
