"""Per-client limits of §7.1.2 (R17): calls in fixed one-minute windows (429 and RateLimit-* headers), and
the server streams a client may hold open; both counted over every worker and node through the database."""

from __future__ import annotations

import asyncio
import logging
import math
import time
import uuid
from dataclasses import dataclass
from typing import Any

from ..background import Periodic
from ..errors import RateLimited, Unavailable
from ..store import rate_windows, stream_places
from . import status

logger = logging.getLogger("esimota.api")

WINDOW_S = 60.0


@dataclass
class Quota:
    """The state of one caller's window, and the headers that describe it (IETF RateLimit fields)."""

    limit: int
    remaining: int
    reset: float  # seconds until the window ends

    def headers(self) -> dict[str, str]:
        return {"RateLimit-Limit": str(self.limit), "RateLimit-Remaining": str(max(0, self.remaining)),
                "RateLimit-Reset": str(max(1, math.ceil(self.reset))),
                "RateLimit-Policy": f"{self.limit};w={int(WINDOW_S)}"}


class RateLimiter:
    """Counts calls per key in the current window; over the limit → RateLimited.

    Alone it counts this process's calls. With `SharedWindows` syncing it, a client's count is the sum
    over every worker: the other workers' calls as of the last sync (`shared`) plus this one's since.
    """

    def __init__(self, clock=time.time) -> None:
        self._clock = clock  # wall time: windows begin on the minute on every node alike
        # key -> [window index, calls here since the last sync, calls everywhere as of the last sync]
        self._windows: dict[object, list] = {}

    def window(self, now: float | None = None) -> int:
        return int((self._clock() if now is None else now) // WINDOW_S)

    def hit(self, key: object, limit: int) -> Quota:
        now = self._clock()
        index = int(now // WINDOW_S)
        window = self._windows.get(key)
        if window is None or window[0] != index:
            if len(self._windows) > 100_000:  # forget idle callers (per-IP keys of GetToken)
                self._windows = {k: w for k, w in self._windows.items() if w[0] == index}
            window = self._windows[key] = [index, 0, 0]
        reset = (index + 1) * WINDOW_S - now
        used = window[1] + window[2]
        if used >= limit:
            exc = RateLimited(f"more than {limit} calls a minute; retry in {math.ceil(reset)} s",
                              retry_after=max(1, math.ceil(reset)))
            exc.quota = Quota(limit, 0, reset)  # type: ignore[attr-defined]
            raise exc
        window[1] += 1
        return Quota(limit, limit - used - 1, reset)

    def unsynced(self, index: int) -> dict[int, int]:
        """Per client (integer keys), the calls counted here in window `index` since the last sync."""
        return {k: w[1] for k, w in self._windows.items() if isinstance(k, int) and w[0] == index and w[1]}

    def synced(self, index: int, sent: dict[int, int], totals: dict[int, int]) -> None:
        """After a sync: `sent` reached the database, whose totals (every worker) are now known."""
        for key, total in totals.items():
            window = self._windows.get(key)
            if window is None or window[0] != index:
                window = self._windows[key] = [index, 0, 0]
            window[1] -= sent.get(key, 0)  # calls made while the sync was on its way stay unsynced
            window[2] = total


@dataclass(eq=False)
class Place:
    """A place of its client's stream cap, held by one server stream (`call`) of this worker process."""

    client_id: int
    number: int
    call: Any  # the stream's Call: a place lost ends it (its `until` becomes now)


class StreamPlaces(Periodic):
    """Server streams a client holds open, capped over every worker and node (R17: bounded abuse); over the
    cap → 429 / RESOURCE_EXHAUSTED TOO_MANY_STREAMS. `enter` takes a place (one statement, store.stream_places),
    `leave` gives it back; every third of `ttl` one statement renews this process's places, so the places of
    a worker killed outright free themselves within `ttl` (the database's clock). Unary calls never come here.

    The database down: a stream is refused with UNAVAILABLE, never counted locally instead. The cap is the
    abuse bound, and a per-worker fallback would let one client hold cap × workers × nodes streams exactly
    when the platform is weakest; and a watch reads the card's status from the database every half second,
    so a stream opened meanwhile could not have answered anything. Places taken before the outage stay
    counted (their rows are there) until they expire; a stream whose place was lost (not renewed in time,
    e.g. across an outage longer than `ttl`) is ended as its lifetime would end it, and may be opened again.
    """

    chore = "renewing stream places"

    def __init__(self, pool: Any, cap: int, node: str, worker: int, ttl: float, timeout: float = 2.0) -> None:
        self.pool, self.cap, self.node, self.worker, self.ttl, self.timeout = pool, cap, node, worker, ttl, timeout
        self.every = ttl / 3
        self.holder = uuid.uuid4()  # this process: a restarted worker never renews its predecessor's places
        self.held: dict[tuple[int, int], Place] = {}
        self._leaving: set[asyncio.Task] = set()

    async def enter(self, client_id: int, call: Any) -> Place:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                number = await stream_places.take(conn, client_id, self.cap, self.node, self.worker,
                                                  self.holder, self.ttl, self.timeout)
        except (asyncio.TimeoutError, *status.DATABASE_DOWN):
            exc = Unavailable("the stream cap cannot be checked now; retry later")
            exc.retry_after = 1.0  # type: ignore[attr-defined]
            raise exc from None
        if number is None:
            raise RateLimited(f"at most {self.cap} status streams open at once; close one first",
                              retry_after=1, reason="TOO_MANY_STREAMS")
        place = self.held[(client_id, number)] = Place(client_id, number, call)
        return place

    def leave(self, place: Place) -> None:
        """Give the place back, in the background (the stream's end never waits on the database)."""
        if self.held.pop((place.client_id, place.number), None) is None:
            return
        task = asyncio.get_running_loop().create_task(self._give_back(place))
        self._leaving.add(task)
        task.add_done_callback(self._leaving.discard)

    async def _give_back(self, place: Place) -> None:
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                await stream_places.leave(conn, place.client_id, place.number, self.holder, self.timeout)
        except Exception as exc:  # no longer renewed: the place frees itself within ttl
            logger.warning("stream place not given back; it expires", extra={"error": type(exc).__name__})

    async def tick(self) -> None:
        held = dict(self.held)
        async with self.pool.acquire(timeout=self.timeout) as conn:
            kept = await stream_places.renew(conn, self.holder, list(held), self.ttl, self.timeout)
        for key, place in held.items():
            if key not in kept and self.held.get(key) is place:  # expired before this renewal (taken
                del self.held[key]                                 # over, or purged): end its stream
                place.call.until = 0.0
                logger.warning("stream place lost; ending the stream", extra={"client": place.client_id})

    async def stop(self) -> None:
        """Stop renewing; wait (bounded) for the places being given back."""
        await super().stop()
        if self._leaving:
            await asyncio.wait(list(self._leaving), timeout=self.timeout)

    async def give_back_all(self) -> None:
        """A draining worker, once its streams have ended: every place of this process goes back at once."""
        self.held.clear()
        try:
            async with self.pool.acquire(timeout=self.timeout) as conn:
                await stream_places.give_back_all(conn, self.holder, self.timeout)
        except Exception as exc:  # they expire within ttl
            logger.warning("stream places not given back; they expire", extra={"error": type(exc).__name__})


class SharedWindows(Periodic):
    """Syncs a RateLimiter's client counts through the database every 0.25 s: one round trip per worker
    per tick, none per call. A client can overshoot its limit by what the other workers let through
    within one tick; the database being down leaves each worker counting alone until it is back."""

    every = 0.25
    chore = "sharing rate-limit counts"

    def __init__(self, pool: Any, limiter: RateLimiter) -> None:
        self.pool = pool
        self.limiter = limiter
        self._forgot = -1

    async def sync(self) -> None:
        index = self.limiter.window()
        sent = self.limiter.unsynced(index)
        async with self.pool.acquire() as conn:
            if sent:
                await rate_windows.add_calls(conn, index, sent)
            totals = await rate_windows.totals(conn, index)
            if self._forgot != index:  # once a window: rows of windows gone by
                await rate_windows.forget_before(conn, index - 1)
                self._forgot = index
        self.limiter.synced(index, sent, totals)

    async def tick(self) -> None:  # the database being down leaves each worker counting alone meanwhile
        await self.sync()
