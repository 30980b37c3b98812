"""The admin commands of DESIGN §7 run as a subprocess by an admin: --json output, exit 0 / 2, every bad row listed."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from esimota.service import staff

from ..conftest import BATCH_KEY, iccid, write_chips, write_numbers

ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture(autouse=True)
async def root(pool):
    """The bootstrap admin every command below runs as (R28)."""
    await staff.add(pool, "root", "Root", "admin", None)


def esimota(db_url, *argv, check=True):
    env = dict(os.environ, ESIMOTA_HOME=str(ROOT / ".data"), DATABASE_URL=db_url, ESIMOTA_STAFF="root")
    proc = subprocess.run([sys.executable, "-m", "esimota.cli", *argv], env=env, capture_output=True,
                          text=True, timeout=120)
    if check:
        assert proc.returncode == 0, proc.stderr + proc.stdout
    return proc


async def test_batch_chips_numbers_allocate_client(db_url, tmp_path, pool):
    """DESIGN §7: batch create, chips import, numbers import (twice: adds nothing), client create, allocate."""
    (tmp_path / "k.hex").write_text(BATCH_KEY + "\n")
    assert json.loads(esimota(db_url, "batch", "create", "--name", "B1", "--master-key-file",
                              str(tmp_path / "k.hex"), "--json").stdout)["ok"]
    chips = json.loads(esimota(db_url, "chips", "import", str(write_chips(tmp_path / "c.csv", range(5))),
                               "--batch", "B1", "--json").stdout)
    assert chips == {"ok": True, "rows": 5, "imported": 5, "already_present": 0}
    nums = write_numbers(tmp_path / "n.csv", range(5))
    assert json.loads(esimota(db_url, "numbers", "import", str(nums), "--json").stdout)["imported"] == 5
    again = json.loads(esimota(db_url, "numbers", "import", str(nums), "--json").stdout)
    assert (again["imported"], again["already_present"]) == (0, 5)
    new = json.loads(esimota(db_url, "client", "create", "--name", "A", "--phone", "13800000001", "--ip",
                             "10.0.0.0/8,192.168.1.1", "--callback-url", "https://a.example/cb", "--json").stdout)
    assert new["client_secret"] and new["callback_secret"] and new["ip_whitelist"] == ["10.0.0.0/8", "192.168.1.1/32"]
    cid = new["client_id"]
    out = json.loads(esimota(db_url, "numbers", "allocate", "--client", cid, "--iccid", iccid(0), iccid(1),
                             "--json").stdout)
    assert out["allocated"] == 2
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE client_id IS NOT NULL") == 2
    bad = esimota(db_url, "numbers", "allocate", "--client", cid, "--iccid", iccid(77), "--json", check=False)
    assert bad.returncode == 2 and json.loads(bad.stdout)["problems"][0]["reason"] == "NUMBER_NOT_FOUND"
    rot = json.loads(esimota(db_url, "client", "rotate-secret", cid, "--json").stdout)
    assert rot["client_secret"] != new["client_secret"]
    assert json.loads(esimota(db_url, "client", "whitelist", cid, "--ip", "1.2.3.4", "--json").stdout)[
        "ip_whitelist"] == ["1.2.3.4/32"]
    assert json.loads(esimota(db_url, "client", "permissions", cid, "--permissions", "chip", "--json").stdout)[
        "permissions"] == ["chip"]
    assert json.loads(esimota(db_url, "client", "disable", cid, "--json").stdout)["disabled"] is True
    actions = [r[0] for r in await pool.fetch("SELECT action FROM audit_log WHERE actor = 'staff:root' ORDER BY id")]
    assert "client.create" in actions and "numbers.allocate" in actions and "client.disable" in actions


async def test_client_update_changes_the_rate_limit_and_whitelist_audited(db_url, pool):
    """R17, R31: `client update` (by id or name) sets the rate limit and/or replaces the whitelist in one
    audited change holding before and after; bad input is refused with its reason and changes nothing."""
    new = json.loads(esimota(db_url, "client", "create", "--name", "acme", "--phone", "13800000001", "--ip",
                             "10.0.0.0/8", "--callback-url", "https://a.example/cb", "--json").stdout)
    cid = new["client_id"]
    out = json.loads(esimota(db_url, "client", "update", "acme", "--rate-limit", "5", "--ip", "192.168.1.1",
                             "172.16.0.0/12,10.1.0.0/16", "--json").stdout)
    assert (out["client_id"], out["rate_limit_per_min"], out["ip_whitelist"]) == (
        cid, 5, ["192.168.1.1/32", "172.16.0.0/12", "10.1.0.0/16"])
    out = json.loads(esimota(db_url, "client", "update", cid, "--rate-limit", "1200", "--json").stdout)
    assert (out["rate_limit_per_min"], out["ip_whitelist"]) == (1200, ["192.168.1.1/32", "172.16.0.0/12",
                                                                       "10.1.0.0/16"])
    for argv, reason in (([cid, "--rate-limit", "0"], "RATE_LIMIT_INVALID"),
                         ([cid, "--rate-limit", "-3"], "RATE_LIMIT_INVALID"),
                         ([cid, "--rate-limit", "99999999999"], "RATE_LIMIT_INVALID"),
                         ([cid, "--ip", "10.0.0.300"], "IP_INVALID"),
                         ([cid], "UPDATE_EMPTY"),
                         (["nobody", "--rate-limit", "5"], "CLIENT_NOT_FOUND")):
        bad = esimota(db_url, "client", "update", *argv, "--json", check=False)
        assert bad.returncode == 2 and json.loads(bad.stdout)["error"] == reason, (argv, bad.stdout)
    row = await pool.fetchrow("SELECT rate_limit_per_min, ip_whitelist::text[] AS ips FROM clients")
    assert (row["rate_limit_per_min"], row["ips"]) == (1200, ["192.168.1.1/32", "172.16.0.0/12", "10.1.0.0/16"])
    audit = [json.loads(r["detail"]) for r in await pool.fetch(
        "SELECT detail::text FROM audit_log WHERE action = 'client.update' AND actor = 'staff:root' ORDER BY id")]
    assert audit == [{"rate_limit_per_min": {"from": 600, "to": 5},
                      "whitelist": {"from": ["10.0.0.0/8"], "to": ["192.168.1.1/32", "172.16.0.0/12", "10.1.0.0/16"]}},
                     {"rate_limit_per_min": {"from": 5, "to": 1200}}]


async def test_bad_rows_are_all_listed_and_nothing_is_imported(db_url, tmp_path, pool):
    """DESIGN §7, R30: any bad row → nothing imported, exit 2, every bad row with line and reason."""
    path = write_numbers(tmp_path / "n.csv", range(6))
    lines = path.read_text().splitlines()
    lines[2] = lines[2].replace("data+directed_sms", "data+voice")          # line 3: R30
    lines[4] = lines[4].replace("1064", "138", 1)  # line 5: 12 digits, not a 13-digit IoT number
    lines.append(lines[1])                                                    # line 8: duplicate
    path.write_text("\n".join(lines) + "\n")
    proc = esimota(db_url, "numbers", "import", str(path), "--json", check=False)
    assert proc.returncode == 2
    problems = json.loads(proc.stdout)["problems"]
    assert [(p["line"], p["reason"]) for p in problems] == [
        (3, "SERVICE_NOT_ALLOWED"), (5, "MSISDN_NOT_IOT"), (8, "DUPLICATE_IMSI")]
    assert await pool.fetchval("SELECT count(*) FROM numbers") == 0
    text = esimota(db_url, "numbers", "import", str(path), check=False)
    assert text.returncode == 2 and f"{path}:3: SERVICE_NOT_ALLOWED" in text.stderr
    assert "a1a1a1" not in text.stderr + proc.stdout  # no Ki in any message


async def test_keys_rotate_reencrypts_while_data_stays_readable(db_url, tmp_path, pool):
    """R14: `keys rotate` adds a data key, re-encrypts every secret, and re-wraps under a new master key."""
    from esimota.store import crypto
    from esimota.service import imports
    from esimota.store import chips as chip_store

    esimota(db_url, "batch", "create", "--name", "B1", "--master-key-file",
            str((tmp_path / "k").write_text(BATCH_KEY) and tmp_path / "k"))
    await imports.import_chips(pool, str(write_chips(tmp_path / "c.csv", range(3))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(3))))
    out = json.loads(esimota(db_url, "keys", "rotate", "--json").stdout)
    assert out["version"] == 2 and out["reencrypted"] == 1 + 3 + 3
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE substring(keys_enc FROM 1 FOR 4) = "
                               "'\\x00000002'::bytea") == 3
    batch = await pool.fetchrow(chip_store.SELECT_BATCH, "B1")
    assert await chip_store.batch_master_key(pool, "B1", batch["master_key_enc"]) == bytes.fromhex(BATCH_KEY)
    (tmp_path / "m2").write_text("6b" * 32)
    out = json.loads(esimota(db_url, "keys", "rotate", "--new-master-key-file", str(tmp_path / "m2"),
                             "--json").stdout)
    assert out["rewrapped"] == 3 + len(crypto.INDEX_PURPOSES)  # the data keys and the IMSI index key
    ring = await crypto.load(pool, bytes.fromhex("6b" * 32))
    assert ring.versions == [1, 2, 3]
    from esimota.store import numbers as number_store
    from ..conftest import iccid, imsi
    stored = await pool.fetchval("SELECT imsi_tag FROM numbers WHERE iccid = $1", iccid(2))
    assert stored == number_store.imsi_tag(ring, imsi(2))  # the same index key under the new master


async def test_chips_allocate_and_release_by_client_name(db_url, tmp_path, pool):
    """DESIGN §7 `chips allocate|release --client C (--eid…|--file|--batch)`: the client by id or name, all or
    nothing with every bad line listed (exit 2), release refused while a write task is open."""
    from esimota.service import writing
    from esimota.store import clients

    from ..conftest import eid

    (tmp_path / "k.hex").write_text(BATCH_KEY + "\n")
    esimota(db_url, "batch", "create", "--name", "B1", "--master-key-file", str(tmp_path / "k.hex"))
    esimota(db_url, "chips", "import", str(write_chips(tmp_path / "c.csv", range(4))), "--batch", "B1")
    esimota(db_url, "numbers", "import", str(write_numbers(tmp_path / "n.csv", range(2))))
    for name in ("Acme", "Beta"):
        esimota(db_url, "client", "create", "--name", name, "--phone", "13800000001", "--ip", "10.0.0.1",
                "--callback-url", f"https://{name.lower()}.example/cb")
    (tmp_path / "eids.txt").write_text("eid\n" + eid(0) + "\n" + eid(1) + "\n")
    out = json.loads(esimota(db_url, "chips", "allocate", "--client", "Acme", "--file", str(tmp_path / "eids.txt"),
                             "--json").stdout)
    assert out == {"ok": True, "client": "Acme", "allocated": 2}
    bad = esimota(db_url, "chips", "allocate", "--client", "Beta", "--eid", eid(2), eid(1), eid(99), "--json",
                  check=False)
    assert bad.returncode == 2
    assert [(p["line"], p["reason"]) for p in json.loads(bad.stdout)["problems"]] == [
        (2, "CHIP_ALLOCATED"), (3, "EID_NOT_FOUND")]
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE owner_client_id IS NOT NULL") == 2
    acme = await clients.resolve(pool, "Acme")
    await writing.apply_write(pool, acme, writing.ApplyRequest(eid(0), 1, "44"))
    busy = esimota(db_url, "chips", "release", "--client", acme.client_id, "--eid", eid(0), "--json", check=False)
    assert busy.returncode == 2 and json.loads(busy.stdout)["problems"][0]["reason"] == "TASK_OPEN"
    out = json.loads(esimota(db_url, "chips", "release", "--client", "Acme", "--eid", eid(1), "--json").stdout)
    assert out["released"] == 1
    assert json.loads(esimota(db_url, "chips", "allocate", "--client", "Beta", "--batch", "B1", "--json",
                              check=False).stdout)["problems"][0]["reason"] == "CHIP_ALLOCATED"  # eid(0) is Acme's
    actions = [r["action"] for r in await pool.fetch("SELECT action FROM audit_log WHERE action LIKE 'chips.%' "
                                                     "ORDER BY id")]
    assert actions == ["chips.import", "chips.allocate", "chips.release"]
