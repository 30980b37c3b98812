"""The asyncio driver of the BIP endpoint: sockets ↔ the sans-IO multiplexer ↔ the channel service (§5.5).

The service is handed each group of events and returns its answers (StartWrite, Close); the driver
applies them to the multiplexer. The service never calls back into the driver."""

from __future__ import annotations

import asyncio
import itertools
import logging
import time

from ... import metrics
from ...codec.bcp import CLOSE_BAD_MAC, CLOSE_BUSY, CLOSE_UNKNOWN_CARD
from ...ota.guard import SourceGuard
from ...ota.mux import CARD_EVENTS, Close, Mux, ProtocolError, StartWrite
from . import endpoint
from .telemetry import ChannelTelemetry

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
        self.telemetry = ChannelTelemetry()
        # sources of channels cut for a protocol error before any HELLO verified: the cut closes the
        # channel (and the guard forgets it) before the service counts the refusal by source
        self.cut_sources: dict[int, str] = {}

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
        self.telemetry.drained(self.mux, out, events)
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
                for ev in events:
                    if type(ev) is ProtocolError and ev.session is None:
                        if len(self.cut_sources) > 100_000:  # groups the service failed on never asked
                            self.cut_sources.clear()
                        self.cut_sources[ev.cid] = self.guard.source(ev.cid)
                events = self._screen(events)
            self.pending.extend(events)
            self.wakeup.set()

    def _screen(self, events: list) -> list:
        """Protocol errors cost their source a token; cards of a source with none left are cut unread."""
        guard, now, kept = self.guard, time.monotonic(), []
        for ev in events:
            kind = type(ev)
            if kind is ProtocolError:
                guard.refused(ev.cid, now)
            elif kind in CARD_EVENTS and guard.drained and guard.blocked(guard.source(ev.cid), now):
                tr = self.transports.pop(ev.cid, None)
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
            group, self.pending = self.pending, []
            if group:
                inflight.add(asyncio.create_task(self._group(group)))

    def source(self, cid: int) -> str:
        """A channel's source address, for the service's per-source counts (SourceGuard.source)."""
        gone = self.cut_sources.pop(cid, None)
        return gone if gone is not None else self.guard.source(cid)

    async def _group(self, group: list) -> None:
        try:
            answers = await self.service.handle(group, self.source)
        except Exception:  # the service failed as a whole (database down): busy, retry after 30 s
            self.failed_groups += 1
            metrics.GROUP_FAILURES.inc()
            now = time.monotonic()
            if now - self.failure_logged_at >= 30.0:  # one traceback per 30 s, not one per group
                self.failure_logged_at = now
                log.exception("channel service failed on a group of %d events (%d failed groups so far); "
                              "cards are told CLOSE(07, retry after 30)", len(group), self.failed_groups)
            answers = [Close(ev.cid, CLOSE_BUSY, 30) for ev in group]
        self.answer(answers)
        self.schedule_flush()
        if self.pending:
            self.wakeup.set()


    def answer(self, answers: list) -> None:
        """Apply the service's decisions; a card refused before its MAC verified costs its source a token."""
        now, mux, guard = time.monotonic(), self.mux, self.guard
        for a in answers:
            if type(a) is StartWrite:
                mux.start_write(a.cid, a.session, a.buffer_size, now)
            else:
                mux.close(a.cid, a.reason, a.retry_after)
                if a.reason == CLOSE_UNKNOWN_CARD or a.reason == CLOSE_BAD_MAC:
                    guard.refused(a.cid, now)


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
        d.telemetry.lost(self.cid, d.mux.channels.get(self.cid), time.monotonic())
        d.mux.lost(self.cid, time.monotonic())
        d.schedule_flush()
        metrics.BIP_CHANNELS.dec()


async def start(host: str, port: int, service, **options) -> tuple[asyncio.AbstractServer, Driver]:
    driver = Driver(service, **options)
    driver.start()
    server = await endpoint.start(host, port, driver.protocol)
    return server, driver
