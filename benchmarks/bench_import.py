"""Benchmark: `numbers import` of 1,000,000 generated numbers (issue 4; target ≤ 60 s on this machine).

Run: .venv/bin/python benchmarks/bench_import.py [--rows N]
Creates a scratch database on the embedded cluster (or DATABASE_URL's server), imports a generated
CSV twice (the second run must add nothing) and prints seconds and rows/s as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import os
import tempfile
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from esimota.service import imports
from esimota.store import migrate
from esimota.store.embedded import Cluster

ROOT = Path(__file__).resolve().parent.parent


def generate(path: Path, rows: int) -> None:
    """Valid rows across all provinces: 13-digit IoT MSISDNs, 20-char ICCIDs, 15-digit IMSIs, random keys."""
    provinces = ["11", "31", "32", "33", "44", "51"]
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(imports.NUMBER_COLUMNS)
        for i in range(rows):
            w.writerow([f"1440{i:09d}", f"898602{i:013d}1", f"460{i:012d}", os.urandom(16).hex(),
                        os.urandom(16).hex(), provinces[i % len(provinces)], "data+directed_sms", "30"])


async def run(rows: int) -> dict:
    os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)
    server = os.environ.get("DATABASE_URL") or Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data"))).start()
    name = f"esimota_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    await admin.execute(f'CREATE DATABASE "{name}"')
    url = urlunsplit(urlsplit(server)._replace(path="/" + name))
    try:
        await migrate.migrate_url(url)
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "numbers.csv"
            generate(path, rows)
            conn = await asyncpg.connect(url)
            try:
                t0 = time.perf_counter()
                first = await imports.import_numbers(conn, str(path))
                t1 = time.perf_counter()
                second = await imports.import_numbers(conn, str(path))
                t2 = time.perf_counter()
            finally:
                await conn.close()
        assert first.imported == rows and second.imported == 0
        return {"rows": rows, "seconds": round(t1 - t0, 2), "rows_per_s": round(rows / (t1 - t0)),
                "reimport_seconds": round(t2 - t1, 2)}
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    print(json.dumps(asyncio.run(run(parser.parse_args().rows))))


if __name__ == "__main__":
    main()
