"""The caller's address (DESIGN §6): the TCP peer, or behind a trusted proxy the rightmost untrusted hop."""

from __future__ import annotations

import ipaddress
from typing import Iterable

from ..config import Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        ip = ipaddress.ip_address(text.strip().strip("[]"))
    except ValueError:
        return None
    return ip.ipv4_mapped if ip.version == 6 and ip.ipv4_mapped is not None else ip


class CallerAddress:
    """Whitelists, rate limits and throttles all key on what this returns.

    The proxy header (ESIMOTA_TRUSTED_PROXY_HEADER, e.g. X-Forwarded-For) is believed only when the TCP
    peer is one of ESIMOTA_TRUSTED_PROXIES; then the caller is the rightmost address of the header that
    is not itself a trusted proxy (each proxy appends the address it saw; what is left of the last
    trusted one was written by the caller and proves nothing). Any other peer is the caller itself,
    whatever it sends.
    """

    def __init__(self, header: str | None, proxies: Iterable[Network] = ()) -> None:
        self.header = header or None
        self.proxies = tuple(proxies)

    def trusted(self, address: str) -> bool:
        ip = _ip(address)
        return ip is not None and any(ip.version == net.version and ip in net for net in self.proxies)

    def resolve(self, peer: str, header_values: Iterable[str]) -> str:
        """The caller: `peer` unless it is a trusted proxy that passed the header on."""
        if not self.header or not self.proxies or not self.trusted(peer):
            return peer
        hops = [h.strip() for value in header_values for h in str(value).split(",") if h.strip()]
        for hop in reversed(hops):
            if not self.trusted(hop):
                ip = _ip(hop)
                return str(ip) if ip is not None else hop
        return hops[0] if hops else peer
