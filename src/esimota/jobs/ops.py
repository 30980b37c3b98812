"""Background jobs of §8–§10: exception detectors with the stuck-writing watchdog, monitoring, notifications."""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any, Awaitable, Callable

import aiohttp

from ..service import monitoring, ops, ops_notify

logger = logging.getLogger("esimota.ops")


def interval(name: str, default: float) -> float:
    """Seconds between passes: ESIMOTA_<NAME>_INTERVAL (tests shorten them)."""
    raw = os.environ.get(f"ESIMOTA_{name}_INTERVAL", "")
    try:
        return max(0.05, float(raw)) if raw else default
    except ValueError:
        return default


async def every(seconds: float, name: str, step: Callable[[], Awaitable[Any]]) -> None:
    """Run `step` every `seconds` (first after one period); a failed pass is logged and retried."""
    while True:
        await asyncio.sleep(seconds)
        try:
            result = await step()
            if result:
                logger.info("%s pass", name, extra={"result": str(result)[:300]})
        except Exception as exc:  # the database may be down: the next pass tries again
            logger.warning("%s pass failed", name, extra={"error": type(exc).__name__})


async def watchdog_job(platform: Any) -> None:
    """Detectors of tables 3–6 and the stuck-writing watchdog (30 min general, 1 h severe; DESIGN §3)."""
    async def step():
        res = await ops.scan(platform.pool)
        return res.opened or res.escalated or res.resolved
    await every(interval("WATCHDOG", 60.0), "exception detectors", step)


async def monitoring_job(platform: Any) -> None:
    """R32 and R12 checks: quota, region, high-risk areas, blacklists, expiry 30 days ahead."""
    async def step():
        out = await monitoring.scan(platform.pool)
        return {k: v for k, v in out.items() if any(v)}
    await every(interval("MONITOR", 300.0), "monitoring", step)


async def notify_job(platform: Any) -> None:
    """§8.3.1: severe exceptions and alerts posted to ESIMOTA_NOTIFY_URL well within 1 h."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as session:
        async def step():
            queued = await ops_notify.queue(platform.pool)
            sent = await ops_notify.deliver(platform.pool, session)
            return (queued, sent) if queued or sent else None
        await every(interval("NOTIFY", 30.0), "notifications", step)
