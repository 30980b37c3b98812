"""`esimota … list|show`, `chips reprovision` as a subprocess (DESIGN §7, issue 15): the aligned table, JSON
lines and CSV (UTF-8 with BOM) all parse back to the same rows; typed refusals exit 2."""

import csv
import datetime as dt
import io
import json
import unicodedata

import pytest

from esimota.errors import PermissionDenied
from esimota.service import admin, imports, staff, writing
from esimota.service.writing import ApplyRequest

from ..conftest import eid, write_chips, write_numbers
from .test_admin_cli import esimota, root  # noqa: F401  (fixture: the bootstrap admin)


def _width(ch: str) -> int:
    return 2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1


def parse_table(text: str) -> list[dict]:
    """Split the table at the display columns of its rule line (wide characters take two columns)."""
    lines = text.splitlines()
    header, rule, body = lines[0], lines[1], [ln for ln in lines[2:] if ln and not ln.startswith("(")]
    spans, col = [], 0
    for run in rule.split("  "):
        spans.append((col, col + len(run)))
        col += len(run) + 2

    def cut(line: str) -> list[str]:
        cells, pos, out = [""] * len(spans), 0, []
        for ch in line:
            for i, (a, b) in enumerate(spans):
                if a <= pos < b:
                    cells[i] += ch
            pos += _width(ch)
        return ["" if c.strip() == "-" else c.strip() for c in cells]  # "-": an empty cell
    names = [n.lower() for n in cut(header)]
    return [dict(zip(names, cut(ln))) for ln in body]


def _plain(rows: list[dict]) -> list[dict]:
    """JSON values as the table and CSV print them (None as empty, booleans as yes/no, lists joined)."""
    def cell(v):
        if v is None:
            return ""
        if isinstance(v, bool):
            return "yes" if v else "no"
        if isinstance(v, list):
            return ",".join(v)
        return str(v)
    return [{k: cell(v) for k, v in r.items()} for r in rows]


@pytest.fixture
async def data(pool, tmp_path):
    await admin.create_batch(pool, "B1", "00" * 16)
    await imports.import_chips(pool, str(write_chips(tmp_path / "c.csv", range(1, 9))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(1, 6))))
    a = (await admin.create_client(pool, name="华南物联", phone="13800000001", ip="10.0.0.0/8",
                                   callback_url="https://a.example/cb")).client
    await admin.allocate_chips(pool, a.client_id, batch="B1")  # §6.2.1.1: a client applies for its chips only
    for i in range(1, 5):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, "44"))
    with pytest.raises(PermissionDenied) as err:
        await writing.apply_write(pool, a, ApplyRequest(eid(8), 1, "11"))  # NO_RESOURCE: an exception
    assert err.value.reason == "NO_RESOURCE"
    return a


async def test_lists_print_a_table_json_lines_and_csv_that_parse_back(db_url, data):
    for argv in (["tasks", "list", "--client", "华南物联"], ["chips", "list", "--state", "2"],
                 ["numbers", "list", "--status", "reserved"], ["clients", "list"],
                 ["exceptions", "list", "--open"], ["alerts", "list"], ["callbacks", "list"]):
        rows = [json.loads(ln) for ln in esimota(db_url, *argv, "--json").stdout.splitlines()]
        raw = esimota(db_url, *argv, "--csv").stdout
        assert raw.startswith("\ufeff"), argv  # Excel opens UTF-8 (the Chinese names) with the BOM
        from_csv = list(csv.DictReader(io.StringIO(raw[1:])))
        table = parse_table(esimota(db_url, *argv).stdout)
        assert from_csv == _plain(rows) == table, argv
    tasks = [json.loads(ln) for ln in esimota(db_url, "tasks", "list", "--json").stdout.splitlines()]
    assert [t["eid"] for t in tasks] == [eid(i) for i in (4, 3, 2, 1)]
    assert all(t["created_at"].endswith("+08:00") for t in tasks)  # times as the API gives them
    assert {t["status_desc"] for t in tasks} == {"待开机上电"}
    two = esimota(db_url, "tasks", "list", "--limit", "2").stdout
    assert len(parse_table(two)) == 2 and two.rstrip().endswith("(2 of 4)")
    clients = list(csv.DictReader(io.StringIO(esimota(db_url, "clients", "list", "--csv").stdout[1:])))
    assert [c["name"] for c in clients] == ["华南物联"] and "secret" not in " ".join(clients[0])


async def test_tasks_show_and_exceptions_show(db_url, data, pool):
    task_id = await pool.fetchval("SELECT task_id FROM tasks ORDER BY id LIMIT 1")
    shown = json.loads(esimota(db_url, "tasks", "show", task_id, "--json").stdout)
    assert (shown["task_id"], shown["eid"], shown["status_desc"]) == (task_id, eid(1), "待开机上电")
    assert [e["operation"] for e in shown["events"]] == ["apply"] and shown["sessions"] == []
    text = esimota(db_url, "tasks", "show", eid(1)).stdout
    assert task_id in text and "events:" in text and "apply" in text
    missing = esimota(db_url, "tasks", "show", "Tnope", check=False)
    assert missing.returncode == 2 and "TASK_NOT_FOUND" in missing.stderr
    [exc] = [json.loads(ln) for ln in esimota(db_url, "exceptions", "list", "--json").stdout.splitlines()]
    one = json.loads(esimota(db_url, "exceptions", "show", str(exc["id"]), "--json").stdout)
    assert one["kind"] == "NO_RESOURCE:11" and one["category"] == "apply"


async def test_reprovision_by_cli_is_audited_and_refused_to_a_support_role(db_url, data, pool):
    today = dt.date.today().isoformat()
    out = json.loads(esimota(db_url, "chips", "reprovision", eid(6), "--temp-iccid", "89860099999999999990",
                             "--temp-msisdn", "1440999999999", "--open-time", today, "--json").stdout)
    assert out["ok"] and out["temp_msisdn"] == "1440999999999" and out["temp_expires_on"]
    assert await pool.fetchval("SELECT actor FROM audit_log WHERE action = 'chip.reprovision'") == "staff:root"
    taken = esimota(db_url, "chips", "reprovision", eid(7), "--temp-iccid", "89860099999999999990",
                    "--temp-msisdn", "1440999999998", "--open-time", today, "--json", check=False)
    assert taken.returncode == 2 and json.loads(taken.stdout)["error"] == "TEMP_NUMBER_IN_USE"
    await staff.add(pool, "helpdesk", "Help", "support", "root")
    refused = esimota(db_url, "chips", "reprovision", eid(7), "--temp-iccid", "89860099999999999980",
                      "--temp-msisdn", "1440999999997", "--open-time", today, "--as", "helpdesk", check=False)
    assert refused.returncode == 2
    assert await pool.fetchval("SELECT temp_msisdn FROM chips WHERE eid = $1", eid(7)) != "1440999999997"


async def test_chips_import_conflict_exits_2_and_imports_nothing(db_url, data, tmp_path, pool):
    path = write_chips(tmp_path / "c2.csv", [1, 30])
    path.write_text(path.read_text().replace(",5\n", ",9\n", 1))  # chip 1's test flow differs
    out = esimota(db_url, "chips", "import", str(path), "--batch", "B1", "--json", check=False)
    assert out.returncode == 2
    problem = json.loads(out.stdout)["problems"][0]
    assert (problem["line"], problem["reason"]) == (2, "EID_EXISTS") and "test_flow_mb" in problem["detail"]
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE eid = $1", eid(30)) == 0
