"""Staff accounts (§10.1.3, R28): roles, activity, revocation of tokens, the permission review.

Rows are asyncpg Records of the staff_accounts table (`SELECT *`) unless a function says otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

SELECT = "SELECT * FROM staff_accounts WHERE username = $1"
TOUCH = "UPDATE staff_accounts SET last_active_at = now() WHERE id = $1"
TOUCH_NAMES = "UPDATE staff_accounts SET last_active_at = now() WHERE username = ANY($1::text[])"
COUNT = "SELECT count(*) FROM staff_accounts"
ADMINS = "SELECT count(*) FROM staff_accounts WHERE 'admin' = ANY(roles) AND disabled_at IS NULL"
INSERT = "INSERT INTO staff_accounts (username, display_name, phone, roles) VALUES ($1, $2, $3, $4) RETURNING *"
SET_ROLES = "UPDATE staff_accounts SET roles = $2 WHERE username = $1 RETURNING *"
DISABLE = "UPDATE staff_accounts SET disabled_at = coalesce(disabled_at, now()) WHERE username = $1 RETURNING *"
REVIEW = """
SELECT username, roles, created_at, last_active_at, reviewed_at, disabled_at,
       last_active_at IS NULL AS unused,
       last_active_at < now() - $1::interval AS stale,
       coalesce(reviewed_at, created_at) < now() - $2::interval AS review_due
FROM staff_accounts ORDER BY username"""
MARK_REVIEWED = "UPDATE staff_accounts SET reviewed_at = now() WHERE disabled_at IS NULL"
# AccountRow of the token cache: username, roles, revoked (epoch seconds of the last revocation, 0: never)
ACCOUNTS = """
SELECT username, roles, coalesce(extract(epoch FROM tokens_revoked_at), 0)::bigint AS revoked
FROM staff_accounts WHERE disabled_at IS NULL"""
REVOKE = "UPDATE staff_accounts SET tokens_revoked_at = now() WHERE username = $1 RETURNING tokens_revoked_at"


async def get(db: Any, username: str) -> Any:
    return await db.fetchrow(SELECT, username)


async def touch(db: Any, account_id: int) -> None:
    """The account acted now (the review's last activity)."""
    await db.execute(TOUCH, account_id)


async def touch_names(db: Any, usernames: list[str]) -> None:
    """These accounts used the API since the last refresh, in one statement."""
    await db.execute(TOUCH_NAMES, usernames)


async def count(db: Any) -> int:
    return await db.fetchval(COUNT)


async def active_admins(db: Any) -> int:
    return await db.fetchval(ADMINS)


async def insert(db: Any, username: str, display_name: str, phone: str | None, roles: list[str]) -> Any:
    return await db.fetchrow(INSERT, username, display_name, phone, roles)


async def set_roles(db: Any, username: str, roles: list[str]) -> Any:
    """The account with its new roles, or None if there is no such account."""
    return await db.fetchrow(SET_ROLES, username, roles)


async def disable(db: Any, username: str) -> Any:
    """The account, disabled (kept for traceability), or None if there is no such account."""
    return await db.fetchrow(DISABLE, username)


async def review(db: Any, stale: dt.timedelta, review_due: dt.timedelta) -> list[Any]:
    """Every account with the flags unused, stale and review_due (R28)."""
    return await db.fetch(REVIEW, stale, review_due)


async def mark_reviewed(db: Any) -> None:
    await db.execute(MARK_REVIEWED)


async def accounts(db: Any) -> list[Any]:
    """The AccountRows of every active account."""
    return await db.fetch(ACCOUNTS)


async def revoke_tokens(db: Any, username: str) -> Any:
    """Every token issued until now is revoked; a Record (tokens_revoked_at), or None if no such account."""
    return await db.fetchrow(REVOKE, username)
