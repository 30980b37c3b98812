"""Administrator use cases (§6.2.1.1, R15, R31): clients, batches, allocation (划拨), blacklists."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any

from ..domain import identifiers
from ..errors import ImportRejected, InvalidArgument
from ..store import audit, chips as chip_store
from ..store import clients as client_store
from ..store import numbers as number_store
from ..store.clients import Client
from .common import connection


@dataclass(frozen=True)
class NewClient:
    """What `client create` prints once: the secrets are never shown or stored in clear again."""

    client: Client
    client_secret: str
    callback_secret: str


def _check_url(url: str) -> str:
    if not url.startswith(("https://", "http://")):
        raise InvalidArgument("callback URL must be http(s)://…", reason="CALLBACK_URL_INVALID")
    return url


def _check_phone(phone: str) -> str:
    digits = phone.lstrip("+")
    if not digits.isdigit() or not 5 <= len(digits) <= 15:
        raise InvalidArgument("registered phone must be digits (E.164)", reason="PHONE_INVALID")
    return phone


async def create_client(db: Any, *, name: str, phone: str, ip: str | list[str], callback_url: str,
                        permissions: str | list[str] = "write,chip,number", rate_limit_per_min: int = 600,
                        actor: str = "admin") -> NewClient:
    """A client account from a registered phone (§6.2.1.1, R15): only administrators call this (R31)."""
    if not name.strip():
        raise InvalidArgument("client name is empty", reason="NAME_INVALID")
    if rate_limit_per_min <= 0:
        raise InvalidArgument("rate limit must be positive", reason="RATE_LIMIT_INVALID")
    whitelist, perms = client_store.parse_whitelist(ip), client_store.parse_permissions(permissions)
    client_id = "c" + secrets.token_hex(8)
    secret, cb_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with connection(db) as conn, conn.transaction():
        row = await conn.fetchrow(client_store.INSERT, client_id, name.strip(), _check_phone(phone),
                                  client_store.hash_secret(secret), whitelist, perms, _check_url(callback_url),
                                  await client_store.encrypt_callback_secret(conn, client_id, cb_secret),
                                  rate_limit_per_min)
        await audit.record(conn, actor, "client.create", client_id, permissions=perms, whitelist=whitelist)
    return NewClient(Client.from_row(row), secret, cb_secret)


async def _update(db: Any, actor: str, action: str, client_id: str, sql: str, *args: Any, **detail: Any) -> Client:
    async with connection(db) as conn, conn.transaction():
        await client_store.get(conn, client_id)  # NotFound first
        row = await conn.fetchrow(sql, client_id, *args)
        await audit.record(conn, actor, action, client_id, **detail)
    return Client.from_row(row)


async def rotate_secret(db: Any, client_id: str, *, callback: bool = False,
                        actor: str = "admin") -> tuple[Client, str]:
    """A new interface secret (R17: keys can be rotated), or with callback=True a new callback secret."""
    secret = secrets.token_urlsafe(32)
    if callback:
        blob = await client_store.encrypt_callback_secret(db, client_id, secret)
        client = await _update(db, actor, "client.rotate_callback_secret", client_id,
                               client_store.UPDATE_CALLBACK_SECRET, blob)
    else:
        client = await _update(db, actor, "client.rotate_secret", client_id, client_store.UPDATE_SECRET,
                               client_store.hash_secret(secret))
    return client, secret


async def set_whitelist(db: Any, client_id: str, ip: str | list[str], *, actor: str = "admin") -> Client:
    nets = client_store.parse_whitelist(ip)
    return await _update(db, actor, "client.whitelist", client_id, client_store.UPDATE_WHITELIST, nets, whitelist=nets)


async def set_permissions(db: Any, client_id: str, permissions: str | list[str], *, actor: str = "admin") -> Client:
    perms = client_store.parse_permissions(permissions)
    return await _update(db, actor, "client.permissions", client_id, client_store.UPDATE_PERMISSIONS, perms,
                         permissions=perms)


async def disable_client(db: Any, client_id: str, *, actor: str = "admin") -> Client:
    """Leavers are revoked (R28): the account stays for traceability, its tokens stop working."""
    return await _update(db, actor, "client.disable", client_id, client_store.DISABLE)


async def create_batch(db: Any, name: str, master_key_hex: str, *, actor: str = "admin") -> int:
    """`batch create`: the vendor's AES-128 master key, stored encrypted (DESIGN §5.2)."""
    key = identifiers.parse_key16(master_key_hex.strip(), "master key")
    if not name.strip():
        raise InvalidArgument("batch name is empty", reason="NAME_INVALID")
    async with connection(db) as conn, conn.transaction():
        batch_id = await chip_store.create_batch(conn, name.strip(), key)
        await audit.record(conn, actor, "batch.create", name.strip())
    return batch_id


async def allocate_numbers(db: Any, client_id: str, iccids: list[str], *, actor: str = "admin") -> list[str]:
    """划拨: numbers to one client for designated writes (R5); any unknown or taken ICCID → nothing done."""
    problems: list[tuple[int, str, str]] = []
    wanted_lines: list[tuple[int, str]] = []
    for line, raw in enumerate(iccids, start=1):
        try:
            wanted_lines.append((line, identifiers.validate_iccid(raw.strip())))
        except InvalidArgument as exc:
            problems.append((line, exc.reason, exc.message))
    async with connection(db) as conn, conn.transaction():
        client = await client_store.get(conn, client_id)
        wanted = [iccid for _, iccid in wanted_lines]
        state = {r["iccid"]: r for r in await conn.fetch(number_store.ALLOCATION_STATE, wanted)}
        for line, iccid in wanted_lines:
            row = state.get(iccid)
            if row is None:
                problems.append((line, "NUMBER_NOT_FOUND", iccid))
            elif row["client_id"] not in (None, client.id) or row["status"] != "available":
                problems.append((line, "NUMBER_UNAVAILABLE", iccid))
        if problems:
            raise ImportRejected(sorted(problems), source="allocation")
        done = [r["iccid"] for r in await conn.fetch(number_store.ALLOCATE, client.id, wanted)]
        await audit.record(conn, actor, "numbers.allocate", client_id, count=len(done))
    return done


async def blacklist(db: Any, kind: str, value: str, reason: str, *, actor: str = "admin") -> None:
    """Add an EID or IMEI to the blacklist (R32)."""
    value = identifiers.validate_eid(value) if kind == "eid" else identifiers.validate_imei(value)
    async with connection(db) as conn, conn.transaction():
        await chip_store.add_blacklist(conn, kind, value, reason)
        await audit.record(conn, actor, "blacklist.add", f"{kind}:{value}", reason=reason)
