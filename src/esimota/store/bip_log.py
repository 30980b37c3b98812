"""What is kept of refused BIP channels (DESIGN §5.4 step 1, R1, R27): counts per source and minute, retention."""

from __future__ import annotations

import datetime as dt
from typing import Any

RETENTION_DAYS = 190  # as the call log (R27: at least 6 months), then deleted (R26)

# refusals before a MAC verified (unknown card, protocol error): one row per source, reason and minute
COUNT_REFUSALS = """
INSERT INTO bip_refusals AS r (minute, source, reason, frames)
SELECT date_trunc('minute', now()), s, reason, n FROM unnest($1::text[], $2::smallint[], $3::int[]) AS u(s, reason, n)
ON CONFLICT (minute, source, reason) DO UPDATE SET frames = r.frames + excluded.frames"""
PURGE_ATTEMPTS = """
DELETE FROM bip_attempts WHERE id IN (SELECT id FROM bip_attempts WHERE at < $1 ORDER BY id LIMIT 10000)"""
PURGE_REFUSALS = "DELETE FROM bip_refusals WHERE minute < $1"


async def count_refusals(conn: Any, counts: dict[tuple[str, int], int]) -> None:
    """Add a group's refusals, {(source, reason): frames}, to this minute's counts (sorted: one lock order)."""
    keys = sorted(counts)
    await conn.execute(COUNT_REFUSALS, [k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys])


async def purge(db: Any, *, days: int = RETENTION_DAYS, now: dt.datetime | None = None) -> int:
    """Delete channel attempts and refusal counts older than `days`, in small batches; returns rows deleted."""
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)
    total = int((await db.execute(PURGE_REFUSALS, cutoff)).split()[-1])
    while True:
        done = int((await db.execute(PURGE_ATTEMPTS, cutoff)).split()[-1])
        total += done
        if done < 10000:
            return total
