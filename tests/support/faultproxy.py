"""A TCP fault-injection proxy for tests over real sockets: delays, cuts a connection after N bytes, pauses.

Put it between a client (the simulated device) and a listener of the platform; each connection it
accepts opens one to the upstream address and pumps bytes both ways (after asyncpg's
`_testbase/fuzzer.py`). "down" is upstream -> client (the platform's frames to the card), "up" the
other way.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class Faults:
    """What the proxy does to the connections it carries (all off by default)."""

    delay: float = 0.0                # seconds before forwarding each chunk, both ways (a slow network)
    cut_down_after: int | None = None  # end the connection once this many bytes went down
    cut_up_after: int | None = None    # end the connection once this many bytes went up
    cut_first: int = 1 << 30           # the cuts apply to the first k connections only


@dataclass
class _Link:
    """One proxied connection: both writers and the bytes forwarded each way."""

    index: int
    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter
    sent: dict[str, int] = field(default_factory=lambda: {"down": 0, "up": 0})
    cut: bool = False


class FaultProxy:
    """`async with FaultProxy(host, port, Faults(...)) as proxy:` listens on `proxy.port` (loopback)."""

    def __init__(self, upstream_host: str, upstream_port: int, faults: Faults | None = None) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.faults = faults or Faults()
        self.accepted = 0
        self.cuts = 0
        self.links: list[_Link] = []
        self.port = 0
        self._running = asyncio.Event()
        self._running.set()
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task] = set()

    async def __aenter__(self) -> "FaultProxy":
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        self._running.set()
        for link in self.links:
            self._abort(link)
        for t in list(self._tasks):
            t.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self._server.wait_closed()

    def pause(self) -> None:
        """Hold every byte in both directions (connections stay open) until resume()."""
        self._running.clear()

    def resume(self) -> None:
        self._running.set()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        index = self.accepted
        self.accepted += 1
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.transport.abort()
            return
        link = _Link(index, writer, up_writer)
        self.links.append(link)
        for src, dst, direction in ((reader, up_writer, "up"), (up_reader, writer, "down")):
            task = asyncio.create_task(self._pump(link, src, dst, direction))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    def _limit(self, link: _Link, direction: str) -> int | None:
        if link.index >= self.faults.cut_first:
            return None
        return self.faults.cut_down_after if direction == "down" else self.faults.cut_up_after

    async def _pump(self, link: _Link, src: asyncio.StreamReader, dst: asyncio.StreamWriter, direction: str) -> None:
        """Forward chunks until EOF or the cut; an EOF is passed on as a half-close."""
        limit = self._limit(link, direction)
        try:
            while not link.cut:
                data = await src.read(65536)
                await self._running.wait()
                if self.faults.delay:
                    await asyncio.sleep(self.faults.delay)
                if not data:
                    if dst.can_write_eof():
                        dst.write_eof()
                    return
                if limit is not None and link.sent[direction] + len(data) >= limit:
                    dst.write(data[:limit - link.sent[direction]])
                    link.sent[direction] = limit
                    with contextlib.suppress(ConnectionError):
                        await dst.drain()
                    self.cuts += 1
                    self._cut(link)
                    return
                dst.write(data)
                link.sent[direction] += len(data)
                await dst.drain()
        except ConnectionError:
            self._abort(link)

    @staticmethod
    def _cut(link: _Link) -> None:
        """End both sides once what was written is sent: the client has read exactly the bytes let through."""
        link.cut = True
        link.client.close()
        link.upstream.close()

    @staticmethod
    def _abort(link: _Link) -> None:
        """Cut both sides at once (RST), as a network that drops the connection does."""
        link.cut = True
        link.client.transport.abort()
        link.upstream.transport.abort()
