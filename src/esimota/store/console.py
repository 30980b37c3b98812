"""The console's own records (migration 0017): staff passwords, sessions, sign-in attempts; aggregates its pages chart."""

from __future__ import annotations

import datetime as dt
from typing import Any

# -- staff passwords and sessions (R28) -------------------------------------------------------------
SET_PASSWORD = """
UPDATE staff_accounts SET password_hash = $2, password_set_at = now() WHERE username = $1 RETURNING id"""
# a new password ends every open session of the account
END_SESSIONS_OF = "UPDATE console_sessions SET ended_at = now() WHERE staff_id = $1 AND ended_at IS NULL"
ACCOUNT = "SELECT id, username, roles, password_hash, disabled_at FROM staff_accounts WHERE username = $1"
FAILURES = """
SELECT (SELECT count(*) FROM console_signins WHERE username = $1 AND NOT ok AND at > now() - $3::interval) AS by_user,
       (SELECT count(*) FROM console_signins WHERE address = $2 AND NOT ok AND at > now() - $3::interval) AS by_address"""
ATTEMPT = "INSERT INTO console_signins (username, address, ok) VALUES ($1, $2, $3)"
NEW_SESSION = """
INSERT INTO console_sessions (token_hash, staff_id, csrf, address) VALUES ($1, $2, $3, $4) RETURNING id"""
# a session is good while its account is active and it was used within the idle limit
SESSION = """
SELECT s.id, s.csrf, a.username, a.display_name, a.roles
FROM console_sessions s JOIN staff_accounts a ON a.id = s.staff_id
WHERE s.token_hash = $1 AND s.ended_at IS NULL AND s.seen_at > now() - $2::interval AND a.disabled_at IS NULL
  AND (a.tokens_revoked_at IS NULL OR a.tokens_revoked_at < s.created_at)"""
TOUCH_SESSION = "UPDATE console_sessions SET seen_at = now() WHERE id = $1"
TOUCH_ACCOUNT = "UPDATE staff_accounts SET last_active_at = now() WHERE username = $1"
END_SESSION = "UPDATE console_sessions SET ended_at = now() WHERE id = $1 AND ended_at IS NULL"
PURGE_SIGNINS = "DELETE FROM console_signins WHERE at < now() - $1::interval"
PURGE_SESSIONS = "DELETE FROM console_sessions WHERE coalesce(ended_at, seen_at) < now() - $1::interval"

# -- aggregates of the overview, chips and numbers pages (R13, R29) ----------------------------------
# finished writes per hour (24 h) or per day (30 d), China Standard Time; state 4 succeeded, 5 failed
WRITES_BY_SLOT = """
SELECT date_trunc($2, finished_at AT TIME ZONE 'Asia/Shanghai') AS slot,
       count(*) FILTER (WHERE state = 4) AS ok, count(*) FILTER (WHERE state = 5) AS failed
FROM tasks WHERE state IN (4, 5) AND finished_at >= $1 GROUP BY 1 ORDER BY 1"""
CARDS_BY_STATE = "SELECT state, count(*) AS n FROM chips GROUP BY state ORDER BY state"
OPEN_EXCEPTIONS_BY_DEADLINE = " WHERE e.closed_at IS NULL ORDER BY e.deadline_at, e.id LIMIT $1"
BATCH_PROGRESS = """
SELECT b.name AS batch, count(c.id) AS chips,
       count(c.id) FILTER (WHERE c.production_status = 'produced') AS produced,
       count(c.id) FILTER (WHERE c.logistics_status = 'delivered') AS delivered,
       count(c.id) FILTER (WHERE c.state = 4) AS written, b.created_at
FROM chip_batches b LEFT JOIN chips c ON c.batch_id = b.id GROUP BY b.id ORDER BY b.id DESC LIMIT $1"""
NUMBER_INVENTORY = """
SELECT province_code,
       CASE WHEN status = 'available' AND client_id IS NOT NULL THEN 'allocated' ELSE status END AS status,
       count(*) AS n
FROM numbers GROUP BY 1, 2 ORDER BY 1, 2"""


# -- repositories: the console's services call these ------------------------------------------------------
async def set_password(conn: Any, username: str, hashed: str) -> int | None:
    """Store an account's password hash; its id (None: no such account)."""
    return await conn.fetchval(SET_PASSWORD, username, hashed)


async def end_sessions_of(conn: Any, staff_id: int) -> None:
    """End every open console session of an account."""
    await conn.execute(END_SESSIONS_OF, staff_id)


async def failures(conn: Any, username: str, address: str, window: dt.timedelta) -> Any:
    """Failed sign-ins within `window`: a Record (by_user, by_address)."""
    return await conn.fetchrow(FAILURES, username, address, window)


async def account(conn: Any, username: str) -> Any:
    """An account's id, username, roles, password hash and disabled_at (None: no such account)."""
    return await conn.fetchrow(ACCOUNT, username)


async def attempt(conn: Any, username: str, address: str, ok: bool) -> None:
    """Record one sign-in attempt (counted by the throttle when it failed)."""
    await conn.execute(ATTEMPT, username, address, ok)


async def new_session(conn: Any, token_hash: bytes, staff_id: int, csrf: str, address: str) -> int:
    """Open a console session (only the cookie's hash is stored); its id."""
    return await conn.fetchval(NEW_SESSION, token_hash, staff_id, csrf, address)


async def touch_account(conn: Any, username: str) -> None:
    await conn.execute(TOUCH_ACCOUNT, username)


async def session(conn: Any, token_hash: bytes, idle: dt.timedelta) -> Any:
    """The live session of a cookie's hash (not ended, not idle for `idle`, account active), or None."""
    return await conn.fetchrow(SESSION, token_hash, idle)


async def touch_session(conn: Any, session_id: int) -> None:
    await conn.execute(TOUCH_SESSION, session_id)


async def end_session(conn: Any, session_id: int) -> None:
    await conn.execute(END_SESSION, session_id)


async def purge(conn: Any, keep: dt.timedelta) -> int:
    """Sign-in attempts and sessions over for longer than `keep`: how many rows were deleted."""
    a = await conn.execute(PURGE_SIGNINS, keep)
    b = await conn.execute(PURGE_SESSIONS, keep)
    return int(a.split()[-1]) + int(b.split()[-1])


async def writes_by_slot(conn: Any, start: Any, unit: str) -> list[Any]:
    """Writes finished per hour or day since `start`: Records (slot, ok, failed)."""
    return await conn.fetch(WRITES_BY_SLOT, start, unit)


async def cards_by_state(conn: Any) -> list[Any]:
    """Chips per lifecycle state: Records (state, n)."""
    return await conn.fetch(CARDS_BY_STATE)


async def open_exceptions(conn: Any, select: str, limit: int) -> list[Any]:
    """Open exceptions (rows of the exceptions list's `select`), the nearest handling deadline first."""
    return await conn.fetch(select + OPEN_EXCEPTIONS_BY_DEADLINE, limit)


async def batch_progress(conn: Any, limit: int) -> list[Any]:
    """Production and logistics progress of the newest batches."""
    return await conn.fetch(BATCH_PROGRESS, limit)


async def number_inventory(conn: Any) -> list[Any]:
    """Operational numbers per province and status: Records (province_code, status, n)."""
    return await conn.fetch(NUMBER_INVENTORY)
