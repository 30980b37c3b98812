"""The HTTP bridge's application (/healthz and the routes built from the proto, §7), and the operations side's (/metrics)."""

from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web

from ... import metrics

Registrar = Callable[[web.Application], None]
#: Application keys: the worker's asyncpg pool and its Platform (esimota.server.Platform).
POOL = web.AppKey("pool", object)
PLATFORM = web.AppKey("platform", object)


@web.middleware
async def _measure(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    start = time.perf_counter()
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    code = 500
    try:
        resp = await handler(request)
        code = resp.status
        return resp
    except web.HTTPException as exc:
        code = exc.status
        raise
    finally:
        counter = _COUNTERS.get((route, code))
        if counter is None:  # labels() costs more than the increment: one child per route and code
            counter = _COUNTERS[(route, code)] = metrics.HTTP_REQUESTS.labels(route, str(code))
        latency = _LATENCIES.get(route)
        if latency is None:
            latency = _LATENCIES[route] = metrics.HTTP_LATENCY.labels(route)
        counter.inc()
        latency.observe(time.perf_counter() - start)


# Answers aiohttp makes itself (no route, a method the route does not take, a body too large) in the
# bridge's JSON envelope too (DESIGN §6): every answer of the bridge is one.
_REASONS = {404: ("no such route", "ROUTE_NOT_FOUND"), 405: ("method not allowed on this route", "METHOD_NOT_ALLOWED"),
            413: ("the body is too large", "BODY_TOO_LARGE")}
HSTS = "max-age=31536000"
SERVER = "esimota"  # no version banner


def envelope(status: int, message: str, reason: str, headers: dict | None = None) -> web.Response:
    """The §6 error envelope as a response of its own."""
    return web.json_response({"code": status, "message": message, "error": reason}, status=status, headers=headers)


@web.middleware
async def _json_errors(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        message, reason = _REASONS.get(exc.status, (exc.reason, "HTTP_%d" % exc.status))
        headers = {k: v for k, v in exc.headers.items() if k.lower() in ("allow", "retry-after")}
        return envelope(exc.status, message, reason, headers)


async def _harden(request: web.BaseRequest, response: web.StreamResponse) -> None:
    """No version banner; over TLS, HSTS (R25: browsers and clients keep to https)."""
    response.headers["Server"] = SERVER
    if request.secure:
        response.headers["Strict-Transport-Security"] = HSTS


_COUNTERS: dict[tuple[str, int], object] = {}
_LATENCIES: dict[str, object] = {}


async def healthz(request: web.Request) -> web.Response:
    """200 when the database answers, 503 otherwise (the platform keeps running and recovers)."""
    pool = request.app.get(POOL)
    db = "absent"
    if pool is not None:
        try:
            await asyncio.wait_for(pool.fetchval("SELECT 1"), timeout=2)
            db = "up"
        except Exception:  # any failure of the database means "not ready", never a 500
            db = "down"
    ok = db != "down"
    status = 200 if ok else 503
    return web.json_response({"code": status, "message": "ok" if ok else "database unavailable",
                              "database": db}, status=status)


async def metrics_handler(request: web.Request) -> web.Response:
    body, ctype = metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


def create_ops_app(pool=None) -> web.Application:
    """The HTTPS side of the operations listener (DESIGN §6): /metrics and /healthz, never on a partner port."""
    app = web.Application(middlewares=[_json_errors], client_max_size=64 * 1024)
    app[POOL] = pool
    app.on_response_prepare.append(_harden)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/metrics", metrics_handler)
    return app


def create_app(pool=None, *, registrars: Iterable[Registrar] = (), client_max_size: int = 64 * 1024) -> web.Application:
    """The bridge: bounded bodies (64 KiB), health, plus the route sets of `registrars`
    (the API's, generated from the google.api.http annotations, given by server.py)."""
    app = web.Application(middlewares=[_measure, _json_errors], client_max_size=client_max_size)
    app.on_response_prepare.append(_harden)
    app[POOL] = pool
    app.router.add_get("/healthz", healthz)
    for register in registrars:
        register(app)
    return app
