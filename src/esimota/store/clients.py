"""Client accounts (§6.2.1.1, R15, R17): hashed secret, whitelist, permissions, callback, rate limit."""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass
from typing import Any

from ..errors import InvalidArgument, NotFound, Unauthenticated
from . import crypto
from .keys import aad

PERMISSIONS = ("write", "chip", "number")
CALLBACK_AAD = b"clients.callback_secret|"

INSERT = """
INSERT INTO clients (client_id, name, phone, secret_hash, ip_whitelist, permissions, callback_url,
                     callback_secret_enc, rate_limit_per_min)
VALUES ($1, $2, $3, $4, $5::cidr[], $6, $7, $8, $9) RETURNING *"""
SELECT = "SELECT * FROM clients WHERE client_id = $1"
# CredentialRow: what authentication needs of a client (no callback secret), an asyncpg Record of these columns
CLIENT_COLUMNS = """
SELECT id, client_id, name, phone, ip_whitelist, permissions, callback_url, rate_limit_per_min, disabled_at,
       secret_rotated_at, secret_hash FROM clients"""
CREDENTIAL = CLIENT_COLUMNS + " WHERE client_id = $1"
# `--client` takes a client's id or its name (DESIGN §7): the id first, then a name that names one client
SELECT_BY_NAME = "SELECT * FROM clients WHERE name = $1 ORDER BY id LIMIT 2"
SELECT_BY_ID = "SELECT * FROM clients WHERE id = $1"
UPDATE_SECRET = "UPDATE clients SET secret_hash = $2, secret_rotated_at = now() WHERE client_id = $1 RETURNING *"
UPDATE_CALLBACK_SECRET = "UPDATE clients SET callback_secret_enc = $2 WHERE client_id = $1 RETURNING *"
UPDATE_WHITELIST = "UPDATE clients SET ip_whitelist = $2::cidr[] WHERE client_id = $1 RETURNING *"
UPDATE_PERMISSIONS = "UPDATE clients SET permissions = $2 WHERE client_id = $1 RETURNING *"
# `client update`: the rate limit and/or the whitelist (NULL leaves a column as it is)
UPDATE_LIMITS = """
UPDATE clients SET rate_limit_per_min = coalesce($2, rate_limit_per_min),
                   ip_whitelist = coalesce($3::cidr[], ip_whitelist)
WHERE client_id = $1 RETURNING *"""
DISABLE = "UPDATE clients SET disabled_at = coalesce(disabled_at, now()) WHERE client_id = $1 RETURNING *"


@dataclass(frozen=True)
class Client:
    """A partner as the use cases see it; no secret in here."""

    id: int
    client_id: str
    name: str
    phone: str
    ip_whitelist: tuple[str, ...]
    permissions: tuple[str, ...]
    callback_url: str
    rate_limit_per_min: int
    disabled: bool

    @classmethod
    def from_row(cls, row: Any) -> "Client":
        return cls(row["id"], row["client_id"], row["name"], row["phone"],
                   tuple(str(n) for n in row["ip_whitelist"]), tuple(row["permissions"]),
                   row["callback_url"], row["rate_limit_per_min"], row["disabled_at"] is not None)

    def allows_ip(self, address: str) -> bool:
        """Whether `address` is inside the whitelist (§6.2.1.1 报白)."""
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        return any(ip in ipaddress.ip_network(n, strict=False) for n in self.ip_whitelist)


def hash_secret(secret: str) -> str:
    """Salted SHA-256: secrets are 256-bit random, so a slow KDF would add nothing but latency."""
    salt = secrets.token_hex(16)
    return f"sha256${salt}${hashlib.sha256((salt + secret).encode()).hexdigest()}"


def verify_secret(stored: str, secret: str) -> bool:
    try:
        scheme, salt, digest = stored.split("$")
    except ValueError:
        return False
    candidate = hashlib.sha256((salt + secret).encode()).hexdigest()
    return scheme == "sha256" and hmac.compare_digest(candidate, digest)


def parse_whitelist(text: str | list[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    out = []
    for item in (i.strip() for i in items):
        try:
            out.append(str(ipaddress.ip_network(item, strict=False)))
        except ValueError:
            raise InvalidArgument(f"not an IP address or CIDR: {item!r}", reason="IP_INVALID") from None
    if not out:
        raise InvalidArgument("the IP whitelist is empty", reason="IP_INVALID")
    return out


def parse_permissions(text: str | list[str]) -> list[str]:
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text) if p.strip()]
    bad = [p for p in items if p not in PERMISSIONS]
    if bad:
        raise InvalidArgument(f"unknown permission {bad[0]!r} (write, chip, number)", reason="PERMISSION_INVALID")
    return [p for p in PERMISSIONS if p in items]


async def get(db: Any, client_id: str) -> Client:
    row = await db.fetchrow(SELECT, client_id)
    if row is None:
        raise NotFound("no such client", reason="CLIENT_NOT_FOUND")
    return Client.from_row(row)


async def resolve(db: Any, ref: str) -> Client:
    """The client named by `ref`, its client_id or its name; a name shared by two clients is refused."""
    row = await db.fetchrow(SELECT, ref)
    if row is not None:
        return Client.from_row(row)
    rows = await db.fetch(SELECT_BY_NAME, (ref or "").strip())
    if len(rows) > 1:
        raise InvalidArgument(f"two clients are named {ref!r}: give the client_id", reason="CLIENT_AMBIGUOUS")
    if not rows:
        raise NotFound(f"no client with id or name {ref!r}", reason="CLIENT_NOT_FOUND")
    return Client.from_row(rows[0])


async def authenticate(db: Any, client_id: str, secret: str) -> Client:
    """The client whose id and secret match and who is not disabled (§7.2.1: else 401)."""
    row = await db.fetchrow(SELECT, client_id)
    if row is None or not verify_secret(row["secret_hash"], secret or "") or row["disabled_at"] is not None:
        raise Unauthenticated("client_id or client_secret is wrong", reason="BAD_CREDENTIALS")
    return Client.from_row(row)


async def callback_secret(db: Any, client_id: str) -> bytes:
    """The client's callback signing secret, decrypted (for the callback dispatcher, §7.3)."""
    row = await db.fetchrow(SELECT, client_id)
    if row is None:
        raise NotFound("no such client", reason="CLIENT_NOT_FOUND")
    return await crypto.decrypt(db, row["callback_secret_enc"], aad(CALLBACK_AAD, client_id))


async def encrypt_callback_secret(db: Any, client_id: str, secret: str) -> bytes:
    ring = await crypto.keyring(db)
    return ring.encrypt(secret.encode(), aad(CALLBACK_AAD, client_id))


async def credentials(db: Any) -> list[Any]:
    """The CredentialRows of every client (the token cache's view)."""
    return await db.fetch(CLIENT_COLUMNS)


async def credential(db: Any, client_id: str) -> Any:
    """The CredentialRow of one client, or None."""
    return await db.fetchrow(CREDENTIAL, client_id)


_UPDATES = {"secret": UPDATE_SECRET, "callback_secret": UPDATE_CALLBACK_SECRET, "whitelist": UPDATE_WHITELIST,
            "permissions": UPDATE_PERMISSIONS, "limits": UPDATE_LIMITS, "disable": DISABLE}


async def insert(conn: Any, *values: Any) -> Any:
    """A new client row from the columns of INSERT, in its order."""
    return await conn.fetchrow(INSERT, *values)


async def update(conn: Any, change: str, client_id: str, *args: Any) -> Any:
    """One change of a client (secret, callback_secret, whitelist, permissions, limits, disable); the row after it."""
    return await conn.fetchrow(_UPDATES[change], client_id, *args)
