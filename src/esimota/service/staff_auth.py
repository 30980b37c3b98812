"""Staff on the admin API (R28): signed 24 h staff tokens, roles cached ≤ 2 s, every denial audited."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import time
from typing import Any

from .. import config
from ..background import Periodic
from ..errors import InvalidArgument, NotFound, PermissionDenied, Unauthenticated
from ..store import audit
from ..store import staff as staff_store
from . import staff
from .auth import derive_key
from .common import connection


TOKEN_TTL = 86400  # a working day and then some: a leaver's token dies with the account anyway
REFRESH_S = 2.0    # role changes and disabled accounts reach every process within this (≤ 5 s)
MIN_RELOAD_S = 0.25  # an unknown name reloads the accounts at most this often
PREFIX = "st1."


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


class StaffTokenSigner:
    """`st1.<username>.<expiry>.<mac>`, mac = HMAC-SHA256 (truncated to 128 bits) under a master-key-derived key.

    Usernames may hold dots: the expiry and the mac are the last two fields.
    """

    def __init__(self, master: bytes) -> None:
        self._key = derive_key(master, b"staff token v1")

    def _mac(self, body: str) -> str:
        return _b64(hmac.new(self._key, body.encode(), hashlib.sha256).digest()[:16])

    def issue(self, username: str, now: float | None = None) -> tuple[str, int]:
        expiry = int(now if now is not None else time.time()) + TOKEN_TTL
        body = f"{PREFIX}{username}.{expiry}"
        return f"{body}.{self._mac(body)}", TOKEN_TTL

    def verify(self, token: str | None, now: float | None = None) -> str:
        """The username of a well-signed, unexpired staff token; else 401."""
        return self.verify_issued(token, now)[0]

    def verify_issued(self, token: str | None, now: float | None = None) -> tuple[str, int]:
        """(username, issue time in Unix seconds) of a well-signed, unexpired staff token; else 401."""
        if not token or not token.startswith(PREFIX):
            raise Unauthenticated("a staff token is required (esimota staff token)", reason="STAFF_TOKEN_REQUIRED")
        parts = token[len(PREFIX):].rsplit(".", 2) if len(token) < 256 else []
        if len(parts) != 3 or not parts[0] or not parts[1].isdigit():
            raise Unauthenticated("the staff token is malformed", reason="TOKEN_INVALID")
        if not hmac.compare_digest(self._mac(f"{PREFIX}{parts[0]}.{parts[1]}"), parts[2]):
            raise Unauthenticated("the staff token is not valid", reason="TOKEN_INVALID")
        if int(parts[1]) <= (now if now is not None else time.time()):
            raise Unauthenticated("the staff token has expired; get a new one", reason="TOKEN_EXPIRED")
        return parts[0], int(parts[1]) - TOKEN_TTL


def signer_from_config() -> StaffTokenSigner:
    return StaffTokenSigner(config.master_key())


async def admin_token(db: Any, signer: StaffTokenSigner, username: str) -> dict:
    """`esimota api admin-token USER`: an ordinary 24 h staff token of the named, active account, for the
    staff services (AdminService, IngestService feeds); what it may do is that account's roles. Run by
    whoever holds the master key, which can sign any token: the audit log says who got one (R1, R28)."""
    who = staff.identity(username)
    async with connection(db) as conn:
        row = await staff_store.get(conn, who)
        if row is None or row["disabled_at"] is not None:
            raise NotFound(f"no active staff account {who!r}", reason="STAFF_UNKNOWN")
        token, ttl = signer.issue(who)
        await audit.record(conn, "master-key", "staff.admin_token", who, expires_in=ttl)  # never the token
    return {"username": who, "token": token, "expire_time": ttl}


async def revoke_tokens(db: Any, username: str, actor_name: str | None) -> dict:
    """`esimota staff revoke USER`: every token of the account issued until now stops working on every
    process within REFRESH_S (≤ 5 s); the account stays, and a new token may be issued (R28 leavers)."""
    actor = await staff.authorize(db, actor_name, "staff.manage")
    async with connection(db) as conn, conn.transaction():
        row = await staff_store.revoke_tokens(conn, username)
        if row is None:
            raise NotFound(f"no staff account {username!r}", reason="STAFF_UNKNOWN")
        await audit.record(conn, actor, "staff.revoke", username)
    return {"username": username, "revoked_at": row["tokens_revoked_at"]}


async def issue_token(db: Any, signer: StaffTokenSigner, username: str | None, actor_name: str | None) -> dict:
    """`esimota staff token [USER]`: a token for the acting account only (no one holds another's identity)."""
    who = staff.identity(username or actor_name)
    if actor_name and username and actor_name != username:
        raise InvalidArgument("a staff token is issued to its holder only: drop --as or USER",
                              reason="STAFF_TOKEN_OTHER")
    actor = await staff.authorize(db, who, "staff.token")
    token, ttl = signer.issue(who)
    await audit.record(db, actor, "staff.token", who, expires_in=ttl)  # never the token itself
    return {"username": who, "token": token, "expire_time": ttl}


class StaffGate(Periodic):
    """Per admin call: the staff token's account and its roles from a cache — no database round trip.

    Active accounts are reloaded every REFRESH_S and on demand (an unknown name, at most 4×/s); activity
    is written back in one UPDATE per refresh, so `staff review` sees who uses the API.
    """

    every = REFRESH_S
    chore = "staff cache refresh"

    def __init__(self, pool: Any, signer: StaffTokenSigner | None = None) -> None:
        self.pool = pool
        self.signer = signer or signer_from_config()
        self.roles: dict[str, frozenset] = {}
        self.revoked: dict[str, int] = {}  # username -> tokens issued at or before this second are void
        self.loaded_at = 0.0
        self.seen: set[str] = set()
        self._lock = asyncio.Lock()

    async def reload(self) -> None:
        async with self._lock:
            await self._load()

    async def _load(self) -> None:
        started = time.monotonic()
        seen, self.seen = self.seen, set()
        if seen:
            await staff_store.touch_names(self.pool, sorted(seen))
        rows = await staff_store.accounts(self.pool)
        self.roles = {r["username"]: frozenset(r["roles"]) for r in rows}
        self.revoked = {r["username"]: r["revoked"] for r in rows if r["revoked"]}
        self.loaded_at = started

    async def _reload_since(self, arrived: float) -> None:
        """Reload unless a reload begun after `arrived` covers it; at most one every MIN_RELOAD_S."""
        async with self._lock:
            if self.loaded_at >= arrived:
                return
            wait = self.loaded_at + MIN_RELOAD_S - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)
            await self._load()

    async def tick(self) -> None:  # the database may be down for a while: the last view is kept
        await self.reload()

    async def authorise(self, token: str | None, action: str, rpc: str) -> str:
        """The actor (`staff:USER`) if the token's account may do `action`; else 401 / 403 (audited)."""
        allowed = staff.PERMISSIONS[action]
        who, issued = self.signer.verify_issued(token)
        roles = self.roles.get(who)
        if roles is None:  # added moments ago on another process, or unknown / disabled
            await self._reload_since(time.monotonic())
            roles = self.roles.get(who)
        if roles is None:
            await audit.record(self.pool, f"staff:{who}", "denied", action, rpc=rpc, why="unknown or disabled account")
            raise PermissionDenied(f"no active staff account {who!r}", reason="STAFF_UNKNOWN")
        if issued <= self.revoked.get(who, 0):  # `esimota staff revoke`: every earlier token ends (R28)
            raise Unauthenticated("the staff token was revoked; get a new one", reason="TOKEN_REVOKED")
        if not allowed & roles:
            await audit.record(self.pool, f"staff:{who}", "denied", action, rpc=rpc, roles=sorted(roles))
            raise PermissionDenied(f"{who} ({','.join(sorted(roles))}) may not {action}", reason="ROLE_FORBIDDEN")
        self.seen.add(who)
        return f"staff:{who}"
