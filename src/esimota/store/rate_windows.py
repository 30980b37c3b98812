"""Rate-windows repository (R17): the per-client call counts the API workers share, one row per client and window."""

from __future__ import annotations

from typing import Any

SYNC = """
INSERT INTO rate_windows (client_id, window_no, calls)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::int[]) ORDER BY 1
ON CONFLICT (client_id, window_no) DO UPDATE SET calls = rate_windows.calls + EXCLUDED.calls"""
TOTALS = "SELECT client_id, calls FROM rate_windows WHERE window_no = $1"
FORGET = "DELETE FROM rate_windows WHERE window_no < $1"


async def add_calls(conn: Any, window_no: int, sent: dict[int, int]) -> None:
    """Adds this worker's unsynced counts of one window, all clients in one statement (sorted: no deadlock)."""
    keys = sorted(sent)
    await conn.execute(SYNC, keys, [window_no] * len(keys), [sent[k] for k in keys])


async def totals(conn: Any, window_no: int) -> dict[int, int]:
    """Every worker's calls in this window, by client id."""
    return {r["client_id"]: r["calls"] for r in await conn.fetch(TOTALS, window_no)}


async def forget_before(conn: Any, window_no: int) -> None:
    """Drops the rows of windows older than `window_no`."""
    await conn.execute(FORGET, window_no)
