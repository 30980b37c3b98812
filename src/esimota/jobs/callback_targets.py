"""Where a §7.3 callback may be sent (DESIGN §6, R25): https only, never an internal address after resolution."""

from __future__ import annotations

import ipaddress
import socket
from typing import Any, Iterable
from urllib.parse import urlsplit

from aiohttp.abc import AbstractResolver
from aiohttp.helpers import is_ip_address
from aiohttp.resolver import DefaultResolver
from yarl import URL

from ..config import Network


class RefusedTarget(OSError):
    """The callback's host is, or resolves to, an address the platform does not call."""


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.split("%", 1)[0].strip("[]"))
    except ValueError:
        return None
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped is not None else ip


def internal(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Loopback, private, link-local, multicast, unspecified, shared or reserved: not a partner's server
    on the Internet, so a callback there could only probe or attack the operator's own network (SSRF)."""
    return not ip.is_global or ip.is_multicast or ip.is_unspecified


class TargetPolicy:
    """ESIMOTA_CALLBACK_ALLOW (CIDR list) lets chosen internal ranges through; http only when allowed."""

    def __init__(self, allow: Iterable[Network] = (), allow_http: bool = False) -> None:
        self.allow = tuple(allow)
        self.allow_http = allow_http

    def check_ip(self, text: str) -> None:
        ip = _address(text)
        if ip is None:
            raise RefusedTarget(f"not an address: {text[:60]!r}")
        if internal(ip) and not any(ip.version == n.version and ip in n for n in self.allow):
            raise RefusedTarget(f"target {ip} is an internal address (not in ESIMOTA_CALLBACK_ALLOW)")

    def check_url(self, url: str) -> None:
        """Before any connection: the scheme, and a host given as an address literal (no resolution).

        The host is read as aiohttp will connect to it (yarl: IDNA folds '１２７.0.0.1' to '127.0.0.1'),
        not as urllib reads it. A host aiohttp takes for an address literal skips the resolver (and with
        it GuardedResolver), so it must be an address this check can read: '127.1', '2130706433' or
        '0177.0.0.1', which the system's resolver would turn into 127.0.0.1, are refused outright."""
        parts = urlsplit(url)
        if parts.scheme != "https" and not (parts.scheme == "http" and self.allow_http):
            raise RefusedTarget("callback URL is not https (CALLBACK_URL_INSECURE)")
        try:
            host = URL(url).raw_host or ""
        except (ValueError, TypeError):
            raise RefusedTarget("callback URL cannot be parsed") from None
        if not host:
            raise RefusedTarget("callback URL has no host")
        if _address(host) is not None:
            self.check_ip(host)
        elif is_ip_address(host):
            raise RefusedTarget(f"not an address: {host[:60]!r}")


class GuardedResolver(AbstractResolver):
    """aiohttp's resolver with every resolved address checked before a connection is made: the check
    sits where the connection's addresses come from, so DNS cannot answer one thing to the check and
    another to the connect (rebinding)."""

    def __init__(self, policy: TargetPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self.inner = inner or DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[Any]:
        hosts = await self.inner.resolve(host, port, family)
        for h in hosts:
            self.policy.check_ip(h["host"])
        return hosts

    async def close(self) -> None:
        await self.inner.close()
