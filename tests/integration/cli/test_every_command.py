"""Every `esimota` command, as an operator runs it (issue 17): readable text on a terminal, JSON only with --json.

The commands come from the argparse tree (`esimota.cli.build_parser`), so a command added later without
a line in SCRIPT fails the first test. Each runs as a subprocess against a running worker (for `sim`)
and a database set up by the platform's own use cases: with --json every line of its output parses as
JSON; without, the output is text that does not parse as JSON; every time it prints is in +08:00; no
run ends in a traceback; and the readers of a closed pipe (`| head -1`) end quietly.
`serve` is the one command left out: it runs until stopped, and what it prints is its log
(tests/e2e/test_startup.py, tests/e2e/test_metrics.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest

from esimota.cli import build_parser
from esimota.errors import PermissionDenied
from esimota.service import admin, staff, writing
from esimota.sim import fleetdata
from esimota.store import clients as client_store
from tests.support.databases import url_of
from tests.support.bip import apply_all, worker

from ..conftest import BATCH_KEY

ROOT = Path(__file__).resolve().parents[3]
EX = ROOT / "docs" / "examples"
STAMP = re.compile(r"\d{4}-\d\d-\d\d[T ]\d\d:\d\d:\d\d(?:\.\d+)?(?:[+-]\d\d:\d\d|Z)?")
NOT_RUN = {("serve",)}
# commands whose --json and text runs may overlap: they read, or change different rows
PARALLEL = {("decode",), ("db",), ("chips", "list"), ("numbers", "list"), ("report", "exceptions"),
            ("report", "quality"), ("report", "exports"), ("report", "open"), ("report", "verify"), ("staff", "review"),
            ("staff", "token"), ("project", "list"), ("delivery", "progress"), ("api", "admin-token"), ("tasks", "list"),
            ("tasks", "show"), ("clients", "list"), ("exceptions", "list"), ("exceptions", "show"), ("alerts", "list"),
            ("callbacks", "list"), ("batch", "create"), ("client", "create"), ("client", "rotate-secret"),
            ("client", "whitelist"), ("client", "permissions"), ("client", "disable"), ("staff", "add"),
            ("staff", "roles"), ("staff", "disable"), ("project", "create"), ("sim", "device"), ("sim", "fleet")}
# the list commands print JSON lines: none when nothing matches
LISTS = {("chips", "list"), ("numbers", "list"), ("tasks", "list"), ("clients", "list"), ("exceptions", "list"),
         ("alerts", "list"), ("callbacks", "list")}


def leaves(parser: argparse.ArgumentParser, path: tuple = ()) -> list[tuple]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [path]
    return [leaf for a in subs for name, sp in a.choices.items() for leaf in leaves(sp, path + (name,))]


def script(w: dict) -> list[tuple[tuple, list, list]]:
    """(command, its arguments for the --json run, for the text run), in an order that works on the
    platform set up in `platform`: a command that changes something gets distinct arguments twice."""
    eid0, eid1 = w["eid0"], w["eid1"]
    same = lambda *argv: (list(argv), list(argv))  # noqa: E731
    return [
        (("decode",), *same("00A4000C023F00")),
        (("db",), *same("url")),
        (("batch", "create"), ["--name", "BJ", "--master-key-file", w["key"]], ["--name", "BT", "--master-key-file", w["key"]]),
        (("chips", "import"), *same(str(EX / "chips.csv"), "--batch", "B1")),
        (("numbers", "import"), *same(str(EX / "numbers.csv"))),
        (("client", "create"), ["--name", "j1", "--phone", "13800000001", "--ip", "10.0.0.0/8", "--callback-url",
                                "https://cb.example/j"],
         ["--name", "t1", "--phone", "13800000002", "--ip", "10.0.0.0/8", "--callback-url", "https://cb.example/t"]),
        (("client", "rotate-secret"), ["j1"], ["t1"]),
        (("client", "whitelist"), ["j1", "--ip", "10.1.0.0/16"], ["t1", "--ip", "10.1.0.0/16"]),
        (("client", "permissions"), ["j1", "--permissions", "write,chip"], ["t1", "--permissions", "write,chip"]),
        (("chips", "allocate"), *same("--client", "j1", "--batch", "B1")),
        (("project", "create"), ["--client", "j1", "--name", "pj", "--field", "智能表计"],
         ["--client", "j1", "--name", "pt", "--field", "智能表计"]),
        (("project", "assign"), ["--client", "j1", "--name", "pj", "--file", str(EX / "eids.txt")],
         ["--client", "j1", "--name", "pt", "--eid", "89049032000000000000000000900129"]),
        (("project", "list"), *same("--client", "j1")),
        (("chips", "release"), ["--client", "j1", "--eid", "89049032000000000000000000900323"],
         ["--client", "j1", "--eid", "89049032000000000000000000900226"]),
        (("numbers", "allocate"), ["--client", "j1", "--file", str(EX / "iccids.txt")],
         ["--client", "j1", "--iccid", "89860100000000090031"]),
        (("chips", "list"), *same()),
        (("numbers", "list"), *same()),
        (("chips", "reprovision"), ["89049032000000000000000000900226", "--temp-iccid", "89860000000000090099",
                                    "--temp-msisdn", "1440000009099", "--open-time", "2026-11-21"],
         ["89049032000000000000000000900226", "--temp-iccid", "89860000000000090098", "--temp-msisdn",
          "1440000009098", "--open-time", "2026-11-21"]),
        (("keys", "rotate"), *same()),
        (("sim", "device"), ["--eid", eid0.eid, "--iccid", eid0.temp_iccid, "--master-key-file", w["fleet_key"]],
         ["--eid", eid1.eid, "--iccid", eid1.temp_iccid, "--master-key-file", w["fleet_key"]]),
        (("sim", "fleet"), ["--count", "1", "--seed", "5", "--procs", "1"], ["--count", "1", "--seed", "6", "--procs", "1"]),
        (("report", "exceptions"), *same("--month", w["month"])),
        (("report", "quality"), *same("--from", "2026-01-01", "--to", "2099-01-01")),
        (("report", "subscribers"), *same("--month", w["month"])),
        (("report", "service"), *same("--half", w["half"])),
        (("report", "exports"), *same()),
        (("report", "open"), *same("1")),
        (("report", "verify"), *same(w["export_dir"])),
        (("report", "reported"), *same(str(w["exceptions"][0]))),
        (("report", "close"), ["--resolution", "numbers imported", str(w["exceptions"][0])],
         ["--resolution", "numbers imported", str(w["exceptions"][1])]),
        (("staff", "add"), ["sj", "--roles", "support"], ["st", "--roles", "support"]),
        (("staff", "roles"), ["sj", "--roles", "auditor"], ["st", "--roles", "auditor"]),
        (("staff", "password"), *same("root", "--password-stdin")),
        (("staff", "disable"), ["sj"], ["st"]),
        (("staff", "revoke"), *same("root")),
        (("staff", "review"), *same()),
        (("staff", "token"), *same("root")),
        (("monitor", "scan"), *same()),
        (("monitor", "region"), *same("1064000009001", "--cities", "广州,佛山")),
        (("monitor", "high-risk"), *same("某市", "--reason", "drill")),
        (("monitor", "blacklist"), *same("imei", "860000000090026", "--reason", "stolen")),
        (("backup", "create"), *same()),
        (("backup", "prune"), *same()),
        (("backup", "restore"), ["@BACKUP", "--database-url", w["restore"][0]],
         ["@BACKUP", "--database-url", w["restore"][1]]),
        (("delivery", "progress"), *same("--batch", "B1")),
        (("delivery", "set"), *same("--batch", "B1", "--production", "produced", "--logistics", "in_stock")),
        (("usage", "import"), *same(str(EX / "usage.csv"))),
        (("api", "admin-token"), *same("root")),
        (("tasks", "list"), *same()),
        (("tasks", "show"), *same(eid0.eid)),
        (("clients", "list"), *same()),
        (("exceptions", "list"), *same()),
        (("exceptions", "show"), *same(str(w["exceptions"][0]))),
        (("alerts", "list"), *same()),
        (("callbacks", "list"), *same()),
        (("client", "disable"), ["j1"], ["t1"]),
    ]


def test_every_command_is_in_the_script():
    """A command added to the CLI needs its line in SCRIPT (and so its output checked below)."""
    device = argparse.Namespace(eid="e", temp_iccid="i")
    w = {k: "x" for k in ("key", "fleet_key", "month", "half", "export_dir")}
    w.update(eid0=device, eid1=device, exceptions=[1, 2], restore=["a", "b"])
    covered = [cmd for cmd, _, _ in script(w)]
    assert len(covered) == len(set(covered)) and PARALLEL <= set(covered) and LISTS <= set(covered)
    assert sorted(set(leaves(build_parser())) - NOT_RUN) == sorted(covered)


def _run(env: dict, argv: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "esimota.cli", *argv], env=env, capture_output=True, text=True,
                          input="correct horse battery staple 42\n", timeout=300)


def _judge(cmd: tuple, mode: str, res: subprocess.CompletedProcess) -> list[str]:
    """What is wrong with one run's output (nothing, for a good run)."""
    problems = []
    if res.returncode != 0:
        problems.append(f"exit {res.returncode}: {res.stderr.strip()[-300:]}")
    if "Traceback" in res.stderr:
        problems.append("traceback")
    out = res.stdout
    if mode == "json":
        lines = [ln for ln in out.splitlines() if ln.strip()]
        try:
            docs = [json.loads(ln) for ln in lines]
        except ValueError as exc:
            return problems + [f"--json output does not parse: {exc}: {out[:200]!r}"]
        if cmd not in LISTS and (len(docs) != 1 or not isinstance(docs[0], dict)):
            problems.append(f"--json printed {len(docs)} documents, not one object")
    else:
        if not out.strip():
            problems.append("no text")
        elif out.lstrip()[0] in "{[":
            problems.append(f"text looks like JSON: {out[:120]!r}")
    late = [s for s in STAMP.findall(out) if not s.endswith("+08:00")]
    if late:
        problems.append(f"times not in +08:00: {late[:2]}")
    return problems


@pytest.fixture
async def platform(pool, db_url, pg_server_url, tmp_path):
    """The state the script runs on, set up by the platform's own use cases; two empty databases for restores."""
    await staff.add(pool, "root", "Root", "admin", None)
    await admin.create_batch(pool, "B1", BATCH_KEY)
    fleet = await fleetdata.generate(pool, 4)
    await apply_all(pool, fleet, eids=[d.eid for d in fleet.devices[:2]])
    client = await client_store.get(pool, fleet.client_id)
    for spec, province in zip(fleet.devices[2:], ("31", "32")):  # §8.2.1 NO_RESOURCE: no number in the province
        with pytest.raises(PermissionDenied):
            await writing.apply_write(pool, client, writing.ApplyRequest(spec.eid, writing.AUTO, province))
    exceptions = [r["id"] for r in await pool.fetch("SELECT id FROM exceptions ORDER BY id")]
    assert len(exceptions) == 2
    (tmp_path / "batch.key").write_text(BATCH_KEY + "\n")
    (tmp_path / "fleet.key").write_text(fleet.master_key.hex() + "\n")
    names = [f"esimota_r_{uuid.uuid4().hex[:12]}" for _ in range(2)]
    conn = await asyncpg.connect(pg_server_url)
    try:
        for name in names:
            await conn.execute(f'CREATE DATABASE "{name}"')
        yield {"key": str(tmp_path / "batch.key"), "fleet_key": str(tmp_path / "fleet.key"),
               "eid0": fleet.devices[0], "eid1": fleet.devices[1], "exceptions": exceptions,
               "restore": [url_of(pg_server_url, n) for n in names], "home": tmp_path / "home"}
    finally:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.close()


@pytest.mark.slow
@pytest.mark.timeout(900)  # some 110 runs of the command, one process each
async def test_every_command_prints_text_and_json_only_with_the_flag(platform, db_url):
    import datetime as dt

    now = dt.datetime.now(dt.timezone(dt.timedelta(hours=8)))
    w = dict(platform, month=now.strftime("%Y-%m"), half=f"{now.year}-H{1 if now.month <= 6 else 2}")
    failures = []
    async with worker(db_url) as p:
        env = dict(os.environ, ESIMOTA_HOME=str(w["home"]), DATABASE_URL=db_url, ESIMOTA_STAFF="root",
                   ESIMOTA_BIP_PORT=str(p.ports["bip"]))
        for cmd, json_argv, text_argv in script(dict(w, export_dir="@EXPORT")):
            runs = [(mode, [*cmd, *[await _resolve(a, env, w) for a in argv], *(["--json"] if mode == "json" else [])])
                    for mode, argv in (("json", json_argv), ("text", text_argv))]
            if cmd in PARALLEL:
                results = await asyncio.gather(*(asyncio.to_thread(_run, env, argv) for _, argv in runs))
            else:
                results = [await asyncio.to_thread(_run, env, argv) for _, argv in runs]
            for (mode, _), res in zip(runs, results):
                failures += [f"esimota {' '.join(cmd)} [{mode}]: {problem}" for problem in _judge(cmd, mode, res)]
    assert failures == []


async def _resolve(arg: str, env: dict, w: dict) -> str:
    """Arguments known only once the script has run that far: the newest backup, the first export."""
    if arg == "@BACKUP":
        return str(sorted((w["home"] / "backups").glob("*.dump.enc"))[-1])
    if arg == "@EXPORT":
        res = await asyncio.to_thread(_run, env, ["report", "exports", "--json"])
        return json.loads(res.stdout)["exports"][0]["path"]
    return arg


@pytest.mark.parametrize("argv", [["tasks", "list"], ["tasks", "list", "--csv"], ["staff", "review"],
                                  ["decode", "00A4000C023F00"], ["db", "url"], ["--help"]])
async def test_piped_into_head_every_output_path_ends_quietly(pool, db_url, tmp_path, argv):
    """`esimota … | head -1`: the reader is gone before the command writes (the table, CSV, record, decode
    and help paths); it ends quietly, exit 141 as tools killed by SIGPIPE do, never with a traceback."""
    await staff.add(pool, "root", "Root", "admin", None)
    env = dict(os.environ, ESIMOTA_HOME=str(tmp_path), DATABASE_URL=db_url, ESIMOTA_STAFF="root")
    read, write = os.pipe()
    os.close(read)
    try:
        res = await asyncio.to_thread(subprocess.run, [sys.executable, "-m", "esimota.cli", *argv], stdout=write,
                                      stderr=subprocess.PIPE, text=True, env=env, timeout=120)
    finally:
        os.close(write)
    assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, res.stderr
    assert res.returncode in (0, 141)
