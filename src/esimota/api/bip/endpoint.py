"""The BIP endpoint's listener (DESIGN §5): TCP channels opened by cards, shared by workers via SO_REUSEPORT."""

from __future__ import annotations

import asyncio
import socket
from typing import Callable

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


async def start(host: str, port: int, factory: Callable[[], asyncio.Protocol],
                *, reuse_port: bool = True) -> asyncio.AbstractServer:
    """Serve BIP channels with `factory`'s protocol (the driver's, given by server.py); returns the
    asyncio server (its sockets tell the bound port)."""
    loop = asyncio.get_running_loop()
    sock = listening_socket(host, port, reuse_port=reuse_port)
    # asyncio listens again with create_server's own backlog (100 unless told): it must be ours too
    return await loop.create_server(factory, sock=sock,
                                    backlog=BACKLOG)
