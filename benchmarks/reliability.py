"""Reliability campaign (issue 7): kill -9, a database outage and hostile input, with nothing lost."""

# python benchmarks/reliability.py            the reduced run (a few minutes; also tests/reliability/)
# python benchmarks/reliability.py --full     the sizes (10,000 devices, 1M frames, 10,000 requests)
# python benchmarks/reliability.py --cases kill_worker,db_outage
# Every case runs `esimota serve --workers 2 --no-tls` on loopback ports against the simulated fleet and
# prints "N tried, N held" per property; the last line is one JSON object. Every loop is bounded.

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import os
import random
import secrets
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg

from esimota.codec import bcp
from esimota.ota import wire
from esimota.service import writing
from esimota.sim import fleetdata, launch
from esimota.sim.device import Device, Faults
from esimota.store import clients as client_store
from esimota.store import migrate
from esimota.store.embedded import Cluster, find_bindir

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python benchmarks/reliability.py"
RETRY = bcp.CLOSE_BUSY  # busy, retry after (DESIGN §5.1)


@dataclass
class Check:
    """One property of a case: how many times it was put to the test, how many times it held."""

    name: str
    tried: int
    held: int

    @property
    def ok(self) -> bool:
        return self.tried == self.held

    def line(self) -> str:
        return f"{self.tried} tried, {self.held} held — {self.name}"


@dataclass
class Case:
    name: str
    checks: list = field(default_factory=list)
    figures: dict = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)


# -- databases ------------------------------------------------------------------------------------
def server_url() -> str:
    return os.environ.get("DATABASE_URL") or Cluster(Path(os.environ.get("ESIMOTA_HOME", ROOT / ".data")).resolve()).start()


@contextlib.asynccontextmanager
async def fresh_database(url: str):
    """A migrated database of the campaign's own on the server at `url`, dropped afterwards."""
    name = f"esimota_rel_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f'CREATE DATABASE "{name}"')
    await admin.close()
    db = urlunsplit(urlsplit(url)._replace(path="/" + name))
    try:
        await migrate.migrate_url(db)
        yield db
    finally:
        admin = await asyncpg.connect(url)
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.close()


class ThrowAwayCluster:
    """A PostgreSQL cluster of the campaign's own (never the shared one), stopped and restarted on its port."""

    def __init__(self, home: Path) -> None:
        self.cluster = Cluster(home)
        self.url = self.cluster.start()

    def pg_ctl(self, *argv: str) -> None:
        res = self.cluster._run([str(find_bindir() / "pg_ctl"), *argv, "-D", str(self.cluster.datadir), "-w"])
        if res.returncode != 0:
            raise RuntimeError(f"pg_ctl {argv[0]} failed: {res.stderr.strip()}")

    def stop(self) -> None:
        self.pg_ctl("stop", "-m", "immediate")  # as abrupt as a crash of the database host

    def restart(self) -> None:
        # the same port: the platform keeps its DATABASE_URL and must reconnect by itself (issue 7 case 2)
        self.pg_ctl("start", "-t", "60", "-l", str(self.cluster.logfile), "-o", f"-p {self.cluster.port()}")

    def destroy(self) -> None:
        with contextlib.suppress(Exception):
            self.pg_ctl("stop", "-m", "immediate")


# -- the partner's callback endpoint ------------------------------------------------------------------
class Receiver:
    """The partner (§7.3): answers {"code": 200}; keeps every event_id it got, per task."""

    def __init__(self) -> None:
        self.events: list = []  # (task_id, event_id, write_result)
        self.port = launch.free_port()
        ready = threading.Event()
        threading.Thread(target=asyncio.run, args=(self._main(ready),), daemon=True).start()
        if not ready.wait(10):
            raise RuntimeError("callback receiver did not start")

    async def _main(self, ready: threading.Event) -> None:
        from aiohttp import web

        async def hit(request):
            body = json.loads(await request.read())
            self.events.append((body.get("task_id"), body.get("event_id"), body.get("write_result")))
            return web.json_response({"code": 200, "message": "ok"})

        app = web.Application()
        app.router.add_post("/cb", hit)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", self.port).start()
        ready.set()
        await asyncio.Event().wait()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/cb"


# -- the platform, restartable on the same ports ---------------------------------------------------------
class Platform:
    """`esimota serve --workers N --no-tls` on fixed loopback ports, so that a restart is found again; on
    `host` (every listener, BIP too), so that two nodes can share the port numbers on 127.0.0.2 and .3."""

    def __init__(self, home: Path, db: str, workers: int = 2, env: dict | None = None, host: str = "127.0.0.1",
                 ports: list[int] | None = None) -> None:
        self.home, self.db, self.workers, self.env, self.host = home, db, workers, env or {}, host
        # http, grpc, bip, operations gRPC and HTTPS
        self.ports = ports or [launch.free_port() for _ in range(5)]
        self.served: launch.Served | None = None
        self.starts = 0

    @property
    def bip_port(self) -> int:
        return self.ports[2]

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.ports[0]}"

    def pids(self) -> list[int]:
        return [p for p in (self.served.pids if self.served else []) if _alive(p)]

    def start(self, timeout: float = 90.0) -> None:
        # the partner's receiver is plain http on loopback: a development platform's callback settings
        env = dict(os.environ, ESIMOTA_HOME=str(self.home), DATABASE_URL=self.db, ESIMOTA_ALLOW_HTTP_CALLBACKS="1",
                   ESIMOTA_CALLBACK_ALLOW="127.0.0.0/8", ESIMOTA_BIP_HOST=self.host, ESIMOTA_ADMIN_HOST=self.host,
                   ESIMOTA_ADMIN_PORT=str(self.ports[3]), ESIMOTA_ADMIN_HTTP_PORT=str(self.ports[4]), **self.env)
        env.pop("ESIMOTA_WORKER_ID", None)
        argv = [sys.executable, "-m", "esimota.cli", "serve", "--host", self.host, "--http-port", str(self.ports[0]),
                "--grpc-port", str(self.ports[1]), "--bip-port", str(self.ports[2]), "--workers", str(self.workers),
                "--no-tls"]
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.served = launch.Served(proc, self.home, *self.ports[:3], tls=False, admin_port=self.ports[3],
                                    admin_http_port=self.ports[4])
        threading.Thread(target=launch._reader, args=(proc, self.served.lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while len(self.served.pids) < self.workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill_all()
                raise RuntimeError(f"esimota serve did not start: {self.served.lines[-5:]}")
            time.sleep(0.05)
        self.starts += 1

    def kill_worker(self, rng: random.Random) -> int:
        """kill -9 of one worker (the supervisor starts it again after a back-off)."""
        pid = rng.choice(self.pids())
        os.kill(pid, signal.SIGKILL)
        _wait_gone([pid])
        return pid

    def kill_all(self) -> None:
        """kill -9 of the whole server: the supervisor and every worker at once."""
        if self.served is None:
            return
        victims = self.pids() + [self.served.proc.pid]
        for pid in victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.served.proc.wait(10)
        _wait_gone(victims)

    def stop(self) -> None:
        """A graceful stop (SIGTERM, drain); what is left after it is killed."""
        if self.served is None:
            return
        pids = self.pids()
        self.served.stop(signal.SIGTERM, timeout=30)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        _wait_gone(pids)

    def errors(self) -> list:
        return [ln for ln in (self.served.lines if self.served else []) if ln.get("level") in ("error", "critical")]


def _alive(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_gone(pids: list[int], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while any(_alive(p) for p in pids) and time.monotonic() < deadline:
        time.sleep(0.02)


# -- devices that keep trying, as a module does ------------------------------------------------------------
class Card(Device):
    """A device that retries its channel until a deadline (refused, dropped, CLOSE 07) and checks the
    platform's CNTR of every COMMAND it gets (DESIGN §5.3: strictly increasing, never reused)."""

    def __init__(self, spec, host: str, port: int, *, deadline: float, **kw) -> None:
        super().__init__(spec, host, port, max_channels=1_000_000, **kw)
        self.deadline = deadline
        self.commands = 0
        self.stale = 0  # COMMANDs whose CNTR did not exceed every one seen before

    def _answer(self, packet: bytes) -> bytes:
        before = self.last_ota_cntr
        out = super()._answer(packet)
        self.commands += 1
        if self.last_ota_cntr == before:
            self.stale += 1
        return out

    def retrying(self) -> None:
        """Before the next attempt (a card behind one address has nothing to change)."""

    async def run(self):
        t0 = time.perf_counter()
        early = 0  # REPORTs answered CLOSE 04: the platform lost the last acknowledgement in a crash
        while time.monotonic() < self.deadline:
            self.out.error, self.out.close_reason = "", None
            try:
                if self.applet.committed and not early:  # the script ran: only the REPORT is missing (§5.4 step 5)
                    await self._refresh_and_report()
                else:  # a REPORT answered CLOSE 04 resumes with a HELLO, which resends what was not acknowledged
                    await self._power_on()
            except (OSError, asyncio.TimeoutError, wire.CodecError) as exc:
                self.out.error = f"{type(exc).__name__}: {exc}"
            early = early + 1 if self.applet.committed and self.out.close_reason == bcp.CLOSE_STATE and early < 3 else 0
            if self.out.ok or not (self.out.error or early or self.out.close_reason in (None, RETRY)):
                break
            self.retrying()
            await asyncio.sleep(random.uniform(0.3, 1.5))
        self.out.seconds = time.perf_counter() - t0
        return self.out


async def power_on(cards: list[Card], spread: float, concurrency: int = 400) -> list:
    """Every card powers on at a random moment within `spread` seconds."""
    sem = asyncio.Semaphore(concurrency)

    async def one(card: Card):
        await asyncio.sleep(random.uniform(0, spread))
        async with sem:
            return await card.run()

    return await asyncio.gather(*(one(c) for c in cards))


def make_cards(fleet, port: int, budget: float) -> list[Card]:
    deadline = time.monotonic() + budget
    return [Card(spec, "127.0.0.1", port, deadline=deadline, frame_timeout=30.0) for spec in fleet.devices]


async def prepare(db: str, n: int, callback_url: str, faults=None, apply: bool = True) -> fleetdata.Fleet:
    """n chips and numbers of a new client, and (optionally) one auto-allocation apply each (§7.2.2.2)."""
    pool = await asyncpg.create_pool(db, min_size=2, max_size=8)
    try:
        fleet = await fleetdata.generate(pool, n, buffer_size=256, callback_url=callback_url, faults=faults)
        if apply:
            client = await client_store.get(pool, fleet.client_id)
            sem = asyncio.Semaphore(8)

            async def one(eid: str):
                async with sem:
                    await writing.apply_write(pool, client, writing.ApplyRequest(eid, writing.AUTO, "44"))

            await asyncio.gather(*(one(d.eid) for d in fleet.devices))
        return fleet
    finally:
        await pool.close()


# -- the properties every crash case must keep (issue 7, case 1) ------------------------------------------
WRITTEN = """
SELECT count(*) FILTER (WHERE c.state = 4 AND t.state = 4) FROM chips c
JOIN LATERAL (SELECT state FROM tasks WHERE chip_id = c.id ORDER BY id DESC LIMIT 1) t ON true
WHERE c.owner_client_id = $1"""
ONE_CHIP_PER_NUMBER = """
SELECT count(*) FILTER (WHERE (SELECT count(*) FROM numbers n WHERE n.chip_id = c.id AND n.status = 'bound') = 1
    AND NOT EXISTS (SELECT 1 FROM tasks t JOIN tasks u ON u.number_id = t.number_id AND u.id <> t.id
                    WHERE t.chip_id = c.id AND t.state = 4 AND u.state IN (2, 3, 4))),
       count(*)
FROM chips c WHERE c.owner_client_id = $1 AND c.state = 4"""
SUCCESS_CALLBACKS = """
SELECT o.event_id, t.task_id, o.status FROM callback_outbox o JOIN tasks t ON t.id = o.task_id
WHERE o.client_id = $1 AND o.payload->>'write_result' = 'success'"""
RESERVED = "SELECT c.eid, cc.cntr_reserved FROM chips c JOIN chip_counters cc ON cc.chip_id = c.id WHERE c.owner_client_id = $1"


async def wait_callbacks(pool, client_pk: int, timeout: float) -> None:
    """Until the outbox holds no pending callback of this client (the dispatcher polls every second)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not await pool.fetchval("SELECT count(*) FROM callback_outbox WHERE client_id = $1 AND status <> "
                                   "'delivered'", client_pk):
            return
        await asyncio.sleep(0.5)


async def crash_checks(db: str, fleet, cards: list[Card], receiver: Receiver, timeout: float = 120.0) -> list:
    """State 4 everywhere, one chip per number, callbacks delivered and deduplicable, counters fresh."""
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    try:
        await wait_callbacks(pool, fleet.client_pk, timeout)
        written = await pool.fetchval(WRITTEN, fleet.client_pk)
        single, bound = await pool.fetchrow(ONE_CHIP_PER_NUMBER, fleet.client_pk)
        rows = await pool.fetch(SUCCESS_CALLBACKS, fleet.client_pk)
        reserved = dict(await pool.fetch(RESERVED, fleet.client_pk))
    finally:
        await pool.close()
    got: dict = {}
    for task_id, event_id, _ in list(receiver.events):
        got.setdefault(task_id, set()).add(event_id)
    delivered = sum(1 for r in rows if got.get(r["task_id"]) == {r["event_id"]})
    fresh = sum(c.commands - c.stale for c in cards if c.last_ota_cntr <= reserved.get(c.spec.eid, -1))
    return [Check("tasks ending in state 4 (chip and task)", len(fleet.devices), written),
            Check("numbers bound to exactly one chip", bound, single),
            Check("success callbacks delivered, one event_id per task (deduplicable)", len(rows), delivered),
            Check("COMMANDs with a never-used platform CNTR within the reserved block", sum(c.commands for c in cards),
                  fresh)]


def _reasons(outs: list) -> dict:
    """Why the cards that did not finish stopped: last CLOSE reason or error, counted."""
    out: dict = {}
    for o in outs:
        key = f"close {o.close_reason}" if o.close_reason is not None else (o.error or "?")[:60]
        out[key] = out.get(key, 0) + 1
    return out


def fleet_figures(cards: list[Card], platform: Platform) -> dict:
    outs = [c.out for c in cards]
    return {"devices": len(cards), "devices_ok": sum(o.ok for o in outs), "channels": sum(o.channels for o in outs),
            "commands": sum(c.commands for c in cards), "platform_starts": platform.starts,
            "not_ok": _reasons([o for o in outs if not o.ok]),
            "platform_errors_logged": len(platform.errors()),
            "first_errors": sorted({str(ln.get("msg"))[:120] for ln in platform.errors()})[:3]}


# -- case 1: kill -9 --------------------------------------------------------------------------------
async def case_kill(url: str, n: int, rounds: int, whole: bool, spread: float, seed: int = 1) -> Case:
    """kill -9 of one worker (or of the whole server) at `rounds` random moments, each followed by a
    restart; the fleet keeps powering on meanwhile and resumes by itself (DESIGN §5.4.4)."""
    case = Case("kill -9 of the whole server" if whole else "kill -9 of one worker")
    rng = random.Random(seed)
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        receiver = Receiver()
        fleet = await prepare(db, n, receiver.url, faults=lambda i: Faults(latency=0.01))
        with tempfile.TemporaryDirectory() as home:
            plat = Platform(Path(home), db)
            await asyncio.to_thread(plat.start)
            try:
                cards = make_cards(fleet, plat.bip_port, budget=spread + 300)
                run = asyncio.ensure_future(power_on(cards, spread))
                moments = sorted(rng.uniform(0.5, spread) for _ in range(rounds))
                kills = []
                for i, at in enumerate(moments):
                    await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
                    kills.append(await asyncio.to_thread(_crash_and_restart, plat, rng, whole))
                await run
                case.checks = await crash_checks(db, fleet, cards, receiver)
                case.figures = dict(fleet_figures(cards, plat), kills=len(kills), killed_pids=kills)
            finally:
                await asyncio.to_thread(plat.stop)
    case.checks.insert(0, Check("kill -9 then restart", rounds, len(kills)))
    case.seconds = round(time.monotonic() - t0, 1)
    return case


def _crash_and_restart(plat: Platform, rng: random.Random, whole: bool):
    if whole:
        plat.kill_all()
        victim = "all"
    else:
        victim = plat.kill_worker(rng)
        time.sleep(rng.uniform(0.5, 2.0))  # the cards resume on the surviving worker meanwhile
        plat.stop()
    plat.start()
    return victim


# -- case 8: two nodes over one PostgreSQL, one killed -9 (issue 18) ------------------------------------------
NODE_HOSTS = ("127.0.0.2", "127.0.0.3")
BACKUP_EVERY_S = 20.0


class NodeCard(Card):
    """A card behind a balancer in front of two nodes: a failed attempt goes to the other node next."""

    def __init__(self, spec, hosts: tuple[str, ...], first: int, port: int, **kw) -> None:
        super().__init__(spec, hosts[first], port, **kw)
        self.hosts, self.at = hosts, first

    def retrying(self) -> None:
        self.at = (self.at + 1) % len(self.hosts)
        self.host = self.hosts[self.at]


def node_env(shared: Path, ttl: float) -> dict:
    """What every node shares: the keys, the backup and export directories; short job periods for the campaign."""
    return {"ESIMOTA_MASTER_KEY": os.environ["ESIMOTA_MASTER_KEY"],
            "ESIMOTA_BACKUP_KEY": os.environ.setdefault("ESIMOTA_BACKUP_KEY", secrets.token_hex(32)),
            "ESIMOTA_EXPORT_SIGNING_KEY": os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", secrets.token_hex(32)),
            "ESIMOTA_BACKUP_DIR": str(shared / "backups"), "ESIMOTA_EXPORT_DIR": str(shared / "exports"),
            "ESIMOTA_BACKUP_INTERVAL": str(BACKUP_EVERY_S / 3600), "ESIMOTA_LEASE_TTL": str(ttl),
            "ESIMOTA_WATCHDOG_INTERVAL": "2", "ESIMOTA_MONITOR_INTERVAL": "5", "ESIMOTA_NOTIFY_INTERVAL": "2",
            "ESIMOTA_EXPORT_INTERVAL": "5"}


LEASES = "SELECT job, node FROM job_leases WHERE expires_at > now()"


async def _leader(pool) -> str | None:
    """The node holding the callbacks lease (the busiest job), if any."""
    return dict(await pool.fetch(LEASES)).get("callbacks")


async def _takeover_s(pool, dead: str, jobs: int, limit: float = 120.0) -> float | None:
    """Seconds until every job's lease is held, by a node other than `dead`; None past `limit`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit:
        held = dict(await pool.fetch(LEASES))
        if len(held) == jobs and dead not in held.values():
            return round(time.monotonic() - t0, 1)
        await asyncio.sleep(0.5)
    return None


async def _wait_export(pool, month: str, limit: float) -> None:
    """The export job's first pass comes 5 s (ESIMOTA_EXPORT_INTERVAL) after its lease was last taken."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < limit and not await pool.fetchval(
            "SELECT count(*) FROM regulator_exports WHERE period = $1", month):
        await asyncio.sleep(0.5)


BACKUPS_IN_PERIODS = """
WITH m AS (SELECT b.id, (SELECT r.period FROM job_runs r WHERE r.job = 'backups' AND r.node = b.node
                         AND r.started_at <= b.created_at ORDER BY r.started_at DESC LIMIT 1) AS period
           FROM backups b)
SELECT count(*),
       count(*) FILTER (WHERE period IS NOT NULL AND (SELECT count(*) FROM m m2 WHERE m2.period = m.period) = 1)
FROM m"""


async def schedule_checks(db: str, shared: Path, month: str) -> tuple[list, dict]:
    """Backups: each in a period of its own, one file per record; the month's R34 export made once."""
    pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
    try:
        made, alone = await pool.fetchrow(BACKUPS_IN_PERIODS)
        exports = await pool.fetchval("SELECT count(*) FROM regulator_exports WHERE kind = 'subscribers' "
                                      "AND period = $1", month)
        runs = {r["job"]: (r["n"], r["nodes"]) for r in await pool.fetch(
            "SELECT job, count(*) AS n, count(DISTINCT node) AS nodes FROM job_runs GROUP BY job")}
        by_node = dict(await pool.fetch("SELECT node, count(*) FROM backups GROUP BY node"))
    finally:
        await pool.close()
    files = len(list((shared / "backups").glob("esimota-*.manifest.json")))
    checks = [Check("scheduled backups (shared directory), each alone in its period", made, alone),
              Check("backup files in the shared directory = backup records", made, files if files == made else 0),
              Check("the last month's regulator export (R34) made once, on schedule", 1, int(exports == 1))]
    return checks, {"job_runs": {k: {"periods": n, "nodes": m} for k, (n, m) in runs.items()},
                    "backups_by_node": by_node}


async def case_two_nodes(url: str, n: int, kills: int, spread: float, ttl: float = 10.0, seed: int = 8) -> Case:
    """Two `serve` nodes on 127.0.0.2 and 127.0.0.3 over one database, sharing the keys and the backup and
    export directories; the fleet spread over both; the node leading the jobs killed -9 `kills` times
    mid-campaign, its jobs taken over by the other, then restarted (issue 18)."""
    from esimota.jobs import exports
    from esimota.server import LEASED_JOBS

    case = Case(f"two nodes, the leader killed -9 {kills} times")
    rng = random.Random(seed)
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        receiver = Receiver()
        fleet = await prepare(db, n, receiver.url, faults=lambda i: Faults(latency=0.01))
        with tempfile.TemporaryDirectory() as tmp:
            shared, ports = Path(tmp) / "shared", [launch.free_port() for _ in range(5)]
            nodes = {f"node-{i}": Platform(Path(tmp) / f"home{i}", db, workers=1, host=h, ports=ports,
                                           env=dict(node_env(shared, ttl), ESIMOTA_NODE_ID=f"node-{i}"))
                     for i, h in enumerate(NODE_HOSTS)}
            for plat in nodes.values():
                await asyncio.to_thread(plat.start)
            pool = await asyncpg.create_pool(db, min_size=1, max_size=2)
            try:
                deadline = time.monotonic() + spread + 300
                cards = [NodeCard(spec, NODE_HOSTS, i % 2, ports[2], deadline=deadline, frame_timeout=30.0)
                         for i, spec in enumerate(fleet.devices)]
                run = asyncio.ensure_future(power_on(cards, spread))
                takeovers = []
                for at in sorted(rng.uniform(1.0, spread) for _ in range(kills)):
                    await asyncio.sleep(max(0.0, at - (time.monotonic() - t0)))
                    victim = await _leader(pool) or rng.choice(list(nodes))
                    await asyncio.to_thread(nodes[victim].kill_all)
                    takeovers.append(await _takeover_s(pool, victim, len(LEASED_JOBS)))
                    await asyncio.to_thread(nodes[victim].start)
                await run
                case.checks = await crash_checks(db, fleet, cards, receiver)
                month = exports.month_due(dt.datetime.now(dt.timezone.utc))
                await _wait_export(pool, month, 90.0)
                more, figures = await schedule_checks(db, shared, month)
                case.checks += more
                case.figures = dict(fleet_figures(cards, nodes["node-0"]), **figures, takeovers_s=takeovers,
                                    errors_logged={k: len(p.errors()) for k, p in nodes.items()},
                                    starts={k: p.starts for k, p in nodes.items()},
                                    cards_per_node_at_end={h: sum(c.host == h for c in cards) for h in NODE_HOSTS})
            finally:
                await pool.close()
                for plat in nodes.values():
                    await asyncio.to_thread(plat.stop)
    case.checks[:0] = [Check("the leader killed -9, then restarted", kills, len(takeovers)),
                       Check("jobs taken over by the other node within 60 s of the kill", len(takeovers),
                             sum(1 for s in takeovers if s is not None and s <= 60))]
    case.seconds = round(time.monotonic() - t0, 1)
    return case


# -- case 2: PostgreSQL stopped for a while ---------------------------------------------------------------
async def health_during(plat: Platform, seconds: float, token: str, eid: str) -> dict:
    """While the database is down, every 0.5 s: /readyz and a status query over HTTP, and the same
    status query over gRPC; counts of polls and of 503 / UNAVAILABLE answers."""
    import grpc

    from esimota.v1 import writing_pb2, writing_pb2_grpc

    out = {"polls": 0, "healthz_503": 0, "http_503": 0, "grpc_unavailable": 0}
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http, \
            grpc.aio.insecure_channel(f"127.0.0.1:{plat.ports[1]}") as channel:
        stub = writing_pb2_grpc.WritingServiceStub(channel)
        while time.monotonic() < deadline:
            out["polls"] += 1
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(plat.base_url + "/readyz") as resp:  # readiness (/healthz is liveness)
                    out["healthz_503"] += resp.status == 503
                async with http.get(plat.base_url + "/api/v1/write/status",
                                    params={"token": token, "eid": eid}) as resp:
                    out["http_503"] += resp.status == 503
            try:
                await stub.GetWriteStatus(writing_pb2.GetWriteStatusRequest(eid=eid), timeout=5,
                                          metadata=(("authorization", f"Bearer {token}"),))
            except grpc.aio.AioRpcError as err:
                out["grpc_unavailable"] += err.code() == grpc.StatusCode.UNAVAILABLE
            await asyncio.sleep(0.5)
    return out


async def wait_healthy(plat: Platform, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(plat.base_url + "/readyz") as resp:
                    if resp.status == 200:
                        return True
            await asyncio.sleep(0.5)
    return False


async def case_db_outage(n: int, outage: float, spread: float) -> Case:
    """PostgreSQL (a throw-away cluster) stopped for `outage` seconds mid-campaign, then started again;
    the platform is not restarted: it answers 503 meanwhile and recovers by itself."""
    case = Case(f"PostgreSQL stopped for {outage:g} s")
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory() as tmp:
        pg = ThrowAwayCluster(Path(tmp) / "pg")
        try:
            async with fresh_database(pg.url) as db:
                receiver = Receiver()
                fleet = await prepare(db, n, receiver.url, faults=lambda i: Faults(latency=0.01))
                plat = Platform(Path(tmp) / "home", db)
                await asyncio.to_thread(plat.start)
                try:
                    cards = make_cards(fleet, plat.bip_port, budget=spread + outage + 300)
                    token = await _token(plat.base_url, fleet)  # tokens need no database afterwards
                    run = asyncio.ensure_future(power_on(cards, spread))
                    await asyncio.sleep(spread / 3)
                    pids = plat.pids()
                    await asyncio.to_thread(pg.stop)
                    during = await health_during(plat, outage, token, fleet.devices[0].eid)
                    await asyncio.to_thread(pg.restart)
                    healthy = await wait_healthy(plat, 60)
                    await run
                    case.checks = await crash_checks(db, fleet, cards, receiver)
                    survived = sum(1 for p in pids if _alive(p))
                    case.figures = dict(fleet_figures(cards, plat), **during, recovered=healthy,
                                        closes_busy=_busy_closes(plat))
                finally:
                    await asyncio.to_thread(plat.stop)
        finally:
            pg.destroy()
    polls = during["polls"]
    case.checks[:0] = [Check("/readyz answers 503 while the database is down", polls, during["healthz_503"]),
                       Check("HTTP status queries answer 503 meanwhile", polls, during["http_503"]),
                       Check("gRPC status queries answer UNAVAILABLE meanwhile", polls, during["grpc_unavailable"]),
                       Check("workers still running, healthy again, without a restart", len(pids),
                             survived if healthy and plat.starts == 1 else 0)]
    case.seconds = round(time.monotonic() - t0, 1)
    return case


def _busy_closes(plat: Platform) -> int:
    return sum(1 for ln in (plat.served.lines if plat.served else []) if "channel service failed" in str(ln.get("msg")))


# -- case 3: channels dropped at random frames --------------------------------------------------------------
async def case_drops(url: str, n: int, share: float, spread: float, seed: int = 3) -> Case:
    """`share` of the devices lose their channel once, after a random platform frame (DESIGN §5.4.4)."""
    case = Case(f"{share:.0%} of channels dropped at a random frame")
    rng = random.Random(seed)
    drops = {i: rng.randint(1, 3) for i in rng.sample(range(n), int(n * share))}
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        receiver = Receiver()
        fleet = await prepare(db, n, receiver.url, faults=lambda i: Faults(drop_at_frame=drops.get(i, 0)))
        with tempfile.TemporaryDirectory() as home:
            plat = Platform(Path(home), db)
            await asyncio.to_thread(plat.start)
            try:
                cards = make_cards(fleet, plat.bip_port, budget=spread + 300)
                await power_on(cards, spread)
                dropped = [c for c in cards if c.dropped]
                case.checks = [Check("dropped channels completed by resume", len(dropped),
                                     sum(1 for c in dropped if c.out.ok))]
                case.checks += await crash_checks(db, fleet, cards, receiver)
                case.figures = dict(fleet_figures(cards, plat), drops_planned=len(drops), drops_seen=len(dropped))
            finally:
                await asyncio.to_thread(plat.stop)
    case.seconds = round(time.monotonic() - t0, 1)
    return case


# -- case 4: duplicate applies and cancels racing power-ons ----------------------------------------------------
CHIP_STORY = """
SELECT c.eid, c.state,
       (SELECT count(*) FROM numbers n WHERE n.chip_id = c.id AND n.status = 'bound') AS bound,
       (SELECT count(*) FROM tasks t WHERE t.chip_id = c.id AND t.state IN (2, 3)) AS open_tasks,
       (SELECT state FROM tasks t WHERE t.chip_id = c.id ORDER BY id DESC LIMIT 1) AS task_state,
       (SELECT array_agg(operation || ':' || from_state || '>' || to_state ORDER BY id)
        FROM task_events e WHERE e.chip_id = c.id) AS story
FROM chips c WHERE c.owner_client_id = $1"""


def consistent(row, card_ok: bool) -> bool:
    """One consistent state (DESIGN §3): the events chain from 1 to the card's state, and the card,
    its latest task and its number binding agree with that state."""
    steps = [s.split(":")[1].split(">") for s in row["story"] or []]
    chained = bool(steps) and steps[0][0] == "1" and all(a[1] == b[0] for a, b in zip(steps, steps[1:]))
    if not chained or int(steps[-1][1]) != row["state"] or row["open_tasks"] > 1:
        return False
    state = row["state"]
    if state == 4:
        return row["bound"] == 1 and row["task_state"] == 4 and card_ok
    if state == 1:  # cancelled before the card powered on; the card was refused (CLOSE 04)
        return row["bound"] == 0 and row["open_tasks"] == 0 and not card_ok
    if state == 2:  # re-applied after the cancel: awaiting the next power-on
        return row["bound"] == 0 and row["open_tasks"] == 1 and row["task_state"] == 2 and not card_ok
    return False


async def _partner(pool, client, eid: str, spread: float, cancel: bool) -> str:
    from esimota.errors import DomainError

    await asyncio.sleep(random.uniform(0, spread))
    try:
        if cancel:
            await writing.cancel_write(pool, client, eid=eid)
        else:
            await writing.apply_write(pool, client, writing.ApplyRequest(eid, writing.AUTO, "44"))
        return "accepted"
    except DomainError as exc:
        return getattr(exc, "reason", type(exc).__name__)


async def case_race(url: str, n: int, spread: float) -> Case:
    """Every card: one duplicate apply and one cancel at random moments while it powers on (R18, R20)."""
    case = Case("duplicate applies and cancels racing power-ons")
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        fleet = await prepare(db, n, "http://127.0.0.1:9/cb", faults=lambda i: Faults(latency=0.02))
        client_pool = await asyncpg.create_pool(db, min_size=2, max_size=10)
        with tempfile.TemporaryDirectory() as home:
            plat = Platform(Path(home), db)
            await asyncio.to_thread(plat.start)
            try:
                client = await client_store.get(client_pool, fleet.client_id)
                cards = make_cards(fleet, plat.bip_port, budget=spread + 300)
                partner = [_partner(client_pool, client, d.eid, spread, cancel) for d in fleet.devices
                           for cancel in (False, True)]
                answers, _ = await asyncio.gather(asyncio.gather(*partner), power_on(cards, spread))
                rows = {r["eid"]: r for r in await client_pool.fetch(CHIP_STORY, fleet.client_pk)}
            finally:
                await asyncio.to_thread(plat.stop)
                await client_pool.close()
    held = sum(consistent(rows[c.spec.eid], c.out.ok) for c in cards)
    case.checks = [Check("cards in one consistent state, told by their task events", n, held)]
    tally: dict = {}
    for r in rows.values():
        tally[f"state {r['state']}"] = tally.get(f"state {r['state']}", 0) + 1
    answers = {"apply " + a: answers[0::2].count(a) for a in set(answers[0::2])} | \
              {"cancel " + a: answers[1::2].count(a) for a in set(answers[1::2])}
    case.figures = dict(fleet_figures(cards, plat), duplicate_applies=n, cancels=n, final=tally, answers=answers)
    case.seconds = round(time.monotonic() - t0, 1)
    return case


# -- case 5: hostile BIP input --------------------------------------------------------------------------------
def seed_frames(rng: random.Random) -> list[bytes]:
    """Well-formed frames of every type (DESIGN §5.1) under random keys: the mutator's raw material."""
    key = rng.randbytes(16)
    eid = fleetdata.make_eid(rng.randrange(10**9), prefix="8904903299")
    hello = wire.hello_frame(key, eid, "89860000000000000000", "860000000000003", 5, 512, 1)
    report = wire.report_frame(key, eid, "89860000000000000001", 6, 0, "ok")
    response = wire.response_frame(key, key, b"EWA", 1, 0, [b"\x90\x00"])
    return [hello, report, response, bytes((0, 4, bcp.CLOSE, 0, 0, 0)), bytes((0, 3, bcp.COMMAND, 1, 2))]


def mutate(rng: random.Random, frame: bytes) -> bytes:
    """One of: flipped bytes, a changed type, a lying length, cut or grown bodies, TLV junk."""
    b = bytearray(frame)
    kind = rng.randrange(7)
    if kind == 0:
        for _ in range(rng.randint(1, 8)):
            b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
    elif kind == 1:
        b[2] = rng.randrange(256)
    elif kind == 2:
        b[0:2] = rng.choice([0, 1, 0xFFFF, len(b) + rng.randint(1, 40), rng.randrange(65536)]).to_bytes(2, "big")
    elif kind == 3:
        b = b[:rng.randint(3, len(b))]
        b[0:2] = (len(b) - 2).to_bytes(2, "big")
    elif kind == 4:
        b += rng.randbytes(rng.randint(1, 600))
        b[0:2] = min(len(b) - 2, 0xFFFF).to_bytes(2, "big")
    elif kind == 5:
        i = rng.randrange(3, len(b))
        b[i:i + rng.randint(1, 4)] = rng.randbytes(rng.randint(0, 6))
        b[0:2] = (len(b) - 2).to_bytes(2, "big")
    else:
        b = bytearray(rng.randbytes(rng.randint(1, 80)))
    return bytes(b)


async def hostile_frame(port: int, frame: bytes, tally: dict, wait: float) -> None:
    """One channel, one bad frame: the answer must be a CLOSE (06, or the check it failed) or a cut."""
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        tally["connect_failed"] = tally.get("connect_failed", 0) + 1
        return
    try:
        writer.write(frame)
        head = await asyncio.wait_for(reader.readexactly(2), wait)
        body = await asyncio.wait_for(reader.readexactly(int.from_bytes(head, "big")), wait)
        key = f"close_{body[1]:02d}" if body[:1] == bytes((bcp.CLOSE,)) and len(body) > 1 else "other_frame"
    except (asyncio.IncompleteReadError, ConnectionError):
        key = "cut"
    except asyncio.TimeoutError:
        key = "no_answer"
    finally:
        writer.close()
    tally[key] = tally.get(key, 0) + 1


async def hostile_storm(port: int, frames: int, concurrency: int, wait: float, seed: int) -> dict:
    rng = random.Random(seed)
    seeds = seed_frames(rng)
    tally: dict = {}
    sem = asyncio.Semaphore(concurrency)

    async def one(frame: bytes):
        async with sem:
            await hostile_frame(port, frame, tally, wait)

    for start in range(0, frames, 10_000):  # bounded memory on our side too
        if start % 50_000 == 0:
            seeds = seed_frames(rng)
        await asyncio.gather(*(one(mutate(rng, rng.choice(seeds))) for _ in range(min(10_000, frames - start))))
    return tally


async def sample_rss(plat: Platform, stop: asyncio.Event, samples: list) -> None:
    while not stop.is_set():
        samples.append(launch.rss_mb(plat.pids()))
        await asyncio.sleep(1.0)


async def case_hostile_bip(url: str, frames: int, n: int, concurrency: int = 200, bound_mb: float = 150.0) -> Case:
    """`frames` mutated frames, one per channel, at the BIP port while `n` real writes run."""
    case = Case("hostile BIP input")
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        receiver = Receiver()
        fleet = await prepare(db, n, receiver.url, faults=lambda i: Faults(latency=0.05))
        with tempfile.TemporaryDirectory() as home:
            # a lying length leaves a channel waiting for bytes that never come: cut after 3 s of silence
            # the storm and the fleet share 127.0.0.1: the per-address refusal limit (ota.guard) would cut
            # the fleet's cards with the storm's; this case measures the multiplexer under the whole storm
            plat = Platform(Path(home), db, env={"ESIMOTA_BIP_FIRST_TIMEOUT": "3", "ESIMOTA_BIP_REFUSALS_PER_S": "0"})
            await asyncio.to_thread(plat.start)
            try:
                pids, stop, samples = plat.pids(), asyncio.Event(), []
                sampler = asyncio.ensure_future(sample_rss(plat, stop, samples))
                await asyncio.sleep(1.5)
                cards = make_cards(fleet, plat.bip_port, budget=900)
                storm = hostile_storm(plat.bip_port, frames, concurrency, wait=30.0, seed=5)
                tally, _ = await asyncio.gather(storm, power_on(cards, spread=max(5.0, frames / 4000)))
                stop.set()
                await sampler
                case.checks = await crash_checks(db, fleet, cards, receiver)
                alive = sum(1 for p in pids if _alive(p)) if plat.starts == 1 else 0
                case.figures = dict(fleet_figures(cards, plat), answers=tally, rss_mb_first=samples[0],
                                    rss_mb_peak=max(samples), rss_mb_last=samples[-1])
            finally:
                await asyncio.to_thread(plat.stop)
    answered = sum(v for k, v in tally.items() if k == "cut" or k.startswith("close_"))
    bounded = sum(1 for s in samples if s <= samples[0] + bound_mb)
    case.checks[:0] = [Check("bad frames answered by CLOSE or a cut channel", frames, answered),
                       Check("workers alive at the end (never died)", len(pids), alive),
                       Check(f"RSS samples within {bound_mb:g} MB of the first", len(samples), bounded)]
    case.seconds = round(time.monotonic() - t0, 1)
    return case


# -- case 6: hostile HTTP input -----------------------------------------------------------------------------------
def schemathesis_storm(base_url: str, token: str, examples: int) -> tuple[int, int, list]:
    """Every operation of /openapi.json with generated (valid and invalid) requests: (sent, below 500, 5xx)."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings

    schema = schemathesis.openapi.from_url(base_url + "/openapi.json")
    sent, fine, bad = [0], [0], []
    for result in schema.get_all_operations():
        op = result.ok()

        @given(case=op.as_strategy())
        @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
                  suppress_health_check=list(HealthCheck))
        def run(case):
            if isinstance(case.query, dict):  # a generated token= would win over the Bearer header
                case.query.pop("token", None)
            resp = case.call(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
            sent[0] += 1
            if resp.status_code < 500:
                fine[0] += 1
            else:
                bad.append(f"{op.method.upper()} {op.path}: {resp.status_code}")
        run()
    return sent[0], fine[0], bad[:5]


async def oversized(base_url: str, tries: int, mb: int = 16) -> int:
    """POSTs of `mb` MB: each must be refused (400 BODY_TOO_LARGE, 413) or cut, never read whole, never a 5xx."""
    held = 0
    body = b"eid=" + b"8" * (mb << 20)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as http:
        for _ in range(tries):
            try:
                async with http.post(base_url + "/api/v1/write/apply", data=body,
                                     headers={"Content-Type": "application/x-www-form-urlencoded"}) as resp:
                    held += resp.status in (400, 413)
            except (aiohttp.ClientError, ConnectionError):
                held += 1
    return held


async def slow_loris(port: int, conns: int, limit: float, kept_alive: bool = False) -> int:
    """Connections that send one header byte a second: how many the server cut within `limit` seconds.
    With kept_alive, each first sends one whole request and reads its answer, then trickles the next."""
    async def one() -> bool:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            if kept_alive:
                writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
                length = next(int(ln.split(b":")[1]) for ln in head.split(b"\r\n")
                              if ln.lower().startswith(b"content-length:"))
                await reader.readexactly(length)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
            deadline = time.monotonic() + limit
            while time.monotonic() < deadline:
                writer.write(b"X")
                await writer.drain()
                with contextlib.suppress(asyncio.TimeoutError):
                    if not await asyncio.wait_for(reader.read(1024), 1.0):
                        return True
            return False
        except ConnectionError:
            return True
        finally:
            writer.close()

    return sum(await asyncio.gather(*(one() for _ in range(conns))))


async def _token(base_url: str, fleet) -> str:
    async with aiohttp.ClientSession() as http:
        async with http.get(base_url + "/api/v1/auth/token",
                            params={"client_id": fleet.client_id, "client_secret": fleet.client_secret}) as r:
            return (await r.json())["token"]


async def case_hostile_http(url: str, examples: int, big: int = 3, loris: int = 20, limit: float = 90.0) -> Case:
    """schemathesis over every route, oversized bodies and slow-loris connections at the HTTP bridge."""
    case = Case("hostile HTTP input")
    t0 = time.monotonic()
    async with fresh_database(url) as db:
        fleet = await prepare(db, 8, "http://127.0.0.1:9/cb", apply=False)
        with tempfile.TemporaryDirectory() as home:
            plat = Platform(Path(home), db)
            await asyncio.to_thread(plat.start)
            try:
                token = await _token(plat.base_url, fleet)
                sent, fine, bad = await asyncio.to_thread(schemathesis_storm, plat.base_url, token, examples)
                cut_big = await oversized(plat.base_url, big)
                cut_slow = await slow_loris(plat.ports[0], loris, limit)
                cut_second = await slow_loris(plat.ports[0], loris, limit, kept_alive=True)
                alive = len(plat.pids())
            finally:
                await asyncio.to_thread(plat.stop)
    case.checks = [Check("generated requests answered below 500", sent, fine),
                   Check("oversized bodies refused (400/413) or cut", big, cut_big),
                   Check(f"slow-loris connections cut within {limit:g} s", loris, cut_slow),
                   Check(f"slow-loris second requests on kept-alive connections cut within {limit:g} s", loris, cut_second),
                   Check("workers alive at the end", 2, alive)]
    case.figures = {"examples_per_operation": examples, "server_errors": bad}
    case.seconds = round(time.monotonic() - t0, 1)
    return case


# -- the campaign -------------------------------------------------------------------------------------------------
REDUCED = {"devices": 300, "rounds": 3, "spread": 20.0, "frames": 10_000, "examples": 40}
FULL = {"devices": 10_000, "rounds": 5, "spread": 120.0, "frames": 1_000_000, "examples": 1_000}


def cases(url: str, size: dict) -> dict:
    """Every case of issue 7 at one size, by name (coroutine factories)."""
    n, spread = size["devices"], size["spread"]
    return {
        "kill_worker": lambda: case_kill(url, n, size["rounds"], False, spread),
        "kill_server": lambda: case_kill(url, n, size["rounds"], True, spread, seed=2),
        "db_outage": lambda: case_db_outage(n, 10.0, spread),
        "drops": lambda: case_drops(url, n, 0.2, spread),
        "race": lambda: case_race(url, n, spread),
        "hostile_bip": lambda: case_hostile_bip(url, size["frames"], min(n, 1000)),
        "hostile_http": lambda: case_hostile_http(url, size["examples"]),
        "two_nodes": lambda: case_two_nodes(url, n, size["rounds"], spread),
    }


def main() -> int:
    # the generator and the platform must share one at-rest master key
    os.environ.setdefault("ESIMOTA_MASTER_KEY", secrets.token_hex(32))
    # under DATABASE_URL no key is generated (issue 18): scheduled exports need their signing key too
    os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", secrets.token_hex(32))
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--full", action="store_true", help="the issue's sizes (hours on a 2-core machine)")
    ap.add_argument("--cases", default="", help="comma-separated names; default: all")
    args = ap.parse_args()
    size = FULL if args.full else REDUCED
    table = cases(server_url(), size)
    names = [c for c in args.cases.split(",") if c] or list(table)
    command = COMMAND + (" --full" if args.full else "") + (f" --cases {args.cases}" if args.cases else "")
    results = []
    for name in names:
        case = asyncio.run(table[name]())
        results.append(case)
        print(f"## {name}: {case.name} ({case.seconds} s)")
        for check in case.checks:
            print(("   " if check.ok else " ! ") + check.line())
        print("   " + json.dumps(case.figures, ensure_ascii=False), flush=True)
    print(json.dumps({"command": command, "size": size, "cases": {
        c.name: {"seconds": c.seconds, "checks": [[k.name, k.tried, k.held] for k in c.checks]} for c in results}}))
    return 0 if all(c.ok for c in results) else 1


if __name__ == "__main__":
    sys.exit(main())
