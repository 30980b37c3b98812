"""Staff sign-in for the console (R28): scrypt passwords, throttled attempts, sessions with a CSRF token, audited."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidKey
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from ..errors import InvalidArgument, NotFound, PermissionDenied, RateLimited, Unauthenticated
from ..store import audit
from ..store import console as store
from . import staff
from .common import connection

# scrypt: n = 2**15, r = 8 → 32 MiB per hash (memory-hard; RFC 7914 §2 interactive-login parameters)
SCRYPT_LOG_N, SCRYPT_R, SCRYPT_P = 15, 8, 1
MIN_PASSWORD = 12
IDLE = dt.timedelta(hours=8)          # a session unused this long is over
THROTTLE_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_ACCOUNT = 5              # failed sign-ins per account within the window
MAX_FAILURES_ADDRESS = 20             # and per address (one address trying many accounts)
KEEP = dt.timedelta(days=190)         # sign-in attempts and ended sessions kept like the call log (R27)
_DUMMY = None                         # a hash to verify against when the account is unknown (same cost)


def _b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def _kdf(salt: bytes, log_n: int = SCRYPT_LOG_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> Scrypt:
    return Scrypt(salt=salt, length=32, n=2 ** log_n, r=r, p=p)


def hash_password(password: str) -> str:
    """`scrypt$LOGN$R$P$salt$hash` (base64): the parameters travel with the hash, so they can grow."""
    salt = secrets.token_bytes(16)
    digest = _kdf(salt).derive(password.encode())
    return f"scrypt${SCRYPT_LOG_N}${SCRYPT_R}${SCRYPT_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str | None) -> bool:
    """True when `password` matches `stored`; an absent or malformed hash costs as much and is False."""
    global _DUMMY
    if _DUMMY is None:
        _DUMMY = hash_password(secrets.token_urlsafe(16))
    parts = (stored or _DUMMY).split("$")
    if len(parts) != 6 or parts[0] != "scrypt":
        parts = _DUMMY.split("$")
        stored = None
    try:
        _kdf(base64.b64decode(parts[4]), int(parts[1]), int(parts[2]), int(parts[3])).verify(
            password.encode(), base64.b64decode(parts[5]))
        return stored is not None
    except (InvalidKey, ValueError):
        return False


def check_strength(password: str, username: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidArgument(f"a password has at least {MIN_PASSWORD} characters", reason="PASSWORD_WEAK")
    if username.lower() in password.lower():
        raise InvalidArgument("a password does not contain the username", reason="PASSWORD_WEAK")
    return password


async def set_password(db: Any, username: str, password: str, actor_name: str | None) -> dict:
    """`esimota staff password USER`: an account sets its own password; an admin sets anyone's.
    Every open console session of the account ends (a changed password locks out whoever had it)."""
    actor_who = staff.identity(actor_name)
    if actor_who != username:
        actor = await staff.authorize(db, actor_who, "staff.manage")
    else:
        actor = await staff.authorize(db, actor_who, "staff.token")  # any active account, itself
    hashed = await asyncio.to_thread(hash_password, check_strength(password, username))
    async with connection(db) as conn, conn.transaction():
        staff_id = await store.set_password(conn, username, hashed)
        if staff_id is None:
            raise NotFound(f"no staff account {username!r}", reason="STAFF_NOT_FOUND")
        await store.end_sessions_of(conn, staff_id)
        await audit.record(conn, actor, "staff.password", username)  # never the password or its hash
    return {"username": username, "password_set": True}


@dataclass(frozen=True)
class Session:
    """A signed-in staff member: who, with which roles, and the session's CSRF token."""

    id: int
    username: str
    display_name: str
    roles: frozenset
    csrf: str

    @property
    def actor(self) -> str:
        return f"staff:{self.username}"

    def may(self, action: str) -> bool:
        return bool(staff.PERMISSIONS[action] & self.roles)


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


async def sign_in(db: Any, username: str, password: str, address: str) -> str:
    """A new session's cookie value, or 401 (wrong name or password, one answer for both) / 429 when the
    account or the address failed too often within THROTTLE_WINDOW. Every attempt is recorded and audited."""
    username = (username or "").strip().lower()[:64]
    async with connection(db) as conn:
        fails = await store.failures(conn, username, address, THROTTLE_WINDOW)
        if fails["by_user"] >= MAX_FAILURES_ACCOUNT or fails["by_address"] >= MAX_FAILURES_ADDRESS:
            await audit.record(conn, f"staff:{username}", "console.signin_throttled", username, address=address)
            raise RateLimited("too many failed sign-ins; wait a few minutes", reason="SIGNIN_THROTTLED",
                              retry_after=int(THROTTLE_WINDOW.total_seconds()))
        row = await store.account(conn, username)
        # scrypt costs ~0.1 s of CPU: off the event loop, which also carries the BIP channels
        ok = await asyncio.to_thread(verify_password, password or "", row["password_hash"] if row else None)
        ok = ok and row is not None and row["disabled_at"] is None
        async with conn.transaction():
            await store.attempt(conn, username, address, ok)
            if not ok:  # committed: the refusal counts towards the throttle
                await audit.record(conn, f"staff:{username}", "console.signin_failed", username, address=address)
        if not ok:
            raise Unauthenticated("wrong username or password", reason="SIGNIN_FAILED")
        async with conn.transaction():
            token = secrets.token_urlsafe(32)
            await store.new_session(conn, _token_hash(token), row["id"], secrets.token_urlsafe(24), address)
            await store.touch_account(conn, username)
            await audit.record(conn, f"staff:{username}", "console.signin", username, address=address)
    return token


async def session(db: Any, token: str | None, *, touch: bool = True) -> Session | None:
    """The session of a cookie value, or None (unknown, ended, idle for IDLE, account disabled or revoked).
    `touch` restarts the idle clock; the pages' live refresh does not, so an open tab still times out."""
    if not token or len(token) > 128:
        return None
    async with connection(db) as conn:
        row = await store.session(conn, _token_hash(token), IDLE)
        if row is None:
            return None
        if touch:
            await store.touch_session(conn, row["id"])
    return Session(row["id"], row["username"], row["display_name"], frozenset(row["roles"]), row["csrf"])


def check_csrf(sess: Session, sent: str | None) -> None:
    """Every form carries the session's CSRF token; a POST without it (a cross-site one) is refused."""
    if not sent or not hmac.compare_digest(sent.encode(), sess.csrf.encode()):
        raise PermissionDenied("the form's CSRF token is missing or wrong; reload the page", reason="CSRF_FAILED")


async def refused_form(db: Any, sess: Session, path: str, origin: str | None) -> None:
    """A POST refused for its CSRF token or origin is traced under the session's account (R1, R28)."""
    await audit.record(db, sess.actor, "console.csrf_refused", path[:200], origin=(origin or "")[:200])


async def sign_out(db: Any, sess: Session) -> None:
    async with connection(db) as conn, conn.transaction():
        await store.end_session(conn, sess.id)
        await audit.record(conn, sess.actor, "console.signout", sess.username)


async def purge(db: Any, keep: dt.timedelta = KEEP) -> int:
    """Retention: old sign-in attempts and sessions over for longer than `keep`."""
    async with connection(db) as conn:
        return await store.purge(conn, keep)
