"""Fleet capacity test (DESIGN §8): the platform against a simulated fleet on this machine.

    python benchmarks/fleet.py --devices 20000 --workers 2 --procs 4
    python benchmarks/fleet.py --idle 100000 --workers 6 --procs 6
    python benchmarks/fleet.py --devices 5000 --nodes 2 --workers 1   two nodes over one database (issue 18)

Write mode: a fresh database, N generated chips and numbers, an auto-allocation apply for each,
`esimota serve --workers W`, then the fleet powers on; prints as its last line one JSON object with
devices, succeeded, failed, seconds, writes_per_s, channels_peak, p50_ms, p99_ms, peak_rss_mb.
Idle mode: N channels opened and held silent; prints channels held and the workers' RSS.
Loopback addresses only; every loop is bounded in count and time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import secrets
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from esimota.service import writing
from esimota.sim import fleetdata, launch
from esimota.sim.fleet import FleetOptions, run_fleet, summarise
from esimota.store import clients as client_store
from esimota.store import migrate
from esimota.store.embedded import Cluster

ROOT = Path(__file__).resolve().parent.parent
# The benchmark's partner receives callbacks over plain http on loopback (R25 wants https in production)
LOOPBACK_RECEIVER = {"ESIMOTA_ALLOW_HTTP_CALLBACKS": "1", "ESIMOTA_CALLBACK_ALLOW": "127.0.0.0/8"}


def server_url() -> str:
    return os.environ.get("DATABASE_URL") or Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data")).resolve()).start()


async def fresh_database(url: str) -> str:
    name = f"esimota_fleet_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db = urlunsplit(urlsplit(url)._replace(path="/" + name))
    await migrate.migrate_url(db)
    return db


async def drop_database(url: str, db: str) -> None:
    admin = await asyncpg.connect(url)
    await admin.execute(f'DROP DATABASE IF EXISTS "{urlsplit(db).path[1:]}" WITH (FORCE)')
    await admin.close()


class Receiver:
    """The partner's callback endpoint (§7.3): answers {"code": 200} and counts what it got."""

    def __init__(self) -> None:
        import threading

        self.count = 0
        self.port = launch.free_port()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.ready.wait(10)

    def _run(self) -> None:
        from aiohttp import web

        async def hit(request):
            await request.read()
            self.count += 1
            return web.json_response({"code": 200, "message": "ok"})

        async def main():
            app = web.Application()
            app.router.add_post("/cb", hit)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            await web.TCPSite(runner, "127.0.0.1", self.port).start()
            self.ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"


async def prepare(db: str, n: int, buffer_size: int, callback_url: str) -> fleetdata.Fleet:
    """Chips, numbers and one apply per chip, as a partner would ask (§7.2.2.2 auto-allocation)."""
    pool = await asyncpg.create_pool(db, min_size=4, max_size=16)
    try:
        fleet = await fleetdata.generate(pool, n, buffer_size=buffer_size, callback_url=callback_url)
        client = await client_store.get(pool, fleet.client_id)
        sem = asyncio.Semaphore(16)

        async def apply(eid: str):
            async with sem:
                return await writing.apply_write(pool, client, writing.ApplyRequest(eid, writing.AUTO, "44"))

        await asyncio.gather(*(apply(d.eid) for d in fleet.devices))
        return fleet
    finally:
        await pool.close()


def metric(served: launch.Served, name: str) -> float:
    text = urllib.request.urlopen(f"{served.admin_url}/metrics", timeout=10).read().decode()
    m = re.search(rf"^{name}(?:{{[^}}]*}})? ([0-9.e+]+)$", text, re.M)
    return float(m.group(1)) if m else 0.0


def profile(pids: list[int], out_dir: str | None) -> list:
    """With --profile DIR: py-spy records each platform worker during the run (raw stacks)."""
    import subprocess

    if not out_dir:
        return []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    return [subprocess.Popen(["py-spy", "record", "--pid", str(pid), "-d", "15", "-r", "200", "-f", "raw",
                              "-o", f"{out_dir}/worker-{pid}.txt"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL) for pid in pids]


def start_nodes(home: Path, db: str, args) -> list[launch.Served]:
    """`esimota serve` once, or --nodes times over the same database (each its own ports, home and node id,
    sharing the keys through the environment: issue 18)."""
    env = {"ESIMOTA_DB_POOL": str(args.pool), **LOOPBACK_RECEIVER}
    if args.nodes <= 1:
        return [launch.serve(home, db, workers=args.workers, tls=False, extra_env=env)]
    return [launch.serve(home / f"node-{k}", db, workers=args.workers, tls=False,
                         extra_env=dict(env, ESIMOTA_NODE_ID=f"node-{k}")) for k in range(args.nodes)]


def run_writes(args) -> dict:
    url = server_url()
    db = asyncio.run(fresh_database(url))
    try:
        t = time.perf_counter()
        receiver = Receiver()
        fleet = asyncio.run(prepare(db, args.devices, args.buffer, receiver.url))
        prep = time.perf_counter() - t
        with tempfile.TemporaryDirectory() as home:
            nodes = start_nodes(Path(home), db, args)
            pids = [pid for served in nodes for pid in served.pids]
            try:
                opt = FleetOptions(port=nodes[0].bip_port, procs=args.procs,
                                   concurrency=args.concurrency or args.devices,
                                   ramp_per_s=args.ramp, sources=args.sources,
                                   ports=tuple(s.bip_port for s in nodes) if len(nodes) > 1 else ())
                spies = profile(pids, args.profile)
                pg = launch.postgres_pids()
                cpu0, pg0 = launch.cpu_seconds(pids), launch.cpu_seconds(pg)
                self0 = resource.getrusage(resource.RUSAGE_CHILDREN)
                outcomes, seconds, fleet_rss = run_fleet(fleet.devices, opt)
                self1 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu = {"platform_cpu_s": round(launch.cpu_seconds(pids) - cpu0, 1),
                       "postgres_cpu_s": round(launch.cpu_seconds(pg) - pg0, 1),
                       "fleet_cpu_s": round(self1.ru_utime + self1.ru_stime - self0.ru_utime - self0.ru_stime, 1)}
                for spy in spies:
                    spy.wait(60)
                result = summarise(outcomes, seconds)
                result["channels_peak"] = sum(int(metric(served, "esimota_bip_channels_peak")) for served in nodes)
                result.update(cpu)
                result["peak_rss_mb"] = launch.peak_rss_mb(pids)
                errors = [ln for served in nodes for ln in served.lines if ln.get("level") in ("error", "critical")]
                for ln in errors[:3]:
                    print(json.dumps(ln)[:3000], file=sys.stderr)
            finally:
                for served in nodes:
                    served.stop()
        result.update(nodes=len(nodes), workers=args.workers, fleet_procs=args.procs,
                      fleet_peak_rss_mb=sum(fleet_rss), callbacks_received=receiver.count,
                      prepare_seconds=round(prep, 1))
        return result
    finally:
        asyncio.run(drop_database(url, db))


async def _hold(port: int, n: int, sources: int, index: int, procs: int, hold: float, out) -> None:
    conns = []
    for i in range(n):
        src = f"127.0.0.{2 + (i * procs + index) % sources}"
        try:
            conns.append(await asyncio.open_connection("127.0.0.1", port, local_addr=(src, 0)))
        except OSError as exc:
            out.put(("error", str(exc)))
            break
        if i % 500 == 499:
            await asyncio.sleep(0.01)  # pace the storm: the listen backlog is finite
    out.put(("open", len(conns)))
    await asyncio.sleep(hold)
    for _, w in conns:
        w.close()


def _idle_proc(port, n, sources, index, procs, hold, out):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(_hold(port, n, sources, index, procs, hold, out))


def run_idle(args) -> dict:
    import multiprocessing as mp

    url = server_url()
    db = asyncio.run(fresh_database(url))
    try:
        with tempfile.TemporaryDirectory() as home:
            served = launch.serve(Path(home), db, workers=args.workers, tls=False,
                                  extra_env={"ESIMOTA_DB_POOL": "2", "ESIMOTA_BIP_FIRST_TIMEOUT": "900",
                                             **LOOPBACK_RECEIVER})
            try:
                base = launch.rss_mb(served.pids)
                ctx = mp.get_context("fork")
                q = ctx.Queue()
                shares = [args.idle // args.procs + (1 if i < args.idle % args.procs else 0) for i in range(args.procs)]
                hold = args.hold
                ps = [ctx.Process(target=_idle_proc, args=(served.bip_port, shares[i], args.sources, i, args.procs, hold, q))
                      for i in range(args.procs)]
                for p in ps:
                    p.start()
                opened, errors = 0, []
                for _ in ps:
                    kind, value = q.get(timeout=600)
                    if kind == "open":
                        opened += value
                    else:
                        errors.append(value)
                        opened += q.get(timeout=600)[1]
                time.sleep(3)
                held = int(metric(served, "esimota_bip_channels_open"))
                rss = launch.rss_mb(served.pids)
                for p in ps:
                    p.join(hold + 60)
            finally:
                served.stop()
        return {"idle_channels_opened": opened, "channels_held": held, "workers": args.workers,
                "rss_mb_before": base, "rss_mb_held": rss,
                "kb_per_channel": round((rss - base) * 1024 / max(held, 1), 2), "errors": errors[:3]}
    finally:
        asyncio.run(drop_database(url, db))


def main() -> int:
    # the generator and the platform must share one at-rest master key
    os.environ.setdefault("ESIMOTA_MASTER_KEY", secrets.token_hex(32))
    # under DATABASE_URL no key is generated (issue 18): scheduled exports need their signing key too
    os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", secrets.token_hex(32))
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--devices", type=int, default=2000)
    ap.add_argument("--workers", type=int, default=2, help="platform worker processes (per node)")
    ap.add_argument("--nodes", type=int, default=1,
                    help="`serve` nodes over the one database, the devices spread over them")
    ap.add_argument("--procs", type=int, default=4, help="fleet processes")
    ap.add_argument("--concurrency", type=int, default=0, help="devices in flight at once (0: all of them)")
    ap.add_argument("--ramp", type=float, default=0.0, help="power-ons per second (0: all at once)")
    ap.add_argument("--sources", type=int, default=8, help="loopback source addresses")
    ap.add_argument("--buffer", type=int, default=1024, help="the cards' BIP buffer size")
    ap.add_argument("--pool", type=int, default=8, help="database connections per worker")
    ap.add_argument("--idle", type=int, default=0, help="idle mode: hold this many silent channels")
    ap.add_argument("--hold", type=float, default=20.0, help="idle mode: seconds to hold them")
    ap.add_argument("--profile", default=None, help="write py-spy stacks of each worker into this folder")
    args = ap.parse_args()
    result = run_idle(args) if args.idle else run_writes(args)
    print(json.dumps(result))
    return 0 if (args.idle or result["failed"] == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
