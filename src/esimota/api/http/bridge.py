"""The HTTP bridge of §7 built at start-up from the google.api.http annotations (DESIGN §6): GET and POST."""

from __future__ import annotations

import json
import logging
import time
from typing import Any, Callable

from aiohttp import web

from ...errors import InvalidArgument
from .. import messages, status
from ..addresses import CallerAddress
from ..core import Api, Failed
from ..registry import METHODS, Method

logger = logging.getLogger("esimota.api.http")
_DUMPS = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def source_ip(request: web.Request, addresses: CallerAddress) -> str:
    """The caller's address: the peer, or behind a trusted proxy its header's rightmost untrusted hop."""
    header = addresses.header
    return addresses.resolve(request.remote or "", request.headers.getall(header, ()) if header else ())


def _bearer(request: web.Request) -> str | None:
    value = request.headers.get("Authorization", "")
    return value[7:].strip() if value[:7].lower() == "bearer " else None


async def _params(request: web.Request) -> dict[str, Any]:
    """Query parameters, and for POST a JSON object or form body on top (§7.1.1: UTF-8)."""
    params: dict[str, Any] = dict(request.query)
    if request.method != "POST" or not request.body_exists:
        return params
    try:
        if request.content_type == "application/x-www-form-urlencoded":
            params.update(await request.post())
            return params
        body = json.loads(await request.read() or b"{}")
    except web.HTTPRequestEntityTooLarge:  # beyond client_max_size: the caller's fault, never a 500 (§6)
        raise InvalidArgument("the body is too large", reason="BODY_TOO_LARGE") from None
    except (ValueError, UnicodeDecodeError):
        raise InvalidArgument("the body is not JSON", reason="BODY_INVALID") from None
    if not isinstance(body, dict):
        raise InvalidArgument("the body must be a JSON object", reason="BODY_INVALID")
    params.update(body)
    return params


def _respond(body: dict, code: int, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(body=_DUMPS(body).encode(), status=code, headers=headers,
                        content_type="application/json", charset="utf-8")


def _failure(exc: Failed) -> web.Response:
    o, headers = exc.outcome, exc.quota.headers() if exc.quota else {}
    if o.retry_after is not None:
        headers["Retry-After"] = str(max(1, int(o.retry_after + 0.999)))
    return _respond(status.error_envelope(o), o.http, headers)


def handler_for(method: Method, api: Api) -> Callable:
    """The aiohttp handler of one rpc: parameters → request message → Api.unary → JSON envelope."""
    async def handle(request: web.Request) -> web.Response:
        ip = source_ip(request, api.addresses)
        params: dict[str, Any] = {}
        t0 = time.perf_counter()
        try:
            params = await _params(request)
            token = params.pop("token", None) or _bearer(request)
            msg = messages.from_params(method.input, params)
        except Exception as exc:  # bad parameters are logged like every other call (R27)
            o = status.outcome(exc)
            api.log_call(method, "http", params, None, o.http, o.reason, t0, ip)
            return _failure(Failed(o, None))
        try:
            resp, quota = await api.unary(method, msg, token=token if isinstance(token, str) else None,
                                          source_ip=ip, transport="http", params=params)
        except Failed as exc:
            return _failure(exc)
        return _respond(status.ok_envelope(messages.to_dict(resp)), 200, quota.headers() if quota else None)
    handle.__name__ = method.name
    return handle


def register(app: web.Application, api: Api) -> None:
    """Add every annotated route, each answered through the worker's one Api (server.py builds, starts and
    stops it, after every listener has drained, so that the call log's last rows are written)."""
    from . import openapi

    for method in METHODS:
        for verb, path in method.routes:
            app.router.add_route(verb, path, handler_for(method, api))
    app.router.add_get("/openapi.json", openapi.handler)
