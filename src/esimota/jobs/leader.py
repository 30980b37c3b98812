"""Background jobs under leases held in PostgreSQL (issue 18): one node runs each job, another takes over.

Each job has a row in job_leases; the runner of worker 0 on every node tries every RENEW_S to take or
renew each lease (expiry by the database's clock, TTL_S). The holder runs the job; a holder that cannot
renew (cut off from the database) stops its job before its lease can expire, so that when
another node takes the lease over (at most TTL_S + RENEW_S later, well within 60 s) no two run together.
Scheduled passes also claim their period in job_runs and mark it done only once the pass succeeded, so a
done period never runs again; a pass cut short (the node died, was cut off or drained mid-pass) leaves its
period 'running', and the next holder of the lease claims it and runs it again (the passes are idempotent:
each asks the database whether its work is already there), so the period is finished, not skipped.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable

from prometheus_client import Gauge

from ..store import leases as lease_store

logger = logging.getLogger("esimota.leader")
TTL_S = 30.0     # a lease not renewed for this long (database clock) may be taken by another node
RENEW_S = 5.0    # every runner tries (takes free leases, renews its own) this often
HELD = Gauge("esimota_job_lease_held", "1 while this process holds the job's lease", ["job"],
             multiprocess_mode="liveall")


def timings() -> tuple[float, float]:
    """(TTL, renew interval) in seconds: ESIMOTA_LEASE_TTL (tests shorten it); renewals at a sixth of it."""
    raw = os.environ.get("ESIMOTA_LEASE_TTL", "")
    try:
        ttl = max(1.0, float(raw)) if raw else TTL_S
    except ValueError:
        ttl = TTL_S
    return ttl, ttl / 6


@dataclass
class Lease:
    """What a job is given: its name, this node, the lease token, and `once` for its scheduled passes."""

    job: str
    node: str
    pool: Any
    token: uuid.UUID = field(default_factory=uuid.uuid4)
    cut_short: set[str] = field(default_factory=set)  # periods whose pass here ended without its outcome recorded

    async def slot(self, interval_s: float) -> str:
        """The current period of a fixed interval, by the database's clock (the same on every node)."""
        return f"{await lease_store.slot(self.pool, interval_s)}/{interval_s:g}s"

    async def once(self, period: str, step: Callable[[], Awaitable[Any]]) -> tuple[bool, Any]:
        """Run `step` for `period` unless it is done or another runner holds the lease: (ran, result).
        The period is marked done only after `step` returned, so `step` must be idempotent: a pass cut
        short is run again, by this runner or by the next holder of the lease.

        The claim and the outcome are two short statements: the step itself runs in no transaction."""
        cut_short = period in self.cut_short
        try:
            if await lease_store.claim(self.pool, self.job, period, self.node, self.token, cut_short) is None:
                return False, None
            self.cut_short.discard(period)
            try:
                result = await step()
            except Exception as exc:  # the pass failed cleanly: its period may be tried again
                await self._finish(period, "failed", f"{type(exc).__name__}: {exc}"[:300])
                raise
            await self._finish(period, "done", None)
        except asyncio.CancelledError:
            # lease lost or drain: the period stays 'running'; whoever holds the lease next runs it again
            self.cut_short.add(period)
            raise
        return True, result

    async def _finish(self, period: str, status: str, detail: str | None) -> None:
        try:
            await lease_store.finish(self.pool, self.job, period, self.token, status, detail)
        except Exception as exc:  # the database is gone: the period stays 'running', to be run again
            self.cut_short.add(period)
            logger.warning("job run not recorded", extra={"job": self.job, "period": period,
                                                          "error": type(exc).__name__})


JobFn = Callable[[Any, Lease], Awaitable[None]]


@dataclass
class _Held:
    lease: Lease
    fn: JobFn
    task: asyncio.Task | None = None
    renewed: float = 0.0   # monotonic time of the last renewal that succeeded
    finished: bool = False  # the job returned by itself (e.g. switched off): not started again


class JobRunner:
    """Runs each (name, fn) of `jobs` while this node holds its lease; fn(platform, lease) runs for life."""

    def __init__(self, pool: Any, node: str, jobs: tuple[tuple[str, JobFn], ...], platform: Any = None) -> None:
        self.pool, self.node, self.platform = pool, node, platform
        self.ttl, self.renew = timings()
        self.jobs = {name: _Held(Lease(name, node, pool), fn) for name, fn in jobs}

    def running(self) -> list[str]:
        return sorted(n for n, h in self.jobs.items() if h.task is not None and not h.task.done())

    async def _acquire(self) -> set[str] | None:
        """The jobs whose lease this runner holds after one statement; None when the database did not answer."""
        names = list(self.jobs)
        tokens = [self.jobs[n].lease.token for n in names]
        try:
            async with self.pool.acquire(timeout=self.renew) as conn:
                rows = await lease_store.acquire(conn, names, self.node, tokens, self.ttl, self.renew)
        except (Exception, asyncio.TimeoutError) as exc:
            logger.warning("job leases not renewed", extra={"node": self.node, "error": type(exc).__name__})
            return None
        return {r["job"] for r in rows}

    def _start(self, name: str, held: _Held) -> None:
        logger.info("job lease taken; job starts", extra={"job": name, "node": self.node})
        held.task = asyncio.create_task(held.fn(self.platform, held.lease), name=f"job:{name}")
        HELD.labels(name).set(1)

    async def _stop(self, name: str, held: _Held, why: str) -> None:
        if held.task is not None and not held.task.done():
            logger.warning("job stops: %s", why, extra={"job": name, "node": self.node})
            held.task.cancel()
            await asyncio.wait([held.task], timeout=self.renew)
        held.task = None
        HELD.labels(name).set(0)

    def _reap(self, name: str, held: _Held) -> None:
        """A job that ended by itself: done for good if it returned (switched off), restarted if it raised."""
        if held.task is None or not held.task.done():
            return
        exc = None if held.task.cancelled() else held.task.exception()
        held.finished = not held.task.cancelled() and exc is None
        if exc is not None:
            logger.error("job failed; it starts again", extra={"job": name, "error": repr(exc)[:300]})
        held.task = None

    async def step(self) -> None:
        """One round: take or renew every lease in one statement, then start or stop each job accordingly."""
        for name, held in self.jobs.items():
            self._reap(name, held)
        asked = time.monotonic()  # the lease runs from the statement's time, which is later than this
        mine = await self._acquire()
        for name, held in self.jobs.items():
            if mine is None:
                # Cut off: stop before the lease can expire, so the next holder never runs beside it. Rounds
                # end at most 2 renewals apart (a sleep, a timed-out attempt): noticed past TTL/2 (3 renewals),
                # it is noticed by 4 and stopped by 5, one renewal before the lease ends at 6.
                if time.monotonic() - held.renewed > self.ttl / 2:
                    await self._stop(name, held, "lease not renewed in time")
            elif name in mine:
                held.renewed = asked
                if held.task is None and not held.finished:
                    self._start(name, held)
            else:
                await self._stop(name, held, "another node holds the lease")

    async def run(self) -> None:
        """Until cancelled; the leases are left to expire (a clean stop calls `release`)."""
        while True:
            await self.step()
            await asyncio.sleep(self.renew)

    async def release(self) -> None:
        """Drain (SIGTERM): stop every job and give the leases back, so that another node takes them at once."""
        for name, held in self.jobs.items():
            await self._stop(name, held, "node draining")
            try:
                await lease_store.release(self.pool, name, held.lease.token, self.renew)
            except (Exception, asyncio.TimeoutError):
                pass  # the lease expires by itself
