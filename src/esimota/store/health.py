"""Health repository: the database round trip the readiness probe makes."""

from __future__ import annotations

from typing import Any

PING = "SELECT 1"


async def ping(pool: Any) -> None:
    """One `SELECT 1` round trip; raises what the pool raises when the database is not there."""
    await pool.fetchval(PING)
