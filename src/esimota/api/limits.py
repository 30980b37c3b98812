"""Per-client call limits of §7.1.2 (R17): fixed one-minute windows, answered with 429 and RateLimit-* headers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from ..background import Periodic
from ..errors import RateLimited
from ..store import rate_windows

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


class StreamCap:
    """Open server streams per client in this process (R17: bounded abuse); over the cap → 429 /
    RESOURCE_EXHAUSTED. `enter` takes a place, `leave` gives it back when the stream ends."""

    def __init__(self, cap: int) -> None:
        self.cap = cap
        self.open: dict[object, int] = {}

    def enter(self, key: object) -> object:
        n = self.open.get(key, 0)
        if n >= self.cap:
            raise RateLimited(f"at most {self.cap} status streams open at once; close one first",
                              retry_after=1, reason="TOO_MANY_STREAMS")
        self.open[key] = n + 1
        return key

    def leave(self, key: object) -> None:
        n = self.open.get(key, 0) - 1
        if n > 0:
            self.open[key] = n
        else:
            self.open.pop(key, None)


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
