"""Staff roles (§10.1.3, R28): least privilege on every admin command, audited, with a permission review."""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..store import audit
from ..store import staff as staff_store
from .common import connection

ROLES = ("admin", "operator", "auditor", "support")
# action → roles allowed. Auditors read everything they review and change nothing (R28).
PERMISSIONS: dict[str, frozenset] = {
    "staff.manage": frozenset({"admin"}),
    "staff.review": frozenset({"admin", "auditor"}),
    # one's own admin API token; what each call may do is checked per call (service/staff_auth.py)
    "staff.token": frozenset(ROLES),
    "backup.create": frozenset({"admin", "operator"}),
    "backup.restore": frozenset({"admin"}),
    "report.read": frozenset({"admin", "operator", "auditor"}),
    "export.create": frozenset({"admin", "operator"}),
    "export.read": frozenset({"admin", "operator", "auditor"}),
    "exception.read": frozenset({"admin", "operator", "auditor", "support"}),
    "exception.handle": frozenset({"admin", "operator"}),
    "chip.read": frozenset({"admin", "operator", "auditor", "support"}),
    "chip.manage": frozenset({"admin", "operator"}),
    "monitor.configure": frozenset({"admin", "operator"}),
    # the admin commands of cli/ (chips, client, keys) (DESIGN §7) and the AdminService rpcs (admin.proto)
    "client.manage": frozenset({"admin"}),
    "keys.rotate": frozenset({"admin"}),
    # the console (api/console): the audit log is read by those who review (R28)
    "audit.read": frozenset({"admin", "auditor"}),
    "resources.import": frozenset({"admin", "operator"}),
}
STALE_DAYS = 90     # no activity for this long: the review proposes revoking (leavers, §10.1.3)
REVIEW_DAYS = 180   # accounts not reviewed for this long are listed
_USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,31}$")


def identity(explicit: str | None) -> str:
    """Who is acting: `--as USER`, else ESIMOTA_STAFF; nobody is an error (every change is traceable, R1)."""
    who = (explicit or os.environ.get("ESIMOTA_STAFF") or "").strip()
    if not who:
        raise PermissionDenied("say who you are: --as USER or ESIMOTA_STAFF", reason="STAFF_REQUIRED")
    return who


async def authorize(db: Any, username: str | None, action: str) -> str:
    """The actor string for the audit log if `username` may do `action`; else PermissionDenied (audited)."""
    allowed = PERMISSIONS[action]
    who = identity(username)
    async with connection(db) as conn:
        row = await staff_store.get(conn, who)
        if row is None or row["disabled_at"] is not None:
            await audit.record(conn, f"staff:{who}", "denied", action, why="unknown or disabled account")
            raise PermissionDenied(f"no active staff account {who!r}", reason="STAFF_UNKNOWN")
        if not allowed.intersection(row["roles"]):
            await audit.record(conn, f"staff:{who}", "denied", action, roles=list(row["roles"]))
            raise PermissionDenied(f"{who} ({','.join(row['roles'])}) may not {action}", reason="ROLE_FORBIDDEN")
        await staff_store.touch(conn, row["id"])
    return f"staff:{who}"


def _roles(text: str | list[str]) -> list[str]:
    roles = [r.strip() for r in (text.split(",") if isinstance(text, str) else text) if r.strip()]
    if not roles or any(r not in ROLES for r in roles):
        raise InvalidArgument(f"roles must be among {', '.join(ROLES)}", reason="ROLE_INVALID")
    return sorted(set(roles))


async def add(db: Any, username: str, display_name: str, roles: str | list[str], actor_name: str | None,
              phone: str | None = None) -> Any:
    """A new account (admin only); the very first account of a platform must be an admin (bootstrap)."""
    if not _USERNAME.match(username or ""):
        raise InvalidArgument("username: 2–32 of a-z 0-9 . _ -, starting with a letter", reason="USERNAME_INVALID")
    roles = _roles(roles)
    async with connection(db) as conn:
        empty = await staff_store.count(conn) == 0
    if empty and "admin" not in roles:
        raise InvalidArgument("the first staff account must be an admin", reason="BOOTSTRAP_ADMIN")
    # denials are audited outside the transaction below, so a refusal leaves its trace (R28)
    actor = "bootstrap" if empty else await authorize(db, actor_name, "staff.manage")
    async with connection(db) as conn, conn.transaction():
        if await staff_store.get(conn, username) is not None:
            raise InvalidArgument(f"{username} exists already", reason="USERNAME_TAKEN")
        row = await staff_store.insert(conn, username, display_name or username, phone, roles)
        await audit.record(conn, actor, "staff.add", username, roles=roles)
        return row


async def _change(db: Any, actor_name: str | None, action: str, change: Any, username: str, *args: Any) -> Any:
    actor = await authorize(db, actor_name, "staff.manage")
    async with connection(db) as conn, conn.transaction():
        row = await change(conn, username, *args)
        if row is None:
            raise NotFound(f"no staff account {username!r}", reason="STAFF_NOT_FOUND")
        if await staff_store.active_admins(conn) == 0:
            raise InvalidArgument("the last active admin cannot be removed", reason="LAST_ADMIN")
        await audit.record(conn, actor, action, username, **({"roles": list(args[0])} if args else {}))
        return row


async def set_roles(db: Any, username: str, roles: str | list[str], actor_name: str | None) -> Any:
    """Change an account's roles (a post change, §10.1.3)."""
    return await _change(db, actor_name, "staff.roles", staff_store.set_roles, username, _roles(roles))


async def disable(db: Any, username: str, actor_name: str | None) -> Any:
    """Revoke a leaver (§10.1.3); the account stays for traceability."""
    return await _change(db, actor_name, "staff.disable", staff_store.disable, username)


async def review(db: Any, actor_name: str | None, *, mark: bool = False, stale_days: int = STALE_DAYS) -> dict:
    """R28 permission review: every account with its roles; unused, stale and review-due ones listed."""
    actor = await authorize(db, actor_name, "staff.manage" if mark else "staff.review")
    async with connection(db) as conn, conn.transaction():
        rows = [dict(r) for r in await staff_store.review(conn, dt.timedelta(days=stale_days),
                                                          dt.timedelta(days=REVIEW_DAYS))]
        active = [r for r in rows if r["disabled_at"] is None]
        out = {"accounts": rows, "unused": [r["username"] for r in active if r["unused"]],
               "stale": [r["username"] for r in active if r["stale"]],
               "review_due": [r["username"] for r in active if r["review_due"]]}
        if mark:
            await staff_store.mark_reviewed(conn)
        await audit.record(conn, actor, "staff.review", None, marked=mark, unused=out["unused"], stale=out["stale"])
        return out
