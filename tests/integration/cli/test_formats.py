"""The CLI as an operator meets it (issue 17): each file format in its command's --help with an example
under docs/examples/ that imports as it is; readable text by default, JSON only with --json, and every
output mode parses back to the same values; times in +08:00; no BrokenPipe traceback into `head`."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

from esimota.cli import output
from esimota.service import admin, imports, staff
from esimota.sim import fleetdata

from ..conftest import BATCH_KEY

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "docs" / "examples"


def esimota(db_url, home, *argv, staff_user="root") -> subprocess.CompletedProcess:
    env = dict(os.environ, ESIMOTA_HOME=str(home), DATABASE_URL=db_url, ESIMOTA_STAFF=staff_user)
    return subprocess.run([sys.executable, "-m", "esimota.cli", *argv], env=env, capture_output=True, text=True,
                          timeout=180)


def both(db_url, home, *argv) -> tuple[dict, dict]:
    """The command run with --json and without: (the JSON, the text parsed back); both exit 0."""
    js = esimota(db_url, home, *argv, "--json")
    tx = esimota(db_url, home, *argv)
    assert js.returncode == 0 and tx.returncode == 0, js.stderr + tx.stderr
    assert len(js.stdout.strip().splitlines()) == 1  # JSON: one document, one line
    return json.loads(js.stdout), output.parse_text(tx.stdout)


def cells(value):
    """A JSON value as the text shows it: records (nested ones indented) to dicts, lists holding records or
    lists to lists, everything else to its cell."""
    if isinstance(value, dict) and value:
        return {k: cells(v) for k, v in value.items()}
    if isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value):
        return [cells(v) for v in value]
    return output.cell(value)


def same(data: dict, shown: dict, volatile: tuple = ()) -> None:
    """Every field of the JSON appears in the text with the same value (tables row by row)."""
    for key, value in data.items():
        if key in volatile or (key == "ok" and value is True):
            continue
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            def keep(row, cast):
                return {k: cast(v) for k, v in row.items() if k not in volatile}
            assert [keep(r, output.cell) for r in value] == [keep(r, str) for r in shown[key]], key
        elif isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            assert {k: output.cell(v) for k, v in value.items()} == shown[key], key
        else:
            assert cells(value) == shown[key], key


def test_each_format_is_in_its_commands_help():
    cases = [(["chips", "import"], imports.CHIP_COLUMNS, "chips.csv"),
             (["numbers", "import"], imports.NUMBER_COLUMNS, "numbers.csv"),
             (["numbers", "allocate"], ["ICCID per line"], "iccids.txt"),
             (["project", "assign"], ["EID per line"], "eids.txt"),
             (["usage", "import"], ["record_id", "msisdn", "iccid", "used_mb", "recorded_at"], "usage.csv")]
    for argv, columns, example in cases:
        res = subprocess.run([sys.executable, "-m", "esimota.cli", *argv, "--help"], capture_output=True, text=True,
                             timeout=60)
        assert res.returncode == 0
        assert ",".join(columns) in res.stdout or all(c in res.stdout for c in columns), argv
        assert f"docs/examples/{example}" in res.stdout and (EXAMPLES / example).is_file(), argv
    ops = (ROOT / "docs" / "operations.md").read_text()
    for example in ("chips.csv", "numbers.csv", "iccids.txt", "eids.txt", "usage.csv"):
        assert f"docs/examples/{example}" in ops, example


async def test_the_examples_import_and_every_output_mode_parses_back(pool, db_url, tmp_path):
    await staff.add(pool, "root", "Root", "admin", None)
    await admin.create_batch(pool, "B1", BATCH_KEY)
    home = tmp_path / "home"
    data, shown = both(db_url, home, "chips", "import", str(EXAMPLES / "chips.csv"), "--batch", "B1")
    # the JSON run imported the example; the text run, the same file again, added nothing
    assert (data["rows"], data["imported"]) == (3, 3) and (shown["imported"], shown["already_present"]) == ("0", "3")
    data, shown = both(db_url, home, "numbers", "import", str(EXAMPLES / "numbers.csv"))
    assert (data["rows"], data["imported"]) == (3, 3) and (shown["imported"], shown["already_present"]) == ("0", "3")
    fleet = await fleetdata.generate(pool, 2)
    res = esimota(db_url, home, "numbers", "allocate", "--client", fleet.client_id, "--file",
                  str(EXAMPLES / "iccids.txt"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["allocated"] == 2, res.stdout + res.stderr
    res = esimota(db_url, home, "usage", "import", str(EXAMPLES / "usage.csv"), "--json")
    assert res.returncode == 0 and json.loads(res.stdout)["stored"] == 2, res.stdout + res.stderr
    # records, nested records and tables, each as text and as JSON
    data, shown = both(db_url, home, "report", "quality", "--from", "2026-01-01", "--to", "2026-12-31")
    same(data, shown)
    data, shown = both(db_url, home, "delivery", "progress", "--batch", "B1")
    same(data, shown)
    esimota(db_url, home, "project", "create", "--client", fleet.client_id, "--name", "meters", "--field", "智能表计")
    data, shown = both(db_url, home, "project", "list", "--client", fleet.client_id)
    same(data, shown)
    assert shown["projects"][0]["application_field"] == "智能表计"
    data, shown = both(db_url, home, "staff", "review")
    same(data, shown, volatile=("last_active_at",))  # each command is the account's activity
    data, shown = both(db_url, home, "monitor", "scan")
    same(data, shown)


async def test_times_are_in_plus_0800_and_errors_too_follow_the_mode(pool, db_url, tmp_path):
    await staff.add(pool, "root", "Root", "admin", None)
    home = tmp_path / "home"
    data, shown = both(db_url, home, "staff", "review")
    stamps = re.findall(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d", json.dumps(data))
    assert stamps and all(s.endswith("+08:00") for s in stamps)
    bad = esimota(db_url, home, "report", "quality", "--from", "nope", "--to", "2026-12-31")
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("esimota: ")
    bad = esimota(db_url, home, "report", "quality", "--from", "nope", "--to", "2026-12-31", "--json")
    assert bad.returncode == 2 and json.loads(bad.stdout)["ok"] is False


def test_piped_into_head_there_is_no_traceback():
    """`esimota … | head -1`: the reader is gone before the command writes; it ends quietly (exit 141,
    as tools killed by SIGPIPE do), never with a BrokenPipeError traceback."""
    for argv in (["chips", "import", "--help"], ["decode", "00A4000C023F00"], ["--version"]):
        read, write = os.pipe()
        os.close(read)  # the reader went away
        try:
            res = subprocess.run([sys.executable, "-m", "esimota.cli", *argv], stdout=write, stderr=subprocess.PIPE,
                                 text=True, timeout=60)
        finally:
            os.close(write)
        assert "Traceback" not in res.stderr and "BrokenPipe" not in res.stderr, (argv, res.stderr)
        assert res.returncode in (0, 141), (argv, res.returncode)
