"""Staff roles on the admin commands (R28, R31): least privilege, refusals change nothing and are audited."""

import asyncio
import json

import pytest

from esimota import cli
from esimota.service import admin, backup, staff

from ..conftest import BATCH_KEY, iccid, write_chips, write_numbers


@pytest.fixture
async def people(pool, db_url, tmp_path, monkeypatch):
    """The bootstrap admin, an operator and an auditor; the commands run in-process on this database."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESIMOTA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ESIMOTA_STAFF", raising=False)
    await staff.add(pool, "root", "Root", "admin", None)
    await staff.add(pool, "olga", "Olga", "operator", "root")
    await staff.add(pool, "audrey", "Audrey", "auditor", "root")


async def esimota(capsys, *argv) -> tuple[int, dict]:
    """`esimota ARGV --json` through cli.main (in a thread: it runs its own event loop)."""
    capsys.readouterr()
    code = await asyncio.to_thread(cli.main, [*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1]) if out else {}


def _files(tmp_path) -> dict:
    (tmp_path / "k.hex").write_text(BATCH_KEY + "\n")
    (tmp_path / "m2.hex").write_text("6b" * 32 + "\n")
    return {"key": str(tmp_path / "k.hex"), "chips": str(write_chips(tmp_path / "c.csv", range(3))),
            "numbers": str(write_numbers(tmp_path / "n.csv", range(3))), "master": str(tmp_path / "m2.hex")}


def _changing(f: dict, cid: str) -> list[tuple[str, list[str]]]:
    """Every admin command that changes something, with the action it needs."""
    return [
        ("resources.import", ["batch", "create", "--name", "B9", "--master-key-file", f["key"]]),
        ("resources.import", ["chips", "import", f["chips"], "--batch", "B1"]),
        ("resources.import", ["numbers", "import", f["numbers"]]),
        ("resources.import", ["numbers", "allocate", "--client", cid, "--iccid", iccid(100)]),
        ("client.manage", ["client", "create", "--name", "X", "--phone", "13800000009", "--ip", "10.0.0.1",
                           "--callback-url", "https://x.example/cb"]),
        ("client.manage", ["client", "rotate-secret", cid]),
        ("client.manage", ["client", "rotate-secret", cid, "--callback"]),
        ("client.manage", ["client", "update", cid, "--rate-limit", "5", "--ip", "1.2.3.4"]),
        ("client.manage", ["client", "whitelist", cid, "--ip", "1.2.3.4"]),
        ("client.manage", ["client", "permissions", cid, "--permissions", "chip"]),
        ("client.manage", ["client", "disable", cid]),
        ("keys.rotate", ["keys", "rotate"]),
        ("keys.rotate", ["keys", "rotate", "--new-master-key-file", f["master"]]),
    ]


async def _state(pool) -> dict:
    """Rows and checksums of every table but the audit log: what a refused command must leave alone."""
    async with pool.acquire() as conn:
        return {t: v for t, v in (await backup.table_checksums(conn)).items() if t != "audit_log"}


async def _seed(pool, tmp_path) -> str:
    """A batch B1 and one client; numbers 100–101 to allocate."""
    await admin.create_batch(pool, "B1", BATCH_KEY)
    from esimota.service import imports
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "seed.csv", range(100, 102))))
    new = await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.0/8",
                                    callback_url="https://a.example/cb")
    return new.client.client_id


async def test_an_auditor_cannot_run_any_changing_admin_command(pool, people, tmp_path, capsys):
    """R28: every changing admin command refused to an auditor (exit 2, ROLE_FORBIDDEN), nothing changed, audited."""
    cid = await _seed(pool, tmp_path)
    commands = _changing(_files(tmp_path), cid)
    before = await _state(pool)
    for action, argv in commands:
        code, out = await esimota(capsys, *argv, "--as", "audrey")
        assert (code, out["ok"], out["error"]) == (2, False, "ROLE_FORBIDDEN"), argv
        assert action in out["message"]
    assert await _state(pool) == before
    denied = await pool.fetch("SELECT target FROM audit_log WHERE actor = 'staff:audrey' AND action = 'denied' "
                              "ORDER BY id")
    assert [r["target"] for r in denied] == [a for a, _ in commands]


async def test_an_operator_imports_resources_but_cannot_manage_clients_or_keys(pool, people, tmp_path, capsys,
                                                                                monkeypatch):
    """R28: the operator imports batches, chips and numbers and allocates them; clients and keys are the admin's."""
    cid = await _seed(pool, tmp_path)
    f = _files(tmp_path)
    monkeypatch.setenv("ESIMOTA_STAFF", "olga")  # the identity from the environment, as an operator's shell has it
    for action, argv in _changing(f, cid):
        code, out = await esimota(capsys, *argv)
        if action == "resources.import":
            assert (code, out["ok"]) == (0, True), (argv, out)
        else:
            assert (code, out["error"]) == (2, "ROLE_FORBIDDEN"), argv
    rows = await pool.fetch("SELECT actor, action FROM audit_log WHERE actor = 'staff:olga' AND action <> 'denied' "
                            "ORDER BY id")
    assert [r["action"] for r in rows] == ["batch.create", "chips.import", "numbers.import", "numbers.allocate"]
    assert await pool.fetchval("SELECT count(*) FROM clients") == 1
    assert await pool.fetchval("SELECT count(*) FROM data_keys") == 1
    assert await pool.fetchval("SELECT last_active_at IS NOT NULL FROM staff_accounts WHERE username = 'olga'")


async def test_an_admin_runs_every_admin_command_and_is_named_in_the_audit_log(pool, people, tmp_path, capsys):
    cid = await _seed(pool, tmp_path)
    seeded = await pool.fetchval("SELECT max(id) FROM audit_log")
    for _, argv in _changing(_files(tmp_path), cid):
        code, out = await esimota(capsys, *argv, "--as", "root")
        assert (code, out["ok"]) == (0, True), (argv, out)
    actions = {r["action"] for r in await pool.fetch("SELECT action FROM audit_log WHERE actor = 'staff:root'")}
    assert {"batch.create", "chips.import", "numbers.import", "numbers.allocate", "client.create",
            "client.rotate_secret", "client.rotate_callback_secret", "client.update", "client.whitelist",
            "client.permissions",
            "client.disable", "keys.rotate"} <= actions
    assert not await pool.fetchval("SELECT count(*) FROM audit_log WHERE id > $1 AND actor <> 'staff:root'", seeded)


async def test_unknown_disabled_or_anonymous_staff_are_refused(pool, people, tmp_path, capsys, monkeypatch):
    """An unknown or disabled account is STAFF_UNKNOWN; no identity at all is STAFF_REQUIRED; one line, exit 2."""
    argv = ["client", "create", "--name", "X", "--phone", "13800000009", "--ip", "10.0.0.1",
            "--callback-url", "https://x.example/cb"]
    await staff.disable(pool, "olga", "root")
    await staff.set_roles(pool, "audrey", "admin", "root")
    await staff.disable(pool, "audrey", "root")  # a disabled admin is no admin
    for who, reason in (("nobody", "STAFF_UNKNOWN"), ("audrey", "STAFF_UNKNOWN"), ("olga", "STAFF_UNKNOWN")):
        code, out = await esimota(capsys, *argv, "--as", who)
        assert (code, out["error"]) == (2, reason), who
    code, out = await esimota(capsys, *argv)
    assert (code, out["error"]) == (2, "STAFF_REQUIRED")
    capsys.readouterr()
    assert await asyncio.to_thread(cli.main, [*argv, "--as", "nobody"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("esimota: STAFF_UNKNOWN: ")
    assert await pool.fetchval("SELECT count(*) FROM clients") == 0
    denied = await pool.fetch("SELECT actor FROM audit_log WHERE action = 'denied' ORDER BY id")
    assert [r["actor"] for r in denied] == ["staff:nobody", "staff:audrey", "staff:olga", "staff:nobody"]


async def test_bootstrap_first_admin_then_commands(pool, db_url, tmp_path, capsys, monkeypatch):
    """On a platform with no staff, `staff add NAME --roles admin` needs no identity; then NAME acts."""
    monkeypatch.setenv("DATABASE_URL", db_url)
    monkeypatch.setenv("ESIMOTA_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ESIMOTA_STAFF", raising=False)
    code, out = await esimota(capsys, "staff", "add", "op", "--roles", "operator")
    assert (code, out["error"]) == (2, "BOOTSTRAP_ADMIN")
    code, out = await esimota(capsys, "staff", "add", "root", "--roles", "admin")
    assert (code, out["roles"]) == (0, ["admin"])
    code, out = await esimota(capsys, "staff", "add", "eve", "--roles", "admin")  # no longer without an identity
    assert (code, out["error"]) == (2, "STAFF_REQUIRED")
    code, out = await esimota(capsys, "client", "create", "--name", "A", "--phone", "13800000001", "--ip",
                              "10.0.0.1", "--callback-url", "https://a.example/cb", "--as", "root")
    assert code == 0 and out["client_secret"]
    assert await pool.fetchval("SELECT actor FROM audit_log WHERE action = 'client.create'") == "staff:root"
