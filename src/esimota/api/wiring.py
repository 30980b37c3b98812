"""Plug the API into `esimota serve`: bridge routes, gRPC servicers, the shared Api per worker, and jobs."""

from __future__ import annotations

from typing import Any

from .. import server
from ..jobs import callbacks as callback_job
from ..jobs import retention
from .core import Api
from .grpc import server as grpc_server
from .grpc import servicers
from .http import app as http_app
from .http import bridge


async def start_api(platform: Any) -> None:
    """STARTUP hook: one Api (client cache, limits, call log) shared by HTTP and gRPC in this worker."""
    platform.api = Api(platform.pool, platform.settings)
    await platform.api.start()


def _add(items: list, *entries: Any) -> None:
    for entry in entries:
        if entry not in items:
            items.append(entry)


_add(server.STARTUP_HOOKS, start_api)
_add(http_app.REGISTRARS, bridge.register)
_add(grpc_server.REGISTRARS, servicers.register)
_add(server.JOBS, callback_job.job, retention.job)
