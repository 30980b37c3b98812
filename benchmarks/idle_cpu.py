"""What an idle platform costs: CPU of `esimota serve` and of PostgreSQL with no traffic at all.

    python benchmarks/idle_cpu.py [--workers 2] [--seconds 30]

A fresh database, `esimota serve --workers W --no-tls`, a few seconds to settle, then the CPU used
over --seconds by the supervisor and its workers, and by the PostgreSQL backends serving this
database (pg_stat_activity). Prints one JSON object. Background jobs
(callback dispatcher, detectors, rate-limit sync, caches) run as they would in production; this
is where a job that wakes itself in a loop shows up (migration 0010).
"""

from __future__ import annotations

import argparse
import asyncio
import json
from urllib.parse import urlsplit
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from fleet import drop_database, fresh_database, server_url  # noqa: E402

import asyncpg  # noqa: E402

from esimota.sim import launch  # noqa: E402


def _backends(db: str) -> list[int]:
    async def pids() -> list[int]:
        conn = await asyncpg.connect(db)
        try:
            return [r["pid"] for r in await conn.fetch(
                "SELECT pid FROM pg_stat_activity WHERE datname = $1 AND pid <> pg_backend_pid()",
                urlsplit(db).path[1:])]
        finally:
            await conn.close()
    return asyncio.run(pids())


def _per_pid(pids: list[int]) -> dict[int, float]:
    return {p: launch.cpu_seconds([p]) for p in pids}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=5.0, help="seconds after start before measuring")
    args = ap.parse_args()
    # under DATABASE_URL no key is generated (issue 18): the platform is given its keys
    os.environ.setdefault("ESIMOTA_MASTER_KEY", secrets.token_hex(32))
    os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", secrets.token_hex(32))
    url = server_url()
    db = asyncio.run(fresh_database(url))
    try:
        with tempfile.TemporaryDirectory() as home:
            served = launch.serve(Path(home), db, workers=args.workers, tls=False)
            try:
                time.sleep(args.settle)
                platform = [served.proc.pid, *served.pids]
                pg = _backends(db)
                cpu0, pg0, t0 = launch.cpu_seconds(platform), _per_pid(pg), time.monotonic()
                time.sleep(args.seconds)
                cpu1, t1 = launch.cpu_seconds(platform), time.monotonic()
                pg1 = _per_pid(pg)
                pg_used = sum(pg1[p] - pg0[p] for p in pg if pg1[p] >= pg0[p])
            finally:
                served.stop()
    finally:
        asyncio.run(drop_database(url, db))
    wall = t1 - t0
    print(json.dumps({"workers": args.workers, "seconds": round(wall, 1),
                      "platform_cpu_s": round(cpu1 - cpu0, 2),
                      "platform_cpu_percent": round(100 * (cpu1 - cpu0) / wall, 2),
                      "postgres_backends": len(pg), "postgres_cpu_s": round(pg_used, 2),
                      "postgres_cpu_percent": round(100 * pg_used / wall, 2),
                      "cpus": os.cpu_count()}))


if __name__ == "__main__":
    main()
