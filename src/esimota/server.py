"""`esimota serve`: the HTTPS bridge, gRPC, the BIP endpoint and background jobs in one or more workers."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
from aiohttp import web

from . import config, log as eslog, runtime
from .api.bip import endpoint
from .api.bip.driver import Driver
from .api.core import Api
from .api.grpc import server as grpc_server
from .api.grpc import servicers
from .api.http import app as http_app
from .api.http import bridge
from .api.http.deadline import GuardedTCPSite
from .jobs import backups, ops, retention
from .jobs import callbacks as callback_job
from .ota.guard import SourceGuard
from .service.bip import ChannelService
from .store import embedded, migrate

logger = logging.getLogger("esimota.server")

#: Background jobs started by worker 0, in this order: fn(platform) -> coroutine run for the worker's life.
JOBS = (callback_job.job, retention.job, ops.watchdog_job, ops.monitoring_job, ops.notify_job,
        ops.quality_job, ops.retention_job, backups.job)


@dataclass
class Platform:
    """What one worker holds: settings, the pool, the Api, the BIP driver, the three listeners and the jobs."""

    settings: config.Settings
    worker_id: int = 0
    pool: object = None
    tls_paths: tuple[Path, Path] | None = None
    http_runner: web.AppRunner | None = None
    grpc: grpc.aio.Server | None = None
    bip: asyncio.AbstractServer | None = None
    ports: dict[str, int] = field(default_factory=dict)
    tasks: list[asyncio.Task] = field(default_factory=list)
    api: Api | None = None
    bip_driver: Driver | None = None
    ops_grpc: grpc.aio.Server | None = None             # the operations listener (DESIGN §6): staff
    ops_runner: web.AppRunner | None = None             # gRPC services, and /metrics over HTTPS


def _settings_from(args: argparse.Namespace) -> config.Settings:
    s = config.Settings()
    for name in ("host", "http_port", "grpc_port", "bip_port", "workers"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(s, name, value)
    if getattr(args, "no_tls", False):
        s.tls = False
    return s


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name)
    return float(raw) if raw else default


def _bip_driver(pool, settings: config.Settings) -> Driver:
    """The channel service on the pool and the multiplexer driver that feeds it (DESIGN §5.5), with the
    per-address limit on frames refused before a MAC verifies (ota.guard)."""
    return Driver(ChannelService(pool), guard=SourceGuard(settings.bip_refusals_per_s),
                  first_timeout=_env_seconds("ESIMOTA_BIP_FIRST_TIMEOUT", 60.0),
                  frame_timeout=_env_seconds("ESIMOTA_BIP_FRAME_TIMEOUT", 120.0),
                  check_timeout=_env_seconds("ESIMOTA_BIP_CHECK_TIMEOUT", 30.0))


async def start_worker(settings: config.Settings, worker_id: int = 0) -> Platform:
    """Open the pool, build this worker's parts and start its three listeners (and, in worker 0, the jobs).

    The one Api (client cache, limits, call log) serves both HTTP and gRPC; the BIP driver owns the
    multiplexer behind the BIP listener."""
    p = Platform(settings=settings, worker_id=worker_id)
    p.pool = await runtime.open_pool(settings.database_url, max_size=settings.db_pool_size,
                                     run_migrations=False)
    p.api = Api(p.pool, p.settings)
    await p.api.start()
    p.bip_driver = _bip_driver(p.pool, settings)
    p.bip_driver.start()
    await _start_listeners(p)
    if worker_id == 0:
        p.tasks = [asyncio.create_task(job(p)) for job in JOBS]
    return p


async def _start_listeners(p: Platform) -> None:
    """The HTTPS bridge, gRPC and the BIP endpoint; their bound ports go to `p.ports`."""
    settings = p.settings
    ssl_ctx, creds = None, None
    if settings.tls:
        from . import tls

        p.tls_paths = tls.ensure_certificate(config.home())
        ssl_ctx = tls.server_context(*p.tls_paths)
        creds = grpc.ssl_server_credentials([(p.tls_paths[1].read_bytes(), p.tls_paths[0].read_bytes())])
    app = http_app.create_app(p.pool, registrars=(bridge.register,))
    app[http_app.PLATFORM] = p
    p.http_runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await p.http_runner.setup()
    site = GuardedTCPSite(p.http_runner, settings.host, settings.http_port, ssl_context=ssl_ctx,
                          reuse_port=True, backlog=1024, head_timeout=settings.http_head_timeout)
    await site.start()
    p.ports["http"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    p.grpc, p.ports["grpc"], _ = await grpc_server.create_server(
        f"{settings.host}:{settings.grpc_port}", registrars=(servicers.register,), credentials=creds, context=p)
    await p.grpc.start()
    p.bip = await endpoint.start(settings.bip_host, settings.bip_port, p.bip_driver.protocol)
    p.ports["bip"] = p.bip.sockets[0].getsockname()[1]
    await _start_ops_listener(p, ssl_ctx, creds)


async def _start_ops_listener(p: Platform, ssl_ctx, creds) -> None:
    """Staff surfaces, never on the partner ports (DESIGN §6): AdminService and IngestService over gRPC on
    ESIMOTA_ADMIN_PORT, /metrics on ESIMOTA_ADMIN_HTTP_PORT, both on ESIMOTA_ADMIN_HOST (127.0.0.1), with the
    same TLS as the partner listeners. Its reflection lists the staff services only."""
    s = p.settings
    p.ops_grpc, p.ports["admin"], _ = await grpc_server.create_server(
        f"{s.admin_host}:{s.admin_port}", registrars=(servicers.register_staff,), credentials=creds, context=p)
    await p.ops_grpc.start()
    p.ops_runner = web.AppRunner(http_app.create_ops_app(p.pool), access_log=None, handle_signals=False)
    await p.ops_runner.setup()
    site = GuardedTCPSite(p.ops_runner, s.admin_host, s.admin_http_port, ssl_context=ssl_ctx, reuse_port=True,
                          head_timeout=s.http_head_timeout)
    await site.start()
    p.ports["admin_http"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def stop_worker(p: Platform, grace: float = 8.0) -> None:
    """Drain: stop accepting, let calls in flight finish within `grace`, close the pool.

    asyncio.wait (not wait_for) bounds the waits: on Python 3.11 wait_for can swallow a cancellation.
    """
    if p.bip is not None:
        p.bip.close()
    if p.bip_driver is not None:
        await p.bip_driver.stop()
    for t in p.tasks:
        t.cancel()
    stops = []
    for server in (p.grpc, p.ops_grpc):
        if server is not None:
            stops.append(asyncio.ensure_future(server.stop(grace)))
    for runner in (p.http_runner, p.ops_runner):
        if runner is not None:
            stops.append(asyncio.ensure_future(runner.cleanup()))
    waiting = stops + list(p.tasks)
    if waiting:
        _, late = await asyncio.wait(waiting, timeout=grace + 1)
        for t in late:
            t.cancel()
        if late:
            logger.warning("drain timed out; stopping anyway", extra={"worker": p.worker_id})
    if p.pool is not None:
        closing = asyncio.ensure_future(p.pool.close())
        _, late = await asyncio.wait([closing], timeout=2)
        if late:
            p.pool.terminate()


async def _run_worker(settings: config.Settings, worker_id: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    p = await start_worker(settings, worker_id)
    scheme = "https" if settings.tls else "http"
    logger.info("worker ready", extra={"worker": worker_id, "http": f"{scheme}://{settings.host}:{p.ports['http']}",
                                       "grpc": f"{settings.host}:{p.ports['grpc']}", "bip": p.ports["bip"],
                                       "admin": f"{settings.admin_host}:{p.ports['admin']}",
                                       "admin_http": f"{scheme}://{settings.admin_host}:{p.ports['admin_http']}",
                                       "tls": settings.tls})
    await stop.wait()
    logger.info("draining", extra={"worker": worker_id})
    await stop_worker(p, settings.shutdown_grace)


def _prepare(settings: config.Settings) -> bool:
    """Database up and migrated before any worker starts; True if this call started the embedded one."""
    started = False
    if not settings.database_url:
        cluster = embedded.Cluster(config.home())
        started = not cluster.running()
        settings.database_url = cluster.start()
    asyncio.run(migrate.migrate_url(settings.database_url))
    config.master_key()  # generated on first start, mode 0600
    if settings.tls:
        from . import tls

        tls.ensure_certificate(config.home())
    return started


def _spawn_workers(settings: config.Settings, args: argparse.Namespace) -> int:
    """N worker processes sharing the ports (SO_REUSEPORT); signals are passed on; waits for all."""
    metrics_dir = config.home() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(mode=0o700)
    env = dict(os.environ, DATABASE_URL=settings.database_url or "", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    argv = [sys.executable, "-m", "esimota.cli", "serve", "--host", settings.host,
            "--http-port", str(settings.http_port), "--grpc-port", str(settings.grpc_port),
            "--bip-port", str(settings.bip_port), "--workers", "1"] + (["--no-tls"] if not settings.tls else [])
    env["ESIMOTA_SUPERVISOR_PID"] = str(os.getpid())
    procs = [subprocess.Popen(argv, env=dict(env, ESIMOTA_WORKER_ID=str(i))) for i in range(settings.workers)]

    def forward(signum, _frame):
        for pr in procs:
            if pr.poll() is None:
                pr.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    codes = [pr.wait() for pr in procs]
    return max(codes) if codes else 0


def _die_with_supervisor() -> bool:
    """A worker drains and exits when its supervisor dies, even by kill -9 (Linux PR_SET_PDEATHSIG sends
    it SIGTERM): an orphan would keep serving the shared ports beside the next server's workers.
    False if the supervisor is gone already."""
    expected = int(os.environ.get("ESIMOTA_SUPERVISOR_PID", "0") or 0)
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, int(signal.SIGTERM), 0, 0, 0)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):  # not Linux: the supervisor's SIGTERM is the only way out
        pass
    return not expected or os.getppid() == expected


def _run(main: Any) -> None:
    """A worker's event loop: asyncio's, or uvloop's with ESIMOTA_LOOP=uvloop (when installed).

    asyncio's is the default: on the fleet benchmark uvloop workers spent three times the CPU per
    write (BENCHMARKS.md), while the HTTP bridge gained nothing measurable per request.
    """
    if os.environ.get("ESIMOTA_LOOP", "asyncio") == "uvloop":
        import uvloop
        uvloop.run(main)
        return
    asyncio.run(main)


def serve_main(args: argparse.Namespace) -> int:
    eslog.setup()
    settings = _settings_from(args)
    worker_id = int(os.environ.get("ESIMOTA_WORKER_ID", "-1"))
    if worker_id >= 0:  # a worker spawned by the supervisor: everything is prepared
        if not _die_with_supervisor():
            return 0
        _run(_run_worker(settings, worker_id))
        return 0
    started_db = _prepare(settings)
    t0 = time.monotonic()
    try:
        if settings.workers <= 1:
            _run(_run_worker(settings, 0))
            code = 0
        else:
            code = _spawn_workers(settings, args)
    finally:
        if started_db:  # stop what this command started (make run: Ctrl-C stops the database too)
            embedded.Cluster(config.home()).stop()
        logger.info("stopped", extra={"uptime_s": round(time.monotonic() - t0, 1)})
    return code
