"""Benchmark: find anything (issue 15) — walk 20,000 of one client's tasks, 100 a page, on 1,000,000 tasks.

Run: .venv/bin/python benchmarks/bench_lists.py [--tasks 1000000] [--walk 20000] [--page 100]
Creates a scratch database on the embedded cluster (or DATABASE_URL's server), migrates it, generates the
data IN that database with generate_series (a benchmark's own data, not the API's path: 1M applies
would measure the apply, not the list), then walks the target client's tasks with a state filter
through service/lists.list_tasks — the use case AdminService ListTasks and `esimota tasks list` call —
page by page, and prints per-page latencies as JSON (target: p99 ≤ 20 ms). The indexes it relies on
are those of migration 0015 (tasks_client_state_page for this walk).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from esimota.service import lists
from esimota.store import lists as store
from esimota.store import migrate
from esimota.store.embedded import Cluster

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 100

# One batch, CLIENTS clients (client 1 is the one walked), `chips` chips and as many numbers, `tasks`
# tasks, about 5 per chip. Client 1 holds 2 × walk tasks, half of them in state 4 (the filter).
GENERATE = """
INSERT INTO chip_batches (name, master_key_enc) VALUES ('bench', '\\x00');
INSERT INTO clients (client_id, name, phone, secret_hash, ip_whitelist, permissions, callback_url,
                     callback_secret_enc)
SELECT 'cbench' || g, 'client ' || g, '13800000000', 'x', ARRAY['10.0.0.0/8']::cidr[], ARRAY['write'],
       'https://example.invalid/cb', '\\x00'
FROM generate_series(1, {clients}) g;
INSERT INTO chips (eid, batch_id, chip_model, temp_iccid, temp_msisdn, network_type, open_time,
                   temp_expires_on, test_flow_bytes, remaining_flow_bytes, state, owner_client_id)
SELECT '89' || lpad(g::text, 30, '0'), 1, 'SIM-A', '8986' || lpad(g::text, 15, '0') || '0',
       '1064' || lpad(g::text, 9, '0'),
       '4G', date '2026-01-01', date '2026-09-28', 10485760, 10485760, 4, 1 + g % {clients}
FROM generate_series(1, {chips}) g;
INSERT INTO numbers (msisdn, iccid, imsi_enc, keys_enc, province_code, services, monthly_quota_mb, status)
SELECT '1440' || lpad(g::text, 9, '0'), '8986' || lpad(g::text, 15, '0') || '1', '\\x00', '\\x00',
       (ARRAY['11','31','44','51'])[1 + g % 4], ARRAY['data'], 100, 'available'
FROM generate_series(1, {chips}) g;
INSERT INTO tasks (task_id, chip_id, client_id, write_type, province_code, number_id, state, created_at)
SELECT 'T' || lpad(g::text, 24, '0'), 1 + g % {chips},
       CASE WHEN g % ({tasks} / ({target} * 1)) = 0 THEN 1 ELSE 2 + g % ({clients} - 1) END,
       1, (ARRAY['11','31','44','51'])[1 + g % 4], 1 + g % {chips},
       CASE WHEN g % 2 = 0 THEN 4 ELSE (ARRAY[1, 5, 6])[1 + g % 3] END,
       timestamptz '2026-01-01' + g * interval '30 seconds'
FROM generate_series(1, {tasks}) g;
"""


async def _database(server: str) -> tuple[str, str]:
    name = f"esimota_bench_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(server)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return name, urlunsplit(urlsplit(server)._replace(path="/" + name))


async def _generate(url: str, tasks: int, walk: int) -> float:
    t0 = time.perf_counter()
    conn = await asyncpg.connect(url)
    try:
        target = 2 * walk  # client 1's tasks; every other one is in state 4
        await conn.execute(GENERATE.format(clients=CLIENTS, chips=max(1, tasks // 5), tasks=tasks, target=target))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()
    return time.perf_counter() - t0


async def _walk(pool, walk: int, page: int) -> tuple[list[float], int, int]:
    """Pages of client 1's tasks in state 4 until `walk` rows, each a call of the use case as one API
    request makes it (the client named, the token decoded, the page read); (per-page ms, rows, total)."""
    times, rows, token, total = [], 0, "", 0
    while rows < walk:
        t0 = time.perf_counter()
        got = await lists.list_tasks(pool, client="cbench1", state_=4, page_token=token, page_size_=page)
        times.append((time.perf_counter() - t0) * 1000)
        rows, token, total = rows + len(got.rows), got.next_page_token, got.total
        if not token:
            break
    return times, rows, total


async def _walk_sql(pool, walk: int, page: int) -> list[float]:
    """The same pages through store/lists.page alone (the SQL and the typed rows): the service's share."""
    times, rows, before = [], 0, None
    async with pool.acquire() as conn:
        while rows < walk:
            t0 = time.perf_counter()
            got = await store.page(conn, store.TASKS, {"state": 4, "client": 1}, before=before, limit=page,
                                   count=False)
            times.append((time.perf_counter() - t0) * 1000)
            rows, before = rows + len(got.rows), got.rows[-1].id
            if not got.more:
                break
    return times


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))], 2)


async def run(tasks: int, walk: int, page: int, keep: bool = False, reuse: str | None = None) -> dict:
    server = os.environ.get("DATABASE_URL") or Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data"))).start()
    if reuse:  # a database an earlier --keep run generated: walk it again
        name, url, keep = reuse, urlunsplit(urlsplit(server)._replace(path="/" + reuse)), True
    else:
        name, url = await _database(server)
    try:
        await migrate.migrate_url(url)
        seconds = 0.0 if reuse else await _generate(url, tasks, walk)
        pool = await asyncpg.create_pool(url, min_size=2, max_size=2)
        try:
            await _walk(pool, walk, page)  # warm the caches and the prepared statements once
            times, rows, total = await _walk(pool, walk, page)
            sql_times = await _walk_sql(pool, walk, page)
            plan = await pool.fetchval(
                "EXPLAIN (FORMAT TEXT) SELECT t.id FROM tasks t WHERE t.state = 4 AND t.client_id = 1 "
                "AND t.id < 1000000000 ORDER BY t.id DESC LIMIT 101")
        finally:
            await pool.close()
    finally:
        admin = await asyncpg.connect(server)
        try:
            if not keep:
                await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()
    return {"tasks": tasks, "walked_rows": rows, "total": total, "page_size": page, "pages": len(times),
            "generate_s": round(seconds, 1), "page_ms": {"p50": _pct(times, 50), "p99": _pct(times, 99),
                                                         "max": round(max(times), 2),
                                                         "mean": round(statistics.mean(times), 2),
                                                         "first": round(times[0], 2)},
            "sql_page_ms": {"p50": _pct(sql_times, 50), "p99": _pct(sql_times, 99)},
            "plan_head": plan, "database": name if keep else None}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=1_000_000)
    ap.add_argument("--walk", type=int, default=20_000)
    ap.add_argument("--page", type=int, default=100)
    ap.add_argument("--keep", action="store_true", help="keep the scratch database (to look at plans)")
    ap.add_argument("--reuse", metavar="DATABASE", help="walk a database a --keep run generated (no generation)")
    args = ap.parse_args()
    out = asyncio.run(run(args.tasks, args.walk, args.page, args.keep, args.reuse))
    out["load_average"] = os.getloadavg()  # the machine may be shared: say how busy it was
    print(json.dumps(out, ensure_ascii=False, indent=2))


if __name__ == "__main__":
    main()
