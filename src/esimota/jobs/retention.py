"""Retention of the API call log, the BIP channel log and the console's sign-ins and sessions (R26, R27): rows older
than 190 days (≥ 6 months) are purged hourly."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from ..service import console_auth
from ..store import bip_log, call_log

logger = logging.getLogger("esimota.retention")
INTERVAL_S = 3600.0


async def job(platform: Any) -> None:
    """JOBS entry: purge, then sleep an hour; a failed purge is retried at the next turn."""
    while True:
        try:
            purged = await call_log.purge(platform.pool)
            if purged:
                logger.info("call log purged", extra={"rows": purged, "days": call_log.RETENTION_DAYS})
            purged = await bip_log.purge(platform.pool)
            if purged:
                logger.info("BIP channel log purged", extra={"rows": purged, "days": bip_log.RETENTION_DAYS})
            purged = await console_auth.purge(platform.pool)
            if purged:
                logger.info("console sign-ins and sessions purged", extra={"rows": purged})
        except Exception as exc:  # the database may be down: try again later
            logger.warning("call log purge failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(INTERVAL_S)
