"""Administrator use cases (§6.2.1.1, R15, R31): clients, batches, allocation (划拨), blacklists."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Any, Awaitable, Callable

from .. import config
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
    """Callback URLs are https (R25, DESIGN §6); http only on a development platform that allows it."""
    scheme, _, rest = (url or "").partition("://")
    host = rest.split("/", 1)[0].rpartition("@")[2]
    if scheme.lower() not in ("https", "http") or not host or any(c.isspace() for c in url):
        raise InvalidArgument("callback URL must be https://host/…", reason="CALLBACK_URL_INVALID")
    if scheme.lower() == "http" and not config.allow_http_callbacks():
        raise InvalidArgument("callback URL must be https (plain http only with ESIMOTA_ALLOW_HTTP_CALLBACKS=1)",
                              reason="CALLBACK_URL_INSECURE")
    return url


def _check_phone(phone: str) -> str:
    digits = phone.lstrip("+")
    if not digits.isdigit() or not 5 <= len(digits) <= 15:
        raise InvalidArgument("registered phone must be digits (E.164)", reason="PHONE_INVALID")
    return phone


MAX_RATE_LIMIT = 1_000_000  # calls a minute: far above any partner, and inside the integer column


def _check_rate(rate_limit_per_min: int) -> int:
    if isinstance(rate_limit_per_min, bool) or not isinstance(rate_limit_per_min, int) \
            or not 0 < rate_limit_per_min <= MAX_RATE_LIMIT:
        raise InvalidArgument(f"rate limit must be 1 … {MAX_RATE_LIMIT:,} calls a minute",
                              reason="RATE_LIMIT_INVALID")
    return rate_limit_per_min


async def create_client(db: Any, *, name: str, phone: str, ip: str | list[str], callback_url: str,
                        permissions: str | list[str] = "write,chip,number", rate_limit_per_min: int = 600,
                        actor: str = "admin") -> NewClient:
    """A client account from a registered phone (§6.2.1.1, R15): only administrators call this (R31)."""
    if not name.strip():
        raise InvalidArgument("client name is empty", reason="NAME_INVALID")
    _check_rate(rate_limit_per_min)
    whitelist, perms = client_store.parse_whitelist(ip), client_store.parse_permissions(permissions)
    client_id = "c" + secrets.token_hex(8)
    secret, cb_secret = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    async with connection(db) as conn, conn.transaction():
        row = await client_store.insert(conn, client_id, name.strip(), _check_phone(phone),
                                        client_store.hash_secret(secret), whitelist, perms, _check_url(callback_url),
                                        await client_store.encrypt_callback_secret(conn, client_id, cb_secret),
                                        rate_limit_per_min)
        await audit.record(conn, actor, "client.create", client_id, permissions=perms, whitelist=whitelist)
    return NewClient(Client.from_row(row), secret, cb_secret)


async def _update(db: Any, actor: str, action: str, client_ref: str, change: str, *args: Any,
                  **detail: Any) -> Client:
    """One change of a client named by its id or its name (DESIGN §7 `--client`), audited."""
    async with connection(db) as conn, conn.transaction():
        client_id = (await client_store.resolve(conn, client_ref)).client_id  # NotFound first
        row = await client_store.update(conn, change, client_id, *args)
        await audit.record(conn, actor, action, client_id, **detail)
    return Client.from_row(row)


async def rotate_secret(db: Any, client_id: str, *, callback: bool = False,
                        actor: str = "admin") -> tuple[Client, str]:
    """A new interface secret (R17: keys can be rotated), or with callback=True a new callback secret."""
    secret = secrets.token_urlsafe(32)
    client_id = (await client_store.resolve(db, client_id)).client_id
    if callback:
        blob = await client_store.encrypt_callback_secret(db, client_id, secret)
        client = await _update(db, actor, "client.rotate_callback_secret", client_id,
                               "callback_secret", blob)
    else:
        client = await _update(db, actor, "client.rotate_secret", client_id, "secret",
                               client_store.hash_secret(secret))
    return client, secret


async def set_whitelist(db: Any, client_id: str, ip: str | list[str], *, actor: str = "admin") -> Client:
    nets = client_store.parse_whitelist(ip)
    return await _update(db, actor, "client.whitelist", client_id, "whitelist", nets, whitelist=nets)


async def update_client(db: Any, client_id: str, *, rate_limit_per_min: int | None = None,
                        ip: str | list[str] | None = None, actor: str = "admin") -> Client:
    """`client update`: a client's rate limit (calls a minute, R17) and/or IP whitelist, audited as
    `client.update`; every worker applies it within ClientCache's refresh (2 s), no restart."""
    if rate_limit_per_min is None and ip is None:
        raise InvalidArgument("nothing to change: give a rate limit or a whitelist", reason="UPDATE_EMPTY")
    rate = None if rate_limit_per_min is None else _check_rate(rate_limit_per_min)
    nets = None if ip is None else client_store.parse_whitelist(ip)
    async with connection(db) as conn, conn.transaction():
        before = await client_store.resolve(conn, client_id)  # NotFound first
        row = await client_store.update(conn, "limits", before.client_id, rate, nets)
        changed = {"rate_limit_per_min": (before.rate_limit_per_min, rate),
                   "whitelist": (list(before.ip_whitelist), nets)}
        await audit.record(conn, actor, "client.update", before.client_id,
                           **{k: {"from": old, "to": new} for k, (old, new) in changed.items() if new is not None})
    return Client.from_row(row)


async def set_permissions(db: Any, client_id: str, permissions: str | list[str], *, actor: str = "admin") -> Client:
    perms = client_store.parse_permissions(permissions)
    return await _update(db, actor, "client.permissions", client_id, "permissions", perms,
                         permissions=perms)


async def disable_client(db: Any, client_id: str, *, actor: str = "admin") -> Client:
    """Leavers are revoked (R28): the account stays for traceability, its tokens stop working."""
    return await _update(db, actor, "client.disable", client_id, "disable")


async def create_batch(db: Any, name: str, master_key_hex: str, *, actor: str = "admin") -> int:
    """`batch create`: the vendor's AES-128 master key, stored encrypted (DESIGN §5.2)."""
    key = identifiers.parse_key16(master_key_hex.strip(), "master key")
    if not name.strip():
        raise InvalidArgument("batch name is empty", reason="NAME_INVALID")
    async with connection(db) as conn, conn.transaction():
        batch_id = await chip_store.create_batch(conn, name.strip(), key)
        await audit.record(conn, actor, "batch.create", name.strip())
    return batch_id


async def allocate_numbers(db: Any, client_id: str, iccids: list[str], *, actor: str = "admin",
                           lines: list[int] | None = None, source: str = "allocation") -> list[str]:
    """划拨: numbers to one client for designated writes (R5); any unknown or taken ICCID → nothing done, every
    bad one listed (by `lines`, the file's line numbers of `source`, when the ICCIDs come from a file).
    A number allocated to this client already stays so, in use or not (listed, as chips allocate lists its
    chips); the ICCIDs now allocated to the client are returned."""
    problems: list[tuple[int, str, str]] = []
    wanted_lines: list[tuple[int, str]] = []
    for line, raw in zip(lines or range(1, len(iccids) + 1), iccids):
        try:
            wanted_lines.append((line, identifiers.validate_iccid(raw.strip())))
        except InvalidArgument as exc:
            problems.append((line, exc.reason, exc.message))
    async with connection(db) as conn, conn.transaction():
        client = await client_store.resolve(conn, client_id)
        wanted = [iccid for _, iccid in wanted_lines]
        state = {r["iccid"]: r for r in await number_store.allocation_state(conn, wanted)}
        for line, iccid in wanted_lines:
            row = state.get(iccid)
            if row is None:
                problems.append((line, "NUMBER_NOT_FOUND", iccid))
            elif row["client_id"] == client.id:
                continue  # allocated to this client already (in use or not): nothing changes, as for chips
            elif row["client_id"] is not None or row["status"] != "available":
                problems.append((line, "NUMBER_UNAVAILABLE", iccid))
        if problems:
            raise ImportRejected(sorted(problems), source=source)
        done = [r["iccid"] for r in await number_store.allocate(conn, client.id, wanted)]
        await audit.record(conn, actor, "numbers.allocate", client.client_id, count=len(done))
    return done


async def _chip_list(conn: Any, eids: list[str] | None, batch: str | None,
                     problems: list[tuple[int, str, str]], lines: list[int] | None = None) -> list[tuple[int, str]]:
    """(line, EID) of the EIDs named (one per line of a file, numbered by `lines`, or argument), or of every
    chip of a batch; bad ones noted in `problems`."""
    if batch:
        await chip_store.batch_id(conn, batch)  # BATCH_NOT_FOUND
        return list(enumerate(await chip_store.batch_eids(conn, batch), start=1))
    out = []
    for line, raw in zip(lines or range(1, len(eids or []) + 1), eids or []):
        try:
            out.append((line, identifiers.validate_eid(raw.strip())))
        except InvalidArgument as exc:
            problems.append((line, exc.reason, exc.message))
    if not out and not problems:
        raise InvalidArgument("name the chips: EIDs, a file of EIDs or a batch", reason="CHIPS_REQUIRED")
    return out


async def allocate_chips(db: Any, client_ref: str, eids: list[str] | None = None, *, batch: str | None = None,
                         actor: str = "admin", lines: list[int] | None = None,
                         source: str = "allocation") -> list[str]:
    """分配数据资源 (§6.2.1.1, DESIGN §3): chips to the one client that may apply for them.

    All or nothing: an unknown EID or a chip allocated to another client refuses the whole request.
    Allocating a chip to the client it is allocated to already changes nothing.
    """
    def refuse(row: Any, client_id: int, eid: str) -> tuple[str, str] | None:
        if row is None:
            return "EID_NOT_FOUND", eid
        if row["owner_client_id"] not in (None, client_id):
            return "CHIP_ALLOCATED", f"{eid} is allocated to another client"
        return None

    return await _move_chips(db, client_ref, eids, batch, actor, refuse, chip_store.allocate,
                             action="chips.allocate", source=source, lines=lines)


async def release_chips(db: Any, client_ref: str, eids: list[str] | None = None, *, batch: str | None = None,
                        actor: str = "admin", lines: list[int] | None = None, source: str = "release") -> list[str]:
    """Undo an allocation while no task is open on the chips (DESIGN §7 `chips release`); all or nothing."""
    def refuse(row: Any, client_id: int, eid: str) -> tuple[str, str] | None:
        if row is None or (row["owner_client_id"] != client_id and not batch):
            return "CHIP_NOT_ALLOCATED", f"{eid} is not allocated to this client"
        if row["busy"] and row["owner_client_id"] == client_id:
            return "TASK_OPEN", f"{eid} has an open write task"
        return None

    return await _move_chips(db, client_ref, eids, batch, actor, refuse, chip_store.release,
                             action="chips.release", source=source, lines=lines)


async def _move_chips(db: Any, client_ref: str, eids: list[str] | None, batch: str | None, actor: str,
                      refuse: Callable[[Any, int, str], tuple[str, str] | None],
                      change: Callable[[Any, int, list[str]], Awaitable[list]], *, action: str,
                      source: str, lines: list[int] | None) -> list[str]:
    """The one body of allocate and release: resolve the client, name the chips, refuse the whole request
    (every problem, by line) if `refuse` finds one, else change the chips and audit it, in one transaction."""
    problems: list[tuple[int, str, str]] = []
    async with connection(db) as conn, conn.transaction():
        client = await client_store.resolve(conn, client_ref)
        named = await _chip_list(conn, eids, batch, problems, lines)
        wanted = [e for _, e in named]
        state = {r["eid"]: r for r in await chip_store.allocation_state(conn, wanted)}
        for line, eid in named:
            problem = refuse(state.get(eid), client.id, eid)
            if problem is not None:
                problems.append((line, *problem))
        if problems:
            raise ImportRejected(sorted(problems), source=source)
        changed = {r["eid"] for r in await change(conn, client.id, wanted)}
        done = [e for e in wanted if e in changed]
        await audit.record(conn, actor, action, client.client_id, count=len(done), batch=batch)
    return done


async def blacklist(db: Any, kind: str, value: str, reason: str, *, actor: str = "admin") -> None:
    """Add an EID or IMEI to the blacklist (R32)."""
    value = identifiers.validate_eid(value) if kind == "eid" else identifiers.validate_imei(value)
    async with connection(db) as conn, conn.transaction():
        await chip_store.add_blacklist(conn, kind, value, reason)
        await audit.record(conn, actor, "blacklist.add", f"{kind}:{value}", reason=reason)
