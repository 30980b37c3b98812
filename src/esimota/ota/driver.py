"""The asyncio driver of the BIP endpoint: sockets ↔ the sans-IO multiplexer ↔ the channel service (§5.5)."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from .. import metrics
from . import _mux as M
from . import endpoint
from .guard import SourceGuard
from .mux import Mux

log = logging.getLogger("esimota.bip")


class Driver:
    """One per worker: owns the Mux, the transports, and the loop that hands events to the service."""

    def __init__(self, service, *, tick: float = 0.5, groups: int = 3, guard: SourceGuard | None = None,
                 **mux_options) -> None:
        self.mux = Mux(**mux_options)
        self.service = service
        self.guard = guard or SourceGuard(0)  # refusals before a MAC verifies, per source (off: rate 0)
        self.transports: dict[int, asyncio.Transport] = {}
        self.ids = itertools.count(1)
        self.pending: list = []
        self.wakeup = asyncio.Event()
        self.flush_scheduled = False
        self.tick_interval = tick
        self.groups = groups
        self.failed_groups = 0
        self.failure_logged_at = -1e9
        self.tasks: list[asyncio.Task] = []
        self.peak = 0

    def start(self) -> None:
        self.tasks = [asyncio.create_task(self._ticker()), asyncio.create_task(self._events())]

    async def stop(self) -> None:
        for t in self.tasks:
            t.cancel()
        await asyncio.gather(*self.tasks, return_exceptions=True)
        for tr in list(self.transports.values()):
            tr.abort()

    def protocol(self) -> asyncio.Protocol:
        return _Channel(self)

    # -- plumbing ---------------------------------------------------------------------------
    def schedule_flush(self) -> None:
        if not self.flush_scheduled:
            self.flush_scheduled = True
            asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Write what the mux queued, cut what it closed, queue its events for the service."""
        self.flush_scheduled = False
        out, cuts, events = self.mux.drain()
        transports = self.transports
        for cid, frame in out:
            tr = transports.get(cid)
            if tr is not None:
                tr.write(frame)
        for cid in cuts:
            tr = transports.pop(cid, None)
            if tr is not None:
                tr.close()
        if events:
            if self.guard.rate:
                events = self._screen(events)
            self.pending.extend(events)
            self.wakeup.set()

    def _screen(self, events: list) -> list:
        """Protocol errors cost their source a token; cards of a source with none left are cut unread."""
        guard, now, kept = self.guard, time.monotonic(), []
        for ev in events:
            if ev[0] == M.EV_PROTOCOL:
                guard.refused(ev[1], now)
            elif ev[0] in (M.EV_HELLO, M.EV_REPORT) and guard.drained and guard.blocked(guard.source(ev[1]), now):
                tr = self.transports.pop(ev[1], None)
                if tr is not None:
                    tr.abort()
                continue
            kept.append(ev)
        return kept

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(self.tick_interval)
            self.mux.tick(time.monotonic())
            self.schedule_flush()

    async def _events(self) -> None:
        """Group commit: every event that arrived meanwhile goes to the service in one call; up to
        `groups` calls are in flight at once, so the database round trips of one group overlap the
        judging of the next."""
        inflight: set = set()
        while True:
            await self.wakeup.wait()
            self.wakeup.clear()
            while len(inflight) >= self.groups:
                _, inflight = await asyncio.wait(inflight, return_when=asyncio.FIRST_COMPLETED)
            batch, self.pending = self.pending, []
            if batch:
                inflight.add(asyncio.create_task(self._group(batch)))

    async def _group(self, batch: list) -> None:
        try:
            await self.service.handle(batch, self)
        except Exception:  # the service failed as a whole (database down): busy, retry after 30 s
            self.failed_groups += 1
            now = time.monotonic()
            if now - self.failure_logged_at >= 30.0:  # one traceback per 30 s, not one per group
                self.failure_logged_at = now
                log.exception("channel service failed on a group of %d events (%d failed groups so far); "
                              "cards are told CLOSE(07, retry after 30)", len(batch), self.failed_groups)
            for ev in batch:
                self.mux.close(ev[1], 7, 30)
        self.schedule_flush()
        if self.pending:
            self.wakeup.set()


class _Channel(asyncio.Protocol):
    __slots__ = ("d", "cid")

    def __init__(self, driver: Driver) -> None:
        self.d = driver
        self.cid = 0

    def connection_made(self, transport) -> None:
        d = self.d
        cid = next(d.ids)
        if d.guard.rate:
            peer = transport.get_extra_info("peername")
            if not d.guard.opened(cid, peer[0] if peer else "", time.monotonic()):
                transport.abort()  # this source spent its refusals: cut before a byte is read
                return
        self.cid = cid
        d.transports[self.cid] = transport
        d.mux.open(self.cid, time.monotonic())
        n = len(d.transports)
        if n > d.peak:
            d.peak = n
            metrics.BIP_CHANNELS_PEAK.set(n)
        metrics.BIP_CHANNELS.inc()

    def data_received(self, data: bytes) -> None:
        if self.cid:  # 0: a channel the guard cut
            self.d.mux.feed(self.cid, data, time.monotonic())
            self.d.schedule_flush()

    def connection_lost(self, exc) -> None:
        d = self.d
        if not self.cid:
            return
        d.guard.closed(self.cid)
        d.transports.pop(self.cid, None)
        d.mux.lost(self.cid, time.monotonic())
        d.schedule_flush()
        metrics.BIP_CHANNELS.dec()


async def start(host: str, port: int, service, **options) -> tuple[asyncio.AbstractServer, Driver]:
    driver = Driver(service, **options)
    driver.start()
    server = await endpoint.start(host, port, driver.protocol)
    return server, driver
