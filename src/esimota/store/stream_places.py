"""Stream places (issue 14, R17): the server streams each client holds open, counted over every worker and node.

A client has `cap` numbered places (0 … cap-1), one row each while taken. Taking one is a single statement:
it picks the lowest place that has no live row and inserts it, or takes over an expired row; the primary
key (client_id, place) makes two takers of one place exclude each other whichever worker or node they run
on, so no more than `cap` places are ever live. A taker that lost such a race sees the place it picked
taken and tries the next. Expiry is judged by the database's clock only (now()), as job leases are.
"""

from __future__ import annotations

from typing import Any

# One statement: `free` is the lowest place without a live row as this statement sees the table; `took` is
# that place if this statement got it (inserted, or took over a row that had expired). (NULL, true) means
# another taker got the place first: the caller tries again.
TAKE = """
WITH free AS (
    SELECT min(n) AS place FROM generate_series(0, $2::int - 1) AS n
    WHERE n NOT IN (SELECT place FROM stream_places WHERE client_id = $1 AND expires_at > now())),
took AS (
    INSERT INTO stream_places AS p (client_id, place, node, worker, holder, expires_at)
    SELECT $1, place, $3, $4, $5, now() + make_interval(secs => $6) FROM free WHERE place IS NOT NULL
    ON CONFLICT (client_id, place) DO UPDATE SET node = excluded.node, worker = excluded.worker,
        holder = excluded.holder, opened_at = now(), expires_at = excluded.expires_at
    WHERE p.expires_at <= now()
    RETURNING place)
SELECT (SELECT place FROM took) AS took, (SELECT place FROM free) IS NOT NULL AS free"""
LEAVE = "DELETE FROM stream_places WHERE client_id = $1 AND place = $2 AND holder = $3"
# Renew the places this worker process still holds (listed: a place whose leave failed is not renewed, and
# frees itself once expired), and drop every expired row of any holder on the way; returns those renewed.
RENEW = """
WITH renewed AS (
    UPDATE stream_places SET expires_at = now() + make_interval(secs => $4)
    WHERE holder = $1 AND (client_id, place) IN (SELECT * FROM unnest($2::bigint[], $3::int[]))
    RETURNING client_id, place),
expired AS (
    DELETE FROM stream_places WHERE expires_at <= now() AND holder <> $1)
SELECT client_id, place FROM renewed"""
GIVE_BACK_ALL = "DELETE FROM stream_places WHERE holder = $1"

RACES = 8  # a taker that lost this many races in a row is refused as if the cap were reached


async def take(db: Any, client_id: int, cap: int, node: str, worker: int, holder: Any, ttl: float,
               timeout: float) -> int | None:
    """Take a free place of `client_id` for `ttl` seconds: its number, or None when `cap` are live."""
    for _ in range(RACES):
        row = await db.fetchrow(TAKE, client_id, cap, node, worker, holder, ttl, timeout=timeout)
        if row["took"] is not None:
            return row["took"]
        if not row["free"]:
            return None
    return None


async def leave(db: Any, client_id: int, place: int, holder: Any, timeout: float) -> None:
    """Give a place back (only while `holder` still holds it: an expired place may be someone else's)."""
    await db.execute(LEAVE, client_id, place, holder, timeout=timeout)


async def renew(db: Any, holder: Any, places: list[tuple[int, int]], ttl: float,
                timeout: float) -> set[tuple[int, int]]:
    """Renew `places` (client id, place) of `holder` for `ttl` seconds: those still held, as a set."""
    rows = await db.fetch(RENEW, holder, [c for c, _ in places], [p for _, p in places], ttl, timeout=timeout)
    return {(r["client_id"], r["place"]) for r in rows}


async def give_back_all(db: Any, holder: Any, timeout: float) -> None:
    """Every place of `holder` (a worker draining)."""
    await db.execute(GIVE_BACK_ALL, holder, timeout=timeout)

