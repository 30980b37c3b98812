"""Lookups of the same kind that arrive together share one query (one round trip for many partner calls).

Every status query of a busy worker would otherwise take a pooled connection and a round trip of its
own. A `Coalescer` gathers the keys asked for during one turn of the event loop and sends them as one
`= ANY($1)` query; while up to `max_in_flight` such queries run, new keys wait for the next one. A
shared query starts only after its callers asked, so each answer is at least as fresh as a query of its own.
"""

from __future__ import annotations

import asyncio
from typing import Any, Hashable

MAX_KEYS = 512


class Coalescer:
    """`await get(key)` → the row whose `_key` column equals key, or None. `sql` takes the keys as $1."""

    def __init__(self, pool: Any, sql: str, *, max_in_flight: int = 4, max_keys: int = MAX_KEYS) -> None:
        self.pool = pool
        self.sql = sql
        self.max_in_flight = max_in_flight
        self.max_keys = max_keys
        self.pending: dict[Hashable, list[asyncio.Future]] = {}
        self.in_flight = 0
        self.queries = 0  # queries sent, and keys they carried: the coalescing ratio, for tests and metrics
        self.keys = 0
        self._scheduled = False

    async def get(self, key: Hashable) -> Any:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        self.pending.setdefault(key, []).append(fut)
        self._schedule(loop)
        return await fut

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        # after the callbacks already ready, so the calls that arrived in this turn join the query
        if not self._scheduled and self.in_flight < self.max_in_flight and self.pending:
            self._scheduled = True
            loop.call_soon(self._start)

    def _start(self) -> None:
        self._scheduled = False
        if not self.pending or self.in_flight >= self.max_in_flight:
            return
        if len(self.pending) <= self.max_keys:
            waiting, self.pending = self.pending, {}
        else:
            keys = list(self.pending)[: self.max_keys]
            waiting = {k: self.pending.pop(k) for k in keys}
        self.in_flight += 1
        asyncio.get_running_loop().create_task(self._run(waiting))

    async def _run(self, waiting: dict[Hashable, list[asyncio.Future]]) -> None:
        try:
            rows = await self.pool.fetch(self.sql, list(waiting))
        except BaseException as exc:  # every waiter learns what happened to its query (DB down → 503)
            for futs in waiting.values():
                for fut in futs:
                    if not fut.done():
                        fut.set_exception(exc)
            if not isinstance(exc, Exception):
                raise
        else:
            self.queries += 1
            self.keys += len(waiting)
            found = {r["_key"]: r for r in rows}
            for key, futs in waiting.items():
                row = found.get(key)
                for fut in futs:
                    if not fut.done():  # a caller that left (cancelled) is skipped
                        fut.set_result(row)
        finally:
            self.in_flight -= 1
            self._schedule(asyncio.get_running_loop())


_COALESCERS: dict[int, tuple[Any, dict[str, Coalescer]]] = {}


def coalescer(pool: Any, sql: str) -> Coalescer:
    """The pool's coalescer for `sql` (one per pool and query, made on first use; closed pools forgotten)."""
    entry = _COALESCERS.get(id(pool))
    if entry is not None and entry[0] is pool:
        found = entry[1].get(sql)
        if found is not None:
            return found
    if entry is None or entry[0] is not pool:
        for key in [k for k, (p, _) in _COALESCERS.items() if p.is_closing()]:
            del _COALESCERS[key]
        entry = _COALESCERS[id(pool)] = (pool, {})
    found = entry[1].get(sql)
    if found is None:
        found = entry[1][sql] = Coalescer(pool, sql)
    return found
