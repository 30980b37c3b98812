"""Tokens of §7.2.1 (R17): HMAC-signed, 24 h, checked without a database round trip; clients cached ≤ 2 s."""

from __future__ import annotations

import asyncio
import base64
import functools
import hmac
import ipaddress
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .. import config
from ..background import Periodic
from ..errors import InvalidArgument, PermissionDenied, Unauthenticated
from ..store import clients as client_store
from ..store.clients import Client

TOKEN_TTL = 86400  # §7.1.2, §7.2.1: expire_time 86 400 s
REFRESH_S = 2.0    # revocation (secret rotation, disable, whitelist) reaches every process within this


def derive_key(master: bytes, label: bytes) -> bytes:
    """A purpose key from the at-rest master key (HKDF-SHA256): every process derives the same one."""
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=b"esimota " + label).derive(master)


def generation(row: Any) -> int:
    """The client's secret generation: microseconds of its last rotation (rotation revokes tokens)."""
    return int(row["secret_rotated_at"].timestamp() * 1_000_000)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


VERIFIED_MAX = 100_000  # tokens whose MAC is known good, per process (a token is ~80 bytes)


class TokenSigner:
    """`v1.<client_id>.<generation>.<expiry>.<mac>`, mac = HMAC-SHA256 truncated to 128 bits."""

    def __init__(self, master: bytes) -> None:
        self._key = derive_key(master, b"api token v1")
        self._verified: dict[str, tuple[str, int, int]] = {}  # token → (client_id, generation, expiry)

    def _mac(self, body: str) -> str:
        return _b64(hmac.digest(self._key, body.encode(), "sha256")[:16])

    def issue(self, client_id: str, gen: int, now: float | None = None) -> tuple[str, int]:
        expiry = int(now if now is not None else time.time()) + TOKEN_TTL
        body = f"v1.{client_id}.{gen}.{expiry}"
        return f"{body}.{self._mac(body)}", TOKEN_TTL

    def verify(self, token: str, now: float | None = None) -> tuple[str, int]:
        """(client_id, generation) of a well-signed, unexpired token; else 401.

        A token whose MAC was checked once is remembered (bounded), so a partner's repeated calls cost
        a dictionary look-up; its expiry is still checked on every call, and revocation is the client
        cache's business (the generation), as before.
        """
        known = self._verified.get(token)
        if known is not None:
            if known[2] <= (now if now is not None else time.time()):
                raise Unauthenticated("the token has expired; get a new one (§7.1.2)", reason="TOKEN_EXPIRED")
            return known[0], known[1]
        parts = token.split(".") if token and len(token) < 256 else []
        if len(parts) != 5 or parts[0] != "v1":
            raise Unauthenticated("the token is malformed", reason="TOKEN_INVALID")
        if not hmac.compare_digest(self._mac(".".join(parts[:4])), parts[4]):
            raise Unauthenticated("the token is not valid", reason="TOKEN_INVALID")
        if int(parts[3]) <= (now if now is not None else time.time()):
            raise Unauthenticated("the token has expired; get a new one (§7.1.2)", reason="TOKEN_EXPIRED")
        if len(self._verified) >= VERIFIED_MAX:
            self._verified.clear()
        self._verified[token] = (parts[1], int(parts[2]), int(parts[3]))
        return parts[1], int(parts[2])


@dataclass(frozen=True)
class Cached:
    """A client as the hot path needs it: the account, its generation and parsed whitelist."""

    client: Client
    gen: int
    networks: tuple


def _cached(row: Any) -> Cached:
    nets = tuple(ipaddress.ip_network(str(n), strict=False) for n in row["ip_whitelist"])
    return Cached(Client.from_row(row), generation(row), nets)


class ClientCache(Periodic):
    """Every client, reloaded every REFRESH_S and on demand (an unknown or newer token), at most 4×/s."""

    every = REFRESH_S
    chore = "client cache refresh"

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.by_id: dict[str, Cached] = {}
        self.loaded_at = 0.0
        self._lock = asyncio.Lock()

    async def reload(self, *, min_age: float = 0.0) -> None:
        async with self._lock:
            if time.monotonic() - self.loaded_at < min_age:
                return
            rows = await client_store.credentials(self.pool)
            self.by_id = {r["client_id"]: _cached(r) for r in rows}
            self.loaded_at = time.monotonic()

    async def tick(self) -> None:  # the database may be down for a while: the last view is kept
        await self.reload()

    async def resolve(self, client_id: str, gen: int) -> Cached:
        """The client of a verified token; a rotated secret or a disabled account is 401 (R17)."""
        entry = self.by_id.get(client_id)
        if entry is None or entry.gen < gen:  # created or rotated moments ago on another process
            await self.reload(min_age=0.25)
            entry = self.by_id.get(client_id)
        if entry is None or entry.gen != gen:
            raise Unauthenticated("the token was revoked (secret rotated); get a new one", reason="TOKEN_REVOKED")
        if entry.client.disabled:
            raise Unauthenticated("the client is disabled", reason="CLIENT_DISABLED")
        return entry


@functools.lru_cache(maxsize=4096)
def caller_address(source_ip: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The caller's address parsed once per address (IPv4-mapped IPv6 as IPv4); None if it is not one."""
    try:
        ip = ipaddress.ip_address(source_ip)
    except ValueError:
        return None
    if ip.version == 6 and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def check_ip(entry: Cached, source_ip: str) -> None:
    """§6.2.1.1 报白: the caller's address must be inside the client's whitelist."""
    ip = caller_address(source_ip)
    if ip is None or not any(ip in net for net in entry.networks):
        raise PermissionDenied("the caller's IP address is not whitelisted", reason="IP_NOT_WHITELISTED")


async def get_token(db: Any, signer: TokenSigner, client_id: str, client_secret: str,
                    source_ip: str) -> tuple[str, int]:
    """§7.2.1: 400 on a missing parameter, 401 on a wrong id or secret, 403 outside the whitelist.

    The whitelist is checked before the secret: from outside it, no answer says whether a guessed
    secret was right (§6.2.1.1 报白 is the first gate, R17)."""
    if not client_id or not client_secret:
        raise InvalidArgument("client_id and client_secret are required", reason="CREDENTIALS_REQUIRED")
    row = await client_store.credential(db, client_id)
    if row is None:
        raise Unauthenticated("client_id or client_secret is wrong", reason="BAD_CREDENTIALS")
    check_ip(_cached(row), source_ip)
    if not client_store.verify_secret(row["secret_hash"], client_secret) or row["disabled_at"] is not None:
        raise Unauthenticated("client_id or client_secret is wrong", reason="BAD_CREDENTIALS")
    return signer.issue(client_id, generation(row))


def signer_from_config() -> TokenSigner:
    """The worker's signer, keyed by the at-rest master key (the same on every process and machine)."""
    return TokenSigner(config.master_key())
