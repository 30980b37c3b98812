"""The BIP endpoint's listener (DESIGN §5): TCP channels opened by cards, shared by workers via SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Callable

from .. import metrics

log = logging.getLogger("esimota.bip")

#: The channel protocol's factory, set by the multiplexer driver when it is loaded.
PROTOCOL_FACTORY: Callable[[], asyncio.Protocol] | None = None

CLOSE = 0x05
CLOSE_PROTOCOL_ERROR = 0x06
MAX_FRAME = 0xFFFF


class FramingOnlyProtocol(asyncio.Protocol):
    """Used when no channel protocol is loaded: reads BCP/1 frames and closes each channel with
    CLOSE(06), so that a card is never left hanging on a silent socket."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.buf = bytearray()
        metrics.BIP_CHANNELS.inc()

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if len(self.buf) < 3:
            return
        length = int.from_bytes(self.buf[:2], "big")
        if len(self.buf) >= 2 + length or length == 0:
            metrics.BIP_FRAMES.labels(f"0x{self.buf[2]:02x}").inc()
            self.transport.write(bytes([0x00, 0x04, CLOSE, CLOSE_PROTOCOL_ERROR, 0x00, 0x00]))  # type: ignore[attr-defined]
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        metrics.BIP_CHANNELS.dec()


BACKLOG = 65535  # the kernel caps it at net.core.somaxconn (4096 by default; see docs/operations.md)


def listening_socket(host: str, port: int, *, reuse_port: bool = True, backlog: int = BACKLOG) -> socket.socket:
    """A bound, listening TCP socket; SO_REUSEPORT lets several workers share the port (§5.5).

    A fleet powering on at once connects faster than a worker accepts: the accept queue must hold the
    surge, or the kernel drops connections and the modules retry their SYN only after 1 s, 3 s, 7 s."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    sock.listen(backlog)
    sock.setblocking(False)
    return sock


async def start(host: str, port: int, factory: Callable[[], asyncio.Protocol] | None = None,
                *, reuse_port: bool = True) -> asyncio.AbstractServer:
    """Start serving BIP channels; returns the asyncio server (its sockets tell the bound port)."""
    loop = asyncio.get_running_loop()
    sock = listening_socket(host, port, reuse_port=reuse_port)
    # asyncio listens again with create_server's own backlog (100 unless told): it must be ours too
    return await loop.create_server(factory or PROTOCOL_FACTORY or FramingOnlyProtocol, sock=sock,
                                    backlog=BACKLOG)
