"""Liveness and readiness of one worker, told the same way over HTTP (/healthz, /readyz) and gRPC health.

Live: the process answers. Ready: the database answers and the worker is not draining. gRPC health
reports every service NOT_SERVING while not ready and SERVING again once the database is back,
without a restart; a load balancer or Kubernetes probe takes the worker out and back by it.
"""

from __future__ import annotations

import asyncio
import logging
import os
from typing import Any

from grpc_health.v1 import health_pb2

from ..store import health as health_store

log = logging.getLogger("esimota.health")
PROBE_TIMEOUT_S = 2.0


def interval_from_env(default: float = 2.0) -> float:
    """ESIMOTA_READY_INTERVAL seconds between probes (at least 0.05); a bad value keeps the default."""
    try:
        return max(0.05, float(os.environ.get("ESIMOTA_READY_INTERVAL", "") or default))
    except ValueError:
        log.warning("ESIMOTA_READY_INTERVAL is not a number of seconds; using the default",
                    extra={"default": default})
        return default


class Readiness:
    """One per worker: probes the database every `interval` seconds and publishes the verdict."""

    def __init__(self, pool: Any, *, interval: float = 2.0) -> None:
        self.pool = pool
        self.interval = interval
        self.database = "unknown"
        self.draining = False
        self._servers: list[tuple[Any, list[str]]] = []  # (gRPC health servicer, the services it reports)
        self._task: asyncio.Task | None = None
        self._published: bool | None = None

    @property
    def ready(self) -> bool:
        return self.database == "up" and not self.draining

    def attach_grpc(self, servicer: Any, names: list[str]) -> None:
        """A gRPC server's health servicer and the services it reports (the overall "" too); the
        partner and the operations listeners each have one."""
        self._servers.append((servicer, [*names, ""]))
        self._published = None  # publish to it at the next probe

    async def probe(self) -> str:
        """`SELECT 1` within PROBE_TIMEOUT_S: "up" or "down" (never raises)."""
        if self.pool is None:
            return "down"
        probe = asyncio.ensure_future(health_store.ping(self.pool))
        done, _ = await asyncio.wait([probe], timeout=PROBE_TIMEOUT_S)
        if not done:
            probe.cancel()
            return "down"
        return "down" if probe.exception() is not None else "up"

    async def refresh(self) -> bool:
        """Probe now and publish; returns whether the worker is ready."""
        self.database = await self.probe()
        await self.publish()
        return self.ready

    async def publish(self) -> None:
        ready = self.ready
        if ready == self._published:
            return
        if self._published is not None:
            log.warning("readiness changed", extra={"ready": ready, "database": self.database,
                                                    "draining": self.draining})
        self._published = ready
        status = health_pb2.HealthCheckResponse.SERVING if ready else health_pb2.HealthCheckResponse.NOT_SERVING
        for servicer, names in self._servers:
            for name in names:
                await servicer.set(name, status)

    async def _loop(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception as exc:  # never let the prober die: the next pass tries again
                log.warning("readiness probe failed", extra={"error": type(exc).__name__})
            await asyncio.sleep(self.interval)

    async def start(self) -> None:
        await self.refresh()
        self._task = asyncio.create_task(self._loop())

    async def drain(self) -> None:
        """Not ready from now on (SIGTERM): balancers stop sending new calls while those in flight finish."""
        self.draining = True
        await self.publish()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
