"""Per-client call limits of §7.1.2 (R17): fixed one-minute windows, answered with 429 and RateLimit-* headers."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..errors import RateLimited

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
    """Counts calls per key in the current window of this process; over the limit → RateLimited."""

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._windows: dict[object, list] = {}  # key -> [window index, count]

    def hit(self, key: object, limit: int) -> Quota:
        now = self._clock()
        index = int(now // WINDOW_S)
        window = self._windows.get(key)
        if window is None or window[0] != index:
            if len(self._windows) > 100_000:  # forget idle callers (per-IP keys of GetToken)
                self._windows = {k: w for k, w in self._windows.items() if w[0] == index}
            window = self._windows[key] = [index, 0]
        reset = (index + 1) * WINDOW_S - now
        if window[1] >= limit:
            exc = RateLimited(f"more than {limit} calls a minute; retry in {math.ceil(reset)} s",
                              retry_after=max(1, math.ceil(reset)))
            exc.quota = Quota(limit, 0, reset)  # type: ignore[attr-defined]
            raise exc
        window[1] += 1
        return Quota(limit, limit - window[1], reset)
