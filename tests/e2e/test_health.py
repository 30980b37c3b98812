"""Liveness and readiness (issue 17): gRPC health per service NOT_SERVING while the database is
unreachable and while draining, SERVING again without a restart; /healthz stays 200, /readyz follows."""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit

import aiohttp
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from tests.support.bip import worker
from tests.support.databases import via_port
from tests.support.faultproxy import FaultProxy

SERVICES = ("", "esimota.v1.WritingService", "esimota.v1.QueryService", "grpc.health.v1.Health")
OPS_SERVICES = ("", "esimota.v1.AdminService", "esimota.v1.IngestService")  # the operations listener
SERVING, NOT_SERVING = health_pb2.HealthCheckResponse.SERVING, health_pb2.HealthCheckResponse.NOT_SERVING


async def _statuses(ch, services=SERVICES) -> set:
    stub = health_pb2_grpc.HealthStub(ch)
    return {(await stub.Check(health_pb2.HealthCheckRequest(service=s), timeout=5)).status for s in services}


async def _until(ch, status, rounds: int = 150, services=SERVICES) -> set:
    seen = set()
    for _ in range(rounds):  # the prober runs every ESIMOTA_READY_INTERVAL; a stalled probe gives up in 2 s
        seen = await _statuses(ch, services)
        if seen == {status}:
            break
        await asyncio.sleep(0.1)
    return seen


async def _http(http, port: int, path: str) -> int:
    async with http.get(f"http://127.0.0.1:{port}{path}") as r:
        return r.status


async def test_grpc_health_and_readyz_follow_the_database_without_a_restart(db_url, monkeypatch):
    monkeypatch.setenv("ESIMOTA_READY_INTERVAL", "0.1")
    upstream = urlsplit(db_url)
    async with FaultProxy(upstream.hostname, upstream.port) as proxy:
        async with worker(via_port(db_url, proxy.port)) as p, aiohttp.ClientSession() as http, \
                grpc.aio.insecure_channel(f"127.0.0.1:{p.ports['grpc']}") as ch, \
                grpc.aio.insecure_channel(f"127.0.0.1:{p.ports['admin']}") as ops:
            assert await _statuses(ch) == {SERVING} and await _statuses(ops, OPS_SERVICES) == {SERVING}
            assert await _http(http, p.ports["http"], "/readyz") == 200
            proxy.pause()  # the database stops answering (connections stay open, as on a dead link)
            assert await _until(ch, NOT_SERVING) == {NOT_SERVING}
            assert await _statuses(ops, OPS_SERVICES) == {NOT_SERVING}
            assert await _http(http, p.ports["http"], "/readyz") == 503
            assert await _http(http, p.ports["http"], "/healthz") == 200  # alive: a restart would not help
            proxy.resume()
            assert await _until(ch, SERVING) == {SERVING}
            assert await _statuses(ops, OPS_SERVICES) == {SERVING}
            assert await _http(http, p.ports["http"], "/readyz") == 200
            # draining (what SIGTERM does first): NOT_SERVING and 503 while calls in flight finish
            await p.readiness.drain()
            assert await _statuses(ch) == {NOT_SERVING}
            async with http.get(f"http://127.0.0.1:{p.ports['http']}/readyz") as r:
                assert r.status == 503 and (await r.json())["message"] == "draining"
