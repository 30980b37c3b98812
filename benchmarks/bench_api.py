"""Benchmark: §7.2.2.3 status queries (issue 5: ≥ 3,000/s, p99 < 25 ms) and §7.2.2.2 applies through the
HTTPS bridge of one worker.

Run: .venv/bin/python benchmarks/bench_api.py [--seconds 15] [--concurrency 32] [--procs 1] [--no-tls]
                                               [--driver wrk|aiohttp] [--route status|apply] [--chips N]
Creates a scratch database, a fleet of 200 chips (half with an open task), starts `esimota serve
--workers 1`, and drives GET /api/v1/write/status over keep-alive connections on loopback, each
request naming the next chip. With --route apply, each request POSTs an auto-allocation apply for the
next chip of --chips (give enough for the run: every apply takes a chip and a number). The load generator is wrk (C, one thread; `apt-get install wrk`) when
it is installed, else aiohttp clients in separate processes (--driver aiohttp), which need about as
much CPU per request as the server and so share the two cores with it. Prints requests/s,
p50/p99/max latency and non-200 answers as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import shutil
import signal
import ssl
import subprocess
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
os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", "7c" * 32)  # never generated under DATABASE_URL (issue 18)

from esimota.service import writing  # noqa: E402
from esimota.sim import fleetdata, launch  # noqa: E402
from esimota.store import clients, migrate  # noqa: E402
from esimota.store.embedded import Cluster  # noqa: E402
from tests.support.platform import serve  # noqa: E402


async def _prepare(url: str, chips: int, pre_apply: bool = True) -> tuple[str, str, list[str]]:
    """The fleet, a high rate limit for the benchmark client, and (for status) applies on every second chip."""
    pool = await asyncpg.create_pool(url, min_size=1, max_size=4)
    fleet = await fleetdata.generate(pool, chips)
    await pool.execute("UPDATE clients SET rate_limit_per_min = 100000000")
    client = await clients.get(pool, fleet.client_id)
    for dev in fleet.devices[::2] if pre_apply else ():
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


WRK_SCRIPT = """
local paths = {%s}
local bodies = {%s}
local n = 0
local bad = 0
request = function()
  n = n + 1
  local i = (n %% #paths) + 1
  if #bodies == 0 then return wrk.format("GET", paths[i]) end
  return wrk.format("POST", paths[i], {["Content-Type"] = "application/json"}, bodies[i])
end
response = function(status, headers, body)
  if status ~= 200 then bad = bad + 1 end
end
done = function(summary, latency, requests)
  io.write(string.format('WRK {"requests": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d, "errors": %%d}\\n',
    summary.requests, latency:percentile(50), latency:percentile(99), latency.max,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout
    + summary.errors.status))
end
"""


def _wrk(base: str, token: str, eids: list[str], seconds: float, conc: int, route: str = "status") -> dict:
    """wrk on one thread with `conc` keep-alive connections; its Lua script walks the chips (status: GET
    by eid; apply: POST an auto-allocation apply of each chip in turn, §7.2.2.2)."""
    if route == "apply":
        paths = ", ".join(f'"/api/v1/write/apply?token={token}"' for _ in eids)
        bodies = ", ".join("'" + json.dumps({"eid": e, "write_type": 1, "province_code": "44"}) + "'" for e in eids)
    else:
        paths, bodies = ", ".join(f'"/api/v1/write/status?token={token}&eid={e}"' for e in eids), ""
    with tempfile.NamedTemporaryFile("w", suffix=".lua") as script:
        script.write(WRK_SCRIPT % (paths, bodies))
        script.flush()
        out = subprocess.run(["wrk", "-t1", f"-c{conc}", f"-d{round(seconds)}s", "-s", script.name, base],
                             capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK "))
    return json.loads(line[4:])


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
    ap.add_argument("--driver", choices=("wrk", "aiohttp"), default="wrk" if shutil.which("wrk") else "aiohttp")
    ap.add_argument("--route", choices=("status", "apply"), default="status",
                    help="apply: each request applies for a new chip (wrk only; give --chips enough for the run)")
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
        cid, secret, eids = asyncio.run(_prepare(url, a.chips, pre_apply=a.route == "status"))
        with tempfile.TemporaryDirectory() as home:
            platform = serve(Path(home), url, workers=1, tls=not a.no_tls)
            try:
                cert = None if a.no_tls else str(platform.cert)
                token = asyncio.run(_token(platform.base_url, cert, cid, secret))
                if a.route == "status":
                    asyncio.run(_load(platform.base_url, cert, token, eids, 2, a.concurrency))  # warm-up
                if a.driver == "wrk":
                    pg = launch.postgres_pids()
                    cpu0, pg0 = launch.cpu_seconds(platform.pids), launch.cpu_seconds(pg)
                    w = _wrk(platform.base_url, token, eids, a.seconds, a.concurrency * a.procs, a.route)
                    cpu, pg_cpu = launch.cpu_seconds(platform.pids) - cpu0, launch.cpu_seconds(pg) - pg0
                    print(json.dumps({"requests": w["requests"], "seconds": a.seconds,
                                      "per_second": round(w["requests"] / a.seconds),
                                      "p50_ms": w["p50_us"] / 1000, "p99_ms": w["p99_us"] / 1000,
                                      "max_ms": w["max_us"] / 1000, "non_200": w["errors"],
                                      "tls": not a.no_tls, "concurrency": a.concurrency * a.procs,
                                      "driver": "wrk", "route": a.route,
                                      # CPU per request, steadier than requests/s on a shared machine
                                      "worker_cpu_us_per_request": round(cpu * 1e6 / max(1, w["requests"])),
                                      "postgres_cpu_us_per_request": round(pg_cpu * 1e6 / max(1, w["requests"]))}))
                    return
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
                      "concurrency": a.concurrency * a.procs, "driver": "aiohttp"}))


if __name__ == "__main__":
    main()
