"""The HTTP bridge's application (/healthz, /readyz and the routes built from the proto, §7), and the
operations side's (/metrics, /healthz, /readyz)."""

from __future__ import annotations

import time
from typing import Awaitable, Callable, Iterable

from aiohttp import web

from ... import metrics
from ...log import REQUEST_ID
from .. import request_id
from ..health import Readiness

Registrar = Callable[[web.Application], None]
#: Application keys: the worker's asyncpg pool and its readiness prober (both built by server.py).
POOL = web.AppKey("pool", object)
READINESS = web.AppKey("readiness", Readiness)


@web.middleware
async def _measure(request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]):
    """Every request: an id (X-Request-Id in and out, on its log lines and in the call log), and metrics."""
    start = time.perf_counter()
    rid = request_id.accept(request.headers.get(request_id.HEADER))
    REQUEST_ID.set(rid)  # each request runs in a task of its own: the id stays with this one
    route = request.match_info.route.resource.canonical if request.match_info.route.resource else "unmatched"
    method, code = request.method, 500
    try:
        resp = await handler(request)
        code = resp.status
        resp.headers[request_id.HEADER] = rid
        return resp
    except web.HTTPException as exc:
        code = exc.status
        exc.headers[request_id.HEADER] = rid
        raise
    finally:
        counter = _COUNTERS.get((method, route, code))
        if counter is None:  # labels() costs more than the increment: one child per route and code
            counter = _COUNTERS[(method, route, code)] = metrics.HTTP_REQUESTS.labels(method, route, str(code))
        latency = _LATENCIES.get((method, route))
        if latency is None:
            latency = _LATENCIES[(method, route)] = metrics.HTTP_LATENCY.labels(method, route)
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


_COUNTERS: dict[tuple[str, str, int], object] = {}
_LATENCIES: dict[tuple[str, str], object] = {}


async def healthz(request: web.Request) -> web.Response:
    """Liveness: 200 while the process answers, whatever the database (a restart would not bring it back)."""
    return web.json_response({"code": 200, "message": "ok"})


async def readyz(request: web.Request) -> web.Response:
    """Readiness: 200 when the database answers (probed now) and the worker is not draining, else 503."""
    readiness = request.app[READINESS]
    database = await readiness.probe()
    if readiness.pool is not None and database != readiness.database:
        readiness.database = database
        await readiness.publish()  # the gRPC health answers the same at once
    ready = database == "up" and not readiness.draining
    message = "ok" if ready else ("draining" if readiness.draining else "database unavailable")
    status = 200 if ready else 503
    return web.json_response({"code": status, "message": message, "database": database,
                              "draining": readiness.draining}, status=status)


async def metrics_handler(request: web.Request) -> web.Response:
    body, ctype = metrics.render()
    return web.Response(body=body, headers={"Content-Type": ctype})


def create_admin_app(pool: object, readiness: Readiness) -> web.Application:
    """The HTTPS side of the operations listener (DESIGN §6): /metrics, /healthz and /readyz, never on a partner port."""
    app = web.Application(middlewares=[_json_errors], client_max_size=64 * 1024)
    app[POOL], app[READINESS] = pool, readiness
    app.on_response_prepare.append(_harden)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    app.router.add_get("/metrics", metrics_handler)
    return app


def create_app(pool: object, readiness: Readiness, *, registrars: Iterable[Registrar] = (),
               client_max_size: int = 64 * 1024) -> web.Application:
    """The bridge: bounded bodies (64 KiB), health, plus the route sets of `registrars`
    (the API's, generated from the google.api.http annotations, given by server.py)."""
    app = web.Application(middlewares=[_measure, _json_errors], client_max_size=client_max_size)
    app.on_response_prepare.append(_harden)
    app[POOL], app[READINESS] = pool, readiness
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)
    for register in registrars:
        register(app)
    return app
