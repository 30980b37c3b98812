"""gRPC servicers generated from the same descriptors as the bridge: every rpc goes through core.Api."""

from __future__ import annotations

from urllib.parse import unquote

import grpc

from .. import messages
from ..addresses import CallerAddress
from ..core import Api, Failed
from ..registry import METHODS, Method, partner_services, staff_services


def peer_ip(context: grpc.aio.ServicerContext, addresses: CallerAddress) -> str:
    """The caller's address: the TCP peer, or behind a trusted proxy the rightmost untrusted hop of the
    proxy header's metadata (the same rule as the bridge, DESIGN §6)."""
    peer = unquote(context.peer() or "")
    kind, _, rest = peer.partition(":")
    if kind == "ipv6":
        peer = rest.rpartition(":")[0].strip("[]")
    elif kind == "ipv4":
        peer = rest.rpartition(":")[0]
    else:
        peer = rest
    header = (addresses.header or "").lower()
    values = [v for k, v in context.invocation_metadata() or () if header and k == header and isinstance(v, str)]
    return addresses.resolve(peer, values)


def bearer(context: grpc.aio.ServicerContext) -> str | None:
    for key, value in context.invocation_metadata() or ():
        if key == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return None


async def _abort(context: grpc.aio.ServicerContext, exc: Failed) -> None:
    """The mapped gRPC code; the reason code (and Retry-After) travel as trailing metadata."""
    o = exc.outcome
    meta = [("esimota-reason", o.reason), ("esimota-http-status", str(o.http))]
    if o.retry_after is not None:
        meta.append(("retry-after", str(max(1, int(o.retry_after + 0.999)))))
    await context.abort(o.grpc, o.message, trailing_metadata=tuple(meta))


def _handler(method: Method, api: Api) -> grpc.RpcMethodHandler:
    def where(context) -> dict:
        return {"token": bearer(context), "source_ip": peer_ip(context, api.addresses)}

    async def unary(request, context):
        try:
            resp, quota = await api.unary(method, request, transport="grpc",
                                          params=messages.to_dict(request), **where(context))
        except Failed as exc:
            await _abort(context, exc)
        if quota is not None:
            context.set_trailing_metadata(tuple((k.lower(), v) for k, v in quota.headers().items()))
        return resp

    async def server_stream(request, context):
        try:
            async for item in api.stream(method, request, params=messages.to_dict(request), **where(context)):
                yield item
        except Failed as exc:
            await _abort(context, exc)

    async def client_stream(requests, context):
        results = api.stream(method, requests, params={}, **where(context))
        try:
            return await results.__anext__()
        except Failed as exc:
            await _abort(context, exc)
        finally:
            await results.aclose()

    async def bidi(requests, context):
        try:
            async for item in api.stream(method, requests, params={}, **where(context)):
                yield item
        except Failed as exc:
            await _abort(context, exc)

    kinds = {(False, False): (grpc.unary_unary_rpc_method_handler, unary),
             (False, True): (grpc.unary_stream_rpc_method_handler, server_stream),
             (True, False): (grpc.stream_unary_rpc_method_handler, client_stream),
             (True, True): (grpc.stream_stream_rpc_method_handler, bidi)}
    make, fn = kinds[(method.client_streaming, method.server_streaming)]
    return make(fn, request_deserializer=method.input.FromString, response_serializer=method.output.SerializeToString)


def _register(server: grpc.aio.Server, api: Api, names: list[str]) -> list[str]:
    """Add a generic handler per service; the worker's one Api (built by server.py) serves the calls."""
    for name in names:
        table = {m.name: _handler(m, api) for m in METHODS if m.service == name}
        server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(name, table),))
    return names


def register(server: grpc.aio.Server, api: Api) -> list[str]:
    """The partner services (auth, writing, queries): the partner gRPC port."""
    return _register(server, api, partner_services())


def register_staff(server: grpc.aio.Server, api: Api) -> list[str]:
    """AdminService and IngestService: the operations listener only (DESIGN §6)."""
    return _register(server, api, staff_services())
