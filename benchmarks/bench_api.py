"""Benchmark: §7.2.2.3 status queries through the HTTPS bridge of one worker (issue 5: ≥ 3,000/s, p99 < 25 ms).

Run: .venv/bin/python benchmarks/bench_api.py [--seconds 15] [--concurrency 32] [--procs 1] [--no-tls]
Creates a scratch database, a fleet of 200 chips (half with an open task), starts `esimota serve
--workers 1`, and drives GET /api/v1/write/status with keep-alive aiohttp clients in separate
processes on loopback. Prints requests/s, p50/p99/max latency and non-200 answers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import signal
import ssl
import sys
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)

from esimota.service import writing  # noqa: E402
from esimota.sim import fleetdata  # noqa: E402
from esimota.store import clients, migrate  # noqa: E402
from esimota.store.embedded import Cluster  # noqa: E402
from tests.support.platform import serve  # noqa: E402


async def _prepare(url: str, chips: int) -> tuple[str, str, list[str]]:
    """The fleet, a high rate limit for the benchmark client, and applies on every second chip."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    fleet = await fleetdata.generate(pool, chips)
    await pool.execute("UPDATE clients SET rate_limit_per_min = 100000000")
    client = await clients.get(pool, fleet.client_id)
    for dev in fleet.devices[::2]:
        await writing.apply_write(pool, client, writing.ApplyRequest(dev.eid, 1, "44"))
    await pool.close()
    return fleet.client_id, fleet.client_secret, [d.eid for d in fleet.devices]


async def _load(base: str, cert: str | None, token: str, eids: list[str], seconds: float, conc: int) -> dict:
    ctx = ssl.create_default_context(cafile=cert) if cert else None
    lat, bad = [], 0
    stop_at = time.perf_counter() + seconds
    conn = aiohttp.TCPConnector(limit=conc, ssl=ctx if ctx else False)

    async def worker(i: int) -> None:
        nonlocal bad
        n = i
        while time.perf_counter() < stop_at:
            t0 = time.perf_counter()
            async with http.get(f"{base}/api/v1/write/status", params={"token": token, "eid": eids[n % len(eids)]}) as r:
                await r.read()
                bad += r.status != 200
            lat.append(time.perf_counter() - t0)
            n += conc
    async with aiohttp.ClientSession(connector=conn) as http:
        await asyncio.gather(*(worker(i) for i in range(conc)))
    return {"lat": lat, "bad": bad}


def _proc(args: tuple, out: mp.Queue) -> None:
    out.put(asyncio.run(_load(*args)))


async def _token(base: str, cert: str | None, cid: str, secret: str) -> str:
    ctx = ssl.create_default_context(cafile=cert) if cert else False
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{base}/api/v1/auth/token", params={"client_id": cid, "client_secret": secret},
                            ssl=ctx) as r:
            return (await r.json())["token"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=15)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--procs", type=int, default=1)
    ap.add_argument("--chips", type=int, default=200)
    ap.add_argument("--no-tls", action="store_true")
    a = ap.parse_args()
    server_url = os.environ.get("DATABASE_URL") or Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data"))).start()
    name = f"esimota_bench_api_{uuid.uuid4().hex[:8]}"
    url = urlunsplit(urlsplit(server_url)._replace(path="/" + name))

    async def create(sql: str) -> None:
        admin = await asyncpg.connect(server_url)
        await admin.execute(sql)
        await admin.close()
    asyncio.run(create(f'CREATE DATABASE "{name}"'))
    try:
        asyncio.run(migrate.migrate_url(url))
        cid, secret, eids = asyncio.run(_prepare(url, a.chips))
        with tempfile.TemporaryDirectory() as home:
            platform = serve(Path(home), url, workers=1, tls=not a.no_tls)
            try:
                cert = None if a.no_tls else str(platform.cert)
                token = asyncio.run(_token(platform.base_url, cert, cid, secret))
                asyncio.run(_load(platform.base_url, cert, token, eids, 2, a.concurrency))  # warm-up
                out: mp.Queue = mp.Queue()
                procs = [mp.Process(target=_proc, args=((platform.base_url, cert, token, eids, a.seconds,
                                                         a.concurrency), out)) for _ in range(a.procs)]
                for p in procs:
                    p.start()
                results = [out.get() for _ in procs]
                for p in procs:
                    p.join()
            finally:
                platform.stop(signal.SIGTERM)
    finally:
        asyncio.run(create(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    lat = sorted(x for r in results for x in r["lat"])
    pct = lambda q: round(lat[min(len(lat) - 1, int(q * len(lat)))] * 1000, 2)  # noqa: E731
    print(json.dumps({"requests": len(lat), "seconds": a.seconds, "per_second": round(len(lat) / a.seconds),
                      "p50_ms": pct(0.50), "p99_ms": pct(0.99), "max_ms": round(lat[-1] * 1000, 2),
                      "non_200": sum(r["bad"] for r in results), "tls": not a.no_tls,
                      "concurrency": a.concurrency * a.procs}))


if __name__ == "__main__":
    main()
