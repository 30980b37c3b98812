"""The gRPC server: standard health and reflection (v1 and v1alpha) services, plus the platform's servicers (STYLE 9)."""

from __future__ import annotations

from typing import Callable, Iterable

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from . import reflection
from .interceptors import Observe

#: A servicer registrar: fn(server, context) -> list of the full service names it added.
Registrar = Callable[[grpc.aio.Server, object], list[str]]


async def create_server(addr: str, *, registrars: Iterable[Registrar] = (),
                        credentials: grpc.ServerCredentials | None = None,
                        context: object = None, readiness=None) -> tuple[grpc.aio.Server, int, health.aio.HealthServicer]:
    """Bind `addr` (port 0 picks a free one) with the servicers of `registrars` (server.py gives the
    API's) and return (server, port, health servicer); not started.

    Every call goes through the Observe interceptor (request id, metrics); `readiness`
    (api.health.Readiness), when given, reports each service NOT_SERVING while the worker is not ready."""
    server = grpc.aio.server(interceptors=[Observe()], options=[
        ("grpc.so_reuseport", 1),
        ("grpc.max_receive_message_length", 4 * 1024 * 1024),
        ("grpc.keepalive_permit_without_calls", 1),
    ])
    health_servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name]
    for register in registrars:
        names += register(server, context)
    names = reflection.enable(server, names)
    if credentials is not None:
        port = server.add_secure_port(addr, credentials)
    else:
        port = server.add_insecure_port(addr)
    # with a readiness prober, NOT_SERVING until its first probe finds the database (start_worker
    # runs it before the worker reports ready); without one, SERVING as soon as the server runs
    initial = health_pb2.HealthCheckResponse.SERVING if readiness is None else health_pb2.HealthCheckResponse.NOT_SERVING
    for name in [*names, ""]:
        await health_servicer.set(name, initial)
    if readiness is not None:
        readiness.attach_grpc(health_servicer, names)
    return server, port, health_servicer
