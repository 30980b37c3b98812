"""Background jobs of §8–§10: exception detectors with the stuck-writing watchdog, monitoring, notifications."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable

import datetime as dt

import aiohttp
from prometheus_client import Gauge

from .. import metrics
from ..service import backup, monitoring, ops, ops_notify, reports, reports_export
from ..service.common import now
from ..store import ops as ops_store

logger = logging.getLogger("esimota.ops")
# §10.3.1 / R29 quality indicators as Prometheus gauges, per rolling window
WRITE_SUCCESS = Gauge("esimota_quality_write_success_ratio", "finished writes that succeeded (R29)", ["window"],
                      multiprocess_mode="max")
CALL_SUCCESS = Gauge("esimota_quality_call_success_ratio", "API calls answered 200 (R29)", ["window"],
                     multiprocess_mode="max")
IN_TIME = Gauge("esimota_quality_exceptions_in_time_ratio", "exceptions closed before their deadline (R24, R29)",
                ["window"], multiprocess_mode="max")
WINDOWS = {"24h": dt.timedelta(hours=24), "30d": dt.timedelta(days=30)}


def interval(name: str, default: float) -> float:
    """Seconds between passes: ESIMOTA_<NAME>_INTERVAL (tests shorten them)."""
    raw = os.environ.get(f"ESIMOTA_{name}_INTERVAL", "")
    try:
        return max(0.05, float(raw)) if raw else default
    except ValueError:
        return default


async def every(seconds: float, name: str, step: Callable[[], Awaitable[Any]], lease: Any = None) -> None:
    """Run `step` every `seconds` (first after one period); a failed pass is logged and retried.

    Under a job lease (jobs/leader.py) each pass claims its period (a slot of `seconds` by the database's
    clock) in job_runs first: a period that another node ran already is not run again."""
    while True:
        await asyncio.sleep(seconds)
        try:
            if lease is None:
                result = await step()
            else:
                _, result = await lease.once(await lease.slot(seconds), step)
            if result:
                logger.info("%s pass", name, extra={"result": str(result)[:300]})
        except Exception as exc:  # the database may be down: the next pass tries again
            logger.warning("%s pass failed", name, extra={"error": type(exc).__name__})


async def watchdog_job(platform: Any, lease: Any) -> None:
    """Detectors of tables 3–6 and the stuck-writing watchdog (30 min general, 1 h severe; DESIGN §3)."""
    async def step():
        res = await ops.scan(platform.pool)
        return res.opened or res.escalated or res.resolved
    await every(interval("WATCHDOG", 60.0), "exception detectors", step, lease)


async def monitoring_job(platform: Any, lease: Any) -> None:
    """R32 and R12 checks: quota, region, high-risk areas, blacklists, expiry 30 days ahead."""
    async def step():
        out = await monitoring.scan(platform.pool)
        await ops_notify.queue_alerts(platform.pool)  # this run's new alerts: one post (issue 15)
        return {k: v for k, v in out.items() if any(v)}
    await every(interval("MONITOR", 300.0), "monitoring", step, lease)


async def notify_job(platform: Any, lease: Any) -> None:
    """§8.3.1: severe exceptions and alerts posted to ESIMOTA_NOTIFY_URL well within 1 h."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def step():
            queued = await ops_notify.queue(platform.pool)
            sent = await ops_notify.deliver(platform.pool, session)
            return (queued, sent) if queued or sent else None
        await every(interval("NOTIFY", 30.0), "notifications", step, lease)


async def update_quality(pool: Any) -> None:
    """Refresh the R29 gauges; a window without data leaves its gauge at NaN (nothing to judge)."""
    end = now()
    for name, span in WINDOWS.items():
        q = await reports.quality(pool, end - span, end)
        for gauge, value in ((WRITE_SUCCESS, q["writes"]["write_success_rate"]),
                             (CALL_SUCCESS, q["interface"]["call_success_rate"]),
                             (IN_TIME, q["exceptions"]["handled_in_time"])):
            gauge.labels(name).set(float("nan") if value is None else value)
    await update_gauges(pool)


async def update_gauges(pool: Any) -> None:
    """The /metrics gauges that come from the database and the backup directory (worker 0, every minute)."""
    rows = await ops_store.open_exception_counts(pool)
    for cls in ("apply", "write", "interface", "terminal"):
        for severity in ("general", "severe"):
            for overdue in (False, True):
                n = sum(r[3] for r in rows if (r[0], r[1], r[2]) == (cls, severity, overdue))
                metrics.EXCEPTIONS_OPEN.labels(cls, severity, str(overdue).lower()).set(n)
    row = await ops_store.temp_expiring(pool)
    for window in ("expired", "30d", "90d"):
        metrics.TEMP_EXPIRING.labels(window).set(row[window])
    waiting = dict(await ops_store.tasks_waiting(pool))
    metrics.TASKS_WAITING.labels("awaiting_power_on").set(waiting.get(2, 0))
    metrics.TASKS_WAITING.labels("writing").set(waiting.get(3, 0))
    queued = dict(await ops_store.callbacks_queued(pool))
    for status in ("pending", "exhausted"):
        metrics.CALLBACK_QUEUE.labels(status).set(queued.get(status, 0))
    newest = backup.newest(backup.locations()[0])
    metrics.BACKUP_LAST.set(newest.stat().st_mtime if newest is not None else 0)


async def quality_job(platform: Any) -> None:
    """R29 indicators for this node's /metrics, every minute (read-only: every node runs it, no lease)."""
    await every(interval("QUALITY", 60.0), "quality indicators", lambda: update_quality(platform.pool))


async def retention_job(platform: Any, lease: Any) -> None:
    """R34: regulator exports deleted after 24 months (daily)."""
    await every(interval("OPS_RETENTION", 86400.0), "export retention", lambda: reports_export.purge(platform.pool),
                lease)
