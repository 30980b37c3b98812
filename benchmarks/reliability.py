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

from esimota.ota import wire
from esimota.service import writing
from esimota.sim import fleetdata, launch
from esimota.sim.device import Device, Faults
from esimota.store import clients as client_store
from esimota.store import migrate
from esimota.store.embedded import Cluster, find_bindir

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "python benchmarks/reliability.py"
RETRY = 7  # CLOSE(07) busy, retry after (DESIGN §5.1)


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
    """`esimota serve --workers N --no-tls` on fixed loopback ports, so that a restart is found again."""

    def __init__(self, home: Path, db: str, workers: int = 2, env: dict | None = None) -> None:
        self.home, self.db, self.workers, self.env = home, db, workers, env or {}
        self.ports = [launch.free_port() for _ in range(3)]
        self.served: launch.Served | None = None
        self.starts = 0

    @property
    def bip_port(self) -> int:
        return self.ports[2]

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.ports[0]}"

    def pids(self) -> list[int]:
        return [p for p in (self.served.pids if self.served else []) if _alive(p)]

    def start(self, timeout: float = 90.0) -> None:
        env = dict(os.environ, ESIMOTA_HOME=str(self.home), DATABASE_URL=self.db, **self.env)
        env.pop("ESIMOTA_WORKER_ID", None)
        argv = [sys.executable, "-m", "esimota.cli", "serve", "--http-port", str(self.ports[0]), "--grpc-port",
                str(self.ports[1]), "--bip-port", str(self.ports[2]), "--workers", str(self.workers), "--no-tls"]
        proc = subprocess.Popen(argv, env=env, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
        self.served = launch.Served(proc, self.home, *self.ports, tls=False)
        threading.Thread(target=launch._reader, args=(proc, self.served.lines), daemon=True).start()
        deadline = time.monotonic() + timeout
        while len(self.served.pids) < self.workers:
            if proc.poll() is not None or time.monotonic() > deadline:
                self.kill_all()
                raise RuntimeError(f"esimota serve did not start: {self.served.lines[-5:]}")
            time.sleep(0.05)
        self.starts += 1

    def kill_worker(self, rng: random.Random) -> int:
        """kill -9 of one worker; the supervisor keeps waiting for the other (it does not respawn)."""
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

    async def run(self):
        t0 = time.perf_counter()
        while time.monotonic() < self.deadline:
            self.out.error, self.out.close_reason = "", None
            try:
                if self.applet.committed:  # the script ran: only the REPORT is missing (§5.4 step 5)
                    await self._refresh_and_report()
                else:
                    await self._power_on()
            except (OSError, asyncio.TimeoutError, wire.CodecError) as exc:
                self.out.error = f"{type(exc).__name__}: {exc}"
            if self.out.ok or not (self.out.error or self.out.close_reason in (None, RETRY)):
                break
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


def fleet_figures(cards: list[Card], platform: Platform) -> dict:
    outs = [c.out for c in cards]
    return {"devices": len(cards), "devices_ok": sum(o.ok for o in outs), "channels": sum(o.channels for o in outs),
            "commands": sum(c.commands for c in cards), "platform_starts": platform.starts,
            "platform_errors_logged": len(platform.errors())}


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


# -- case 2: PostgreSQL stopped for a while ---------------------------------------------------------------
async def health_during(plat: Platform, seconds: float) -> tuple[int, int]:
    """Poll /healthz while the database is down: (polls, 503 answers)."""
    polls = unavailable = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            polls += 1
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(plat.base_url + "/healthz") as resp:
                    unavailable += resp.status == 503
            await asyncio.sleep(0.5)
    return polls, unavailable


async def wait_healthy(plat: Platform, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as http:
        while time.monotonic() < deadline:
            with contextlib.suppress(aiohttp.ClientError, asyncio.TimeoutError):
                async with http.get(plat.base_url + "/healthz") as resp:
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
                    run = asyncio.ensure_future(power_on(cards, spread))
                    await asyncio.sleep(spread / 3)
                    pids = plat.pids()
                    await asyncio.to_thread(pg.stop)
                    polls, unavailable = await health_during(plat, outage)
                    await asyncio.to_thread(pg.restart)
                    healthy = await wait_healthy(plat, 60)
                    await run
                    case.checks = await crash_checks(db, fleet, cards, receiver)
                    survived = sum(1 for p in pids if _alive(p))
                    case.figures = dict(fleet_figures(cards, plat), healthz_polls=polls, healthz_503=unavailable,
                                        recovered=healthy, closes_busy=_busy_closes(plat))
                finally:
                    await asyncio.to_thread(plat.stop)
        finally:
            pg.destroy()
    case.checks[:0] = [Check("/healthz answers 503 while the database is down", polls, unavailable),
                       Check("workers still running, healthy again, without a restart", len(pids),
                             survived if healthy and plat.starts == 1 else 0)]
    case.seconds = round(time.monotonic() - t0, 1)
    return case


def _busy_closes(plat: Platform) -> int:
    return sum(1 for ln in (plat.served.lines if plat.served else []) if "channel service failed" in str(ln.get("msg")))
