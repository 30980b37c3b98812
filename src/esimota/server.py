"""`esimota serve`: the HTTPS bridge, gRPC, the BIP endpoint and background jobs in one or more workers."""

from __future__ import annotations

import argparse
import asyncio
import functools
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
from prometheus_client import Counter

from . import config, log as eslog, runtime, startup
from .api.bip import endpoint
from .api.bip.driver import Driver
from .api.console import app as console_app
from .api.console import pages as console_pages
from .api.core import Api
from .api.grpc import server as grpc_server
from .api.grpc import servicers
from .api import health
from .api.health import Readiness
from .api.http import app as http_app
from .api.http import bridge
from .api.http.deadline import GuardedTCPSite
from .jobs import backups, exports, ops, retention
from .jobs import callbacks as callback_job
from .jobs.leader import JobRunner
from .ota.guard import SourceGuard
from .service.bip import ChannelService
from .errors import ConfigError
from .store import embedded

logger = logging.getLogger("esimota.server")
RESTART_MIN_S, RESTART_MAX_S, RESTART_RESET_S = 1.0, 30.0, 60.0  # a dead worker's restart back-off
WORKER_RESTARTS = Counter("esimota_worker_restarts_total", "workers started again after one died", ["worker"])

#: Background jobs of worker 0 that one node at a time runs, each under its lease in PostgreSQL (issue 18):
#: (lease name, fn(platform, lease) -> coroutine run while the lease is held).
LEASED_JOBS = (("callbacks", callback_job.job), ("call-log-retention", retention.job),
               ("exception-detectors", ops.watchdog_job), ("monitoring", ops.monitoring_job),
               ("notifications", ops.notify_job), ("export-retention", ops.retention_job),
               ("backups", backups.job), ("regulator-exports", exports.job))
#: Jobs of worker 0 on every node (read-only, this node's /metrics): fn(platform) -> coroutine.
JOBS = (ops.quality_job,)


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
    admin_grpc: grpc.aio.Server | None = None             # the operations listener (DESIGN §6): staff
    admin_runner: web.AppRunner | None = None             # gRPC services, and /metrics over HTTPS
    readiness: Readiness | None = None                  # database up and not draining (api.health)
    job_runner: JobRunner | None = None                 # worker 0: the leased background jobs (issue 18)


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
    p.readiness = Readiness(p.pool, interval=health.interval_from_env())
    p.api = Api(p.pool, p.settings, worker_id=worker_id)
    await p.api.start()
    p.bip_driver = _bip_driver(p.pool, settings)
    p.bip_driver.start()
    await _start_listeners(p)
    await p.readiness.start()
    if worker_id == 0:
        p.job_runner = JobRunner(p.pool, settings.node_id, LEASED_JOBS, p)
        p.tasks = [asyncio.create_task(p.job_runner.run())] + [asyncio.create_task(job(p)) for job in JOBS]
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
    app = http_app.create_app(p.pool, p.readiness, registrars=(functools.partial(bridge.register, api=p.api),))
    p.http_runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await p.http_runner.setup()
    site = GuardedTCPSite(p.http_runner, settings.host, settings.http_port, ssl_context=ssl_ctx,
                          reuse_port=True, backlog=1024, head_timeout=settings.http_head_timeout)
    await site.start()
    p.ports["http"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    p.grpc, p.ports["grpc"], _ = await grpc_server.create_server(
        f"{settings.host}:{settings.grpc_port}", registrars=(servicers.register,), credentials=creds, context=p.api,
        readiness=p.readiness)
    await p.grpc.start()
    p.bip = await endpoint.start(settings.bip_host, settings.bip_port, p.bip_driver.protocol)
    p.ports["bip"] = p.bip.sockets[0].getsockname()[1]
    await _start_admin_listener(p, ssl_ctx, creds)


async def _start_admin_listener(p: Platform, ssl_ctx, creds) -> None:
    """Staff surfaces, never on the partner ports (DESIGN §6): AdminService and IngestService over gRPC on
    ESIMOTA_ADMIN_PORT, /metrics and the console (/console/) on ESIMOTA_ADMIN_HTTP_PORT, both on ESIMOTA_ADMIN_HOST
    (127.0.0.1), with the same TLS as the partner listeners. Its reflection lists the staff services only."""
    s = p.settings
    p.admin_grpc, p.ports["admin"], _ = await grpc_server.create_server(
        f"{s.admin_host}:{s.admin_port}", registrars=(servicers.register_staff,), credentials=creds, context=p.api,
        readiness=p.readiness)
    await p.admin_grpc.start()
    admin_app = http_app.create_admin_app(p.pool, p.readiness)  # /readyz knows the worker drains
    # the operator console (R28): staff sessions on this listener only, never on a partner port
    console_app.mount(admin_app, console_app.create_app(p.pool, p.api.addresses, console_pages.register))
    p.admin_runner = web.AppRunner(admin_app, access_log=None, handle_signals=False)
    await p.admin_runner.setup()
    site = GuardedTCPSite(p.admin_runner, s.admin_host, s.admin_http_port, ssl_context=ssl_ctx, reuse_port=True,
                          head_timeout=s.http_head_timeout)
    await site.start()
    p.ports["admin_http"] = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]


async def stop_worker(p: Platform, grace: float = 8.0) -> None:
    """Drain: stop accepting, let calls in flight finish within `grace`, stop the Api (its caches, and its
    call log written to the last row), close the pool.

    asyncio.wait (not wait_for) bounds the waits: on Python 3.11 wait_for can swallow a cancellation.
    """
    if p.readiness is not None:  # NOT_SERVING / 503 from now on, while what is in flight finishes
        await p.readiness.drain()
        await p.readiness.stop()
    if p.bip is not None:
        p.bip.close()
    if p.bip_driver is not None:
        await p.bip_driver.stop()
    for t in p.tasks:
        t.cancel()
    if p.job_runner is not None:  # the leases go back at once: another node takes the jobs without waiting
        await asyncio.wait([asyncio.ensure_future(p.job_runner.release())], timeout=grace)
    stops = []
    for server in (p.grpc, p.admin_grpc):
        if server is not None:
            stops.append(asyncio.ensure_future(server.stop(grace)))
    for runner in (p.http_runner, p.admin_runner):
        if runner is not None:
            stops.append(asyncio.ensure_future(runner.cleanup()))
    waiting = stops + list(p.tasks)
    if waiting:
        _, late = await asyncio.wait(waiting, timeout=grace + 1)
        for t in late:
            t.cancel()
        if late:
            logger.warning("drain timed out; stopping anyway", extra={"worker": p.worker_id})
    if p.api is not None:  # its streams have ended: their places go back now, not when they expire
        await asyncio.wait([asyncio.ensure_future(p.api.watches.give_back_all())], timeout=2)
    if p.api is not None:  # no call is in flight on any listener now: the call log's last rows are written
        _, late = await asyncio.wait([asyncio.ensure_future(p.api.stop())], timeout=2)
        for t in late:
            t.cancel()
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
                                       "tls": settings.tls, "jobs": [j.__module__.rsplit(".", 1)[-1] + "."
                                                                     + j.__name__ for j in JOBS] if worker_id == 0 else [],
                                       "leased_jobs": [name for name, _ in LEASED_JOBS] if worker_id == 0 else []})
    await stop.wait()
    logger.info("draining", extra={"worker": worker_id})
    await stop_worker(p, settings.shutdown_grace)


def _prepare(settings: config.Settings) -> bool:
    """The start-up checks (esimota.startup), then the database migrated before any worker starts;
    True if this call started the embedded cluster. Raises startup.Refused or ConfigError."""
    startup.check_listeners([("HTTP", settings.host, settings.http_port, "--http-port"),
                             ("gRPC", settings.host, settings.grpc_port, "--grpc-port"),
                             ("BIP", settings.bip_host, settings.bip_port, "--bip-port"),
                             ("the operations gRPC", settings.admin_host, settings.admin_port,
                              "ESIMOTA_ADMIN_PORT"),
                             ("the operations HTTPS", settings.admin_host, settings.admin_http_port,
                              "ESIMOTA_ADMIN_HTTP_PORT")])
    wait_s = startup.db_wait_seconds()
    started = False
    if not settings.database_url:
        cluster = embedded.Cluster(config.home())
        started = not cluster.running()
        settings.database_url = cluster.start()
    try:
        prepared = asyncio.run(startup.prepare_database(settings.database_url, wait_s))
        config.master_key()  # generated on first start, mode 0600
        if settings.tls:
            from . import tls

            tls.ensure_certificate(config.home())
    except BaseException:
        if started:
            embedded.Cluster(config.home()).stop()
        raise
    logger.info("database ready", extra={"database": eslog.redact_text(settings.database_url),
                                         "embedded": not os.environ.get("DATABASE_URL"),
                                         "schema": prepared.schema, "migrations_applied": prepared.applied})
    logger.info("starting", extra={"workers": settings.workers, "tls": settings.tls, "home": str(config.home()),
                                   "http": f"{settings.host}:{settings.http_port}",
                                   "grpc": f"{settings.host}:{settings.grpc_port}",
                                   "bip": f"{settings.bip_host}:{settings.bip_port}"})
    return started


def _refuse(exc: BaseException) -> int:
    """One line on stderr, exit 2: never a traceback for a reason not to start (issue 17)."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    eslog.flush()  # the log lines before it come before it
    print(f"esimota: refusing to start: {eslog.redact_text(line)}", file=sys.stderr, flush=True)
    return startup.EXIT_REFUSED


@dataclass
class _Supervised:
    """One worker slot of the supervisor: its process, when it started, and its restart back-off."""

    worker_id: int
    proc: subprocess.Popen | None = None
    started: float = 0.0
    backoff: float = RESTART_MIN_S
    restart_at: float | None = None


def _spawn_workers(settings: config.Settings, args: argparse.Namespace) -> int:
    """N worker processes sharing the ports (SO_REUSEPORT); a worker that dies is started again (with back-off,
    a log line, and esimota_worker_restarts_total counted by the new worker); signals are passed on."""
    metrics_dir = config.home() / "metrics"
    shutil.rmtree(metrics_dir, ignore_errors=True)
    metrics_dir.mkdir(mode=0o700)
    env = dict(os.environ, DATABASE_URL=settings.database_url or "", PROMETHEUS_MULTIPROC_DIR=str(metrics_dir))
    argv = [sys.executable, "-m", "esimota.cli", "serve", "--host", settings.host,
            "--http-port", str(settings.http_port), "--grpc-port", str(settings.grpc_port),
            "--bip-port", str(settings.bip_port), "--workers", "1"] + (["--no-tls"] if not settings.tls else [])
    env["ESIMOTA_SUPERVISOR_PID"] = str(os.getpid())
    slots = [_Supervised(i) for i in range(settings.workers)]
    stopping: list[int] = []

    def start(slot: _Supervised, restarted: bool) -> None:
        extra = {"ESIMOTA_WORKER_ID": str(slot.worker_id), "ESIMOTA_WORKER_RESTARTED": "1" if restarted else ""}
        slot.proc, slot.started, slot.restart_at = subprocess.Popen(argv, env=dict(env, **extra)), time.monotonic(), None

    def forward(signum, _frame):
        stopping.append(signum)
        for slot in slots:
            if slot.proc is not None and slot.proc.poll() is None:
                slot.proc.send_signal(signum)

    for slot in slots:
        start(slot, False)
    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    return _supervise(slots, start, stopping)


def _supervise(slots: list[_Supervised], start: Any, stopping: list[int]) -> int:
    """Until a signal: restart dead workers (back-off doubling from 1 s to 30 s, reset after a minute up);
    then wait for every worker to drain and return the highest exit code."""
    while not stopping:
        now = time.monotonic()
        for slot in slots:
            if slot.restart_at is not None and now >= slot.restart_at:
                start(slot, True)
            elif slot.restart_at is None and slot.proc is not None and slot.proc.poll() is not None:
                if now - slot.started > RESTART_RESET_S:
                    slot.backoff = RESTART_MIN_S
                slot.restart_at = now + slot.backoff
                logger.error("worker died; restarting", extra={"worker": slot.worker_id, "pid": slot.proc.pid,
                                                               "exit_code": slot.proc.returncode,
                                                               "restart_in_s": slot.backoff})
                slot.backoff = min(RESTART_MAX_S, slot.backoff * 2)
        time.sleep(0.1)
    codes = [slot.proc.wait() for slot in slots if slot.proc is not None and slot.restart_at is None]
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


def _keys_given(settings: config.Settings) -> bool:
    """Under DATABASE_URL no key is generated (issue 18): without the master key, or the backup or export
    signing key while that job is on, one line on stderr and False (exit 2, no traceback)."""
    try:
        config.require_keys(settings.backup_interval_h > 0, settings.exports_on)
    except ConfigError as exc:
        eslog.flush()
        print(f"esimota: refusing to start: {exc.reason}: {exc.message}", file=sys.stderr)
        return False
    return True


def serve_main(args: argparse.Namespace) -> int:
    eslog.setup()
    settings = _settings_from(args)
    worker_id = int(os.environ.get("ESIMOTA_WORKER_ID", "-1"))
    if worker_id >= 0:  # a worker spawned by the supervisor: everything is prepared
        if not _die_with_supervisor():
            return 0
        if os.environ.get("ESIMOTA_WORKER_RESTARTED"):
            WORKER_RESTARTS.labels(str(worker_id)).inc()
        try:
            _run(_run_worker(settings, worker_id))
        except OSError as exc:
            return _refuse(exc)
        return 0
    if settings.database_url and not _keys_given(settings):
        return 2
    try:
        started_db = _prepare(settings)
    except (startup.Refused, ConfigError) as exc:
        return _refuse(exc)
    t0 = time.monotonic()
    try:
        if settings.workers <= 1:
            _run(_run_worker(settings, 0))
            code = 0
        else:
            code = _spawn_workers(settings, args)
    except OSError as exc:  # a listener taken between the check and the bind
        code = _refuse(exc)
    finally:
        if started_db:  # stop what this command started (make run: Ctrl-C stops the database too)
            embedded.Cluster(config.home()).stop()
        logger.info("stopped", extra={"uptime_s": round(time.monotonic() - t0, 1)})
    return code
