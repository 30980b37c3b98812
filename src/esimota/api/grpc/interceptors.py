"""Every gRPC call, whatever its service: a request id (x-request-id in and out), metrics, the log context."""

from __future__ import annotations

import contextlib
import time

import grpc

from ... import metrics
from ...log import REQUEST_ID
from .. import request_id


def _code(context: grpc.aio.ServicerContext, failed: bool) -> str:
    code = context.code()
    if isinstance(code, grpc.StatusCode):
        return code.name
    return "UNKNOWN" if failed else "OK"


class Observe(grpc.aio.ServerInterceptor):
    """Wraps each handler: the call's id is sent as initial metadata before anything else, set for the
    log lines written while it runs (and the call log), and the call is counted by method and code."""

    async def intercept_service(self, continuation, details):
        handler = await continuation(details)
        if handler is None:
            return None
        incoming = dict(details.invocation_metadata or ()).get(request_id.METADATA)
        method = details.method
        if handler.unary_unary:
            return grpc.unary_unary_rpc_method_handler(
                self._unary(handler.unary_unary, method, incoming),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        if handler.stream_unary:
            return grpc.stream_unary_rpc_method_handler(
                self._unary(handler.stream_unary, method, incoming),
                request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)
        make = grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        return make(self._stream(handler.unary_stream or handler.stream_stream, method, incoming),
                    request_deserializer=handler.request_deserializer, response_serializer=handler.response_serializer)

    @staticmethod
    def _unary(behaviour, method: str, incoming: str | None):
        async def call(request, context):
            async with _observed(context, method, incoming):
                return await behaviour(request, context)
        return call

    @staticmethod
    def _stream(behaviour, method: str, incoming: str | None):
        async def call(request, context):
            async with _observed(context, method, incoming):
                result = behaviour(request, context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:  # a handler that writes with context.write()
                    await result
        return call


@contextlib.asynccontextmanager
async def _observed(context: grpc.aio.ServicerContext, method: str, incoming: str | None):
    """One call's bookkeeping, unary or streaming: its id (sent first, set for the log lines while it
    runs), then its count by method and code and its latency, however it ends."""
    rid = request_id.accept(incoming if isinstance(incoming, str) else None)
    token, t0, failed = REQUEST_ID.set(rid), time.perf_counter(), False
    try:
        await context.send_initial_metadata(((request_id.METADATA, rid),))
        yield
    except BaseException:
        failed = True
        raise
    finally:
        _observe(method, _code(context, failed), t0)
        REQUEST_ID.reset(token)


def _observe(method: str, code: str, t0: float) -> None:
    metrics.GRPC_REQUESTS.labels(method, code).inc()
    metrics.GRPC_LATENCY.labels(method).observe(time.perf_counter() - t0)
