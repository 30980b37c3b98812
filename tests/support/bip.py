"""An in-process platform worker (real sockets on 127.0.0.1, real PostgreSQL) and fleet helpers."""

from __future__ import annotations

import asyncio
import contextlib

from esimota import config
from esimota.server import start_worker, stop_worker
from esimota.service import writing
from esimota.sim import fleetdata
from esimota.store import clients as client_store


@contextlib.asynccontextmanager
async def worker(db_url: str, **env_free_settings):
    """One platform worker with every listener on a free loopback port, TLS off (BIP needs none)."""
    s = config.Settings()
    s.database_url, s.tls, s.host, s.bip_host = db_url, False, "127.0.0.1", "127.0.0.1"
    s.http_port = s.grpc_port = s.bip_port = s.admin_port = s.admin_http_port = 0
    for k, v in env_free_settings.items():
        setattr(s, k, v)
    p = await start_worker(s, 0)
    try:
        yield p
    finally:
        await stop_worker(p, 2.0)


async def apply_all(pool, fleet: fleetdata.Fleet, province: str = "44", eids=None) -> list:
    """Auto-allocation applies (§7.2.2.2) for every device of the fleet, as its client."""
    client = await client_store.get(pool, fleet.client_id)
    out = []
    for spec in fleet.devices if eids is None else [d for d in fleet.devices if d.eid in eids]:
        out.append(await writing.apply_write(pool, client, writing.ApplyRequest(spec.eid, writing.AUTO, province)))
    return out


async def gather_limited(coros, limit: int = 200):
    sem = asyncio.Semaphore(limit)

    async def one(c):
        async with sem:
            return await c

    return await asyncio.gather(*(one(c) for c in coros))
