"""Frames that fail before a MAC verifies, limited per source address (DESIGN §5.4 step 1, R17: bounded abuse).

Sans-IO like the multiplexer: the caller passes `now`. Each source address has a token bucket; every
frame of that source refused before its MAC verified (unknown card, bad MAC, protocol error) takes a
token. A source whose bucket is empty has its new connections, and the frames it sends meanwhile, cut
at once: no database read, no database write. Cards of the same address whose MACs verify cost nothing.
"""

from __future__ import annotations

MAX_SOURCES = 100_000  # buckets kept; full ones are forgotten first (they say nothing)


class SourceGuard:
    """Token buckets of `rate` refusals a second (burst `rate`) per source; rate 0 switches the guard off."""

    def __init__(self, rate: float = 20.0, burst: float | None = None) -> None:
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else rate)
        self.buckets: dict[str, list[float]] = {}  # source -> [tokens, at]
        self.drained: set[str] = set()               # sources whose bucket was empty when last seen
        self.sources: dict[int, str] = {}             # channel id -> source address
        self.cut = 0                                  # connections and frames cut unread

    def _tokens(self, source: str, now: float) -> list[float]:
        bucket = self.buckets.get(source)
        if bucket is None:
            if len(self.buckets) >= MAX_SOURCES:
                self.buckets = {s: b for s, b in self.buckets.items() if s in self.drained}
            bucket = self.buckets[source] = [self.burst, now]
        elif bucket[0] < self.burst:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
        bucket[1] = now
        return bucket

    def blocked(self, source: str, now: float) -> bool:
        """Whether `source` has no token left (its frames are cut until the bucket refills)."""
        if not self.rate or source not in self.drained:
            return False
        if self._tokens(source, now)[0] >= 1.0:
            self.drained.discard(source)
            return False
        self.cut += 1
        return True

    def opened(self, cid: int, source: str, now: float) -> bool:
        """A new channel from `source`: False if it is to be cut unread."""
        if self.blocked(source, now):
            return False
        self.sources[cid] = source
        return True

    def closed(self, cid: int) -> None:
        self.sources.pop(cid, None)

    def source(self, cid: int) -> str:
        return self.sources.get(cid, "")

    def refused(self, cid: int, now: float) -> None:
        """A frame of channel `cid` failed before a MAC verified: its source pays a token."""
        source = self.sources.get(cid)
        if not self.rate or source is None:
            return
        bucket = self._tokens(source, now)
        bucket[0] -= 1.0
        if bucket[0] < 1.0:
            self.drained.add(source)
