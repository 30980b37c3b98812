"""Fixtures of the API end-to-end tests: the platform in-process over TLS on free ports, a fleet, clients."""

from __future__ import annotations

import asyncio
import os
import ssl
from dataclasses import dataclass

import aiohttp
import grpc
import pytest

from esimota import config, server
from esimota.service import staff
from esimota.sim import fleetdata

os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)


@dataclass
class Running:
    """A worker of `esimota serve` started in this process: its ports, TLS material and the fleet."""

    platform: object
    base_url: str
    grpc_target: str
    cert: bytes
    ssl: ssl.SSLContext
    fleet: fleetdata.Fleet
    admin_target: str  # the operations listener: AdminService, IngestService
    staff_token: str   # AdminService, IngestService: the staff account `root` (admin)

    def token_for(self, username: str) -> str:
        """A staff token as `esimota staff token` issues it (the account need not exist)."""
        return self.platform.api.staff.signer.issue(username)[0]

    def channel(self) -> grpc.aio.Channel:
        return grpc.aio.secure_channel(self.grpc_target, grpc.ssl_channel_credentials(self.cert))

    def admin_channel(self) -> grpc.aio.Channel:
        """The operations listener's gRPC side (staff services only, DESIGN §6)."""
        return grpc.aio.secure_channel(self.admin_target, grpc.ssl_channel_credentials(self.cert))

    async def get(self, http: aiohttp.ClientSession, path: str, **params) -> tuple[int, dict, dict]:
        async with http.get(self.base_url + path, params=params, ssl=self.ssl) as r:
            return r.status, await r.json(), dict(r.headers)

    async def post(self, http: aiohttp.ClientSession, path: str, body: dict, headers: dict | None = None):
        async with http.post(self.base_url + path, json=body, headers=headers, ssl=self.ssl) as r:
            return r.status, await r.json(), dict(r.headers)

    async def token(self, http: aiohttp.ClientSession, client_id: str | None = None, secret: str | None = None) -> str:
        code, body, _ = await self.get(http, "/api/v1/auth/token", client_id=client_id or self.fleet.client_id,
                                       client_secret=secret or self.fleet.client_secret)
        assert code == 200, body
        return body["token"]


async def start(tmp_path, monkeypatch, db_url, pool, *, chips: int = 6, env: dict | None = None,
                callback_url: str = "http://127.0.0.1:9/cb") -> Running:
    """One worker with TLS, its jobs (callback dispatcher) and a generated fleet of `chips` seed chips."""
    monkeypatch.setenv("ESIMOTA_HOME", str(tmp_path / "home"))
    for k, v in (env or {}).items():
        monkeypatch.setenv(k, v)
    fleet = await fleetdata.generate(pool, chips, callback_url=callback_url)
    if not await pool.fetchval("SELECT count(*) FROM staff_accounts"):
        await staff.add(pool, "root", "Root", "admin", None)  # the bootstrap admin (R28)
    settings = config.Settings()
    settings.http_port = settings.grpc_port = settings.bip_port = settings.admin_port = settings.admin_http_port = 0
    settings.host, settings.database_url, settings.tls = "127.0.0.1", db_url, True
    p = await server.start_worker(settings, 0)
    cert = p.tls_paths[0].read_bytes()
    ctx = ssl.create_default_context(cadata=cert.decode())
    return Running(p, f"https://127.0.0.1:{p.ports['http']}", f"127.0.0.1:{p.ports['grpc']}", cert, ctx, fleet,
                   f"127.0.0.1:{p.ports['admin']}", p.api.staff.signer.issue("root")[0])


async def stop(r: Running) -> None:
    """server.stop_worker's steps one by one, each bounded, naming the one that hangs (the bound ends a
    hang; how fast a stop is belongs to benchmarks/)."""
    p = r.platform
    p.bip.close()
    for t in p.tasks:
        t.cancel()
    steps = [("jobs", asyncio.gather(*p.tasks, return_exceptions=True)), ("grpc", p.grpc.stop(1.0)),
             ("admin grpc", p.admin_grpc.stop(1.0)), ("http", p.http_runner.cleanup()),
             ("admin http", p.admin_runner.cleanup()), ("api", p.api.stop()), ("pool", p.pool.close())]
    hung = []
    for name, step in steps:
        try:
            await asyncio.wait_for(step, 10)
        except asyncio.TimeoutError:
            hung.append(name)
            for t in p.tasks:
                if not t.done():
                    t.print_stack()
    assert not hung, hung


@pytest.fixture
async def running(tmp_path, monkeypatch, db_url, pool):
    r = await start(tmp_path, monkeypatch, db_url, pool)
    yield r
    await stop(r)


async def test_harness_serves_the_bridge_and_grpc_over_tls(running):
    """R25: both listeners answer over TLS; /openapi.json lists the ten routes of §7.2 and the three of
    DESIGN §6 for the partner's own writes (records, tasks, apply-batch)."""
    async with aiohttp.ClientSession() as http:
        code, doc, _ = await running.get(http, "/openapi.json")
    assert code == 200 and len(doc["paths"]) == 13
    async with running.channel() as ch:
        await ch.channel_ready()
