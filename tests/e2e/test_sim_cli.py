"""`esimota sim fleet` and `esimota sim device` against a running platform (DESIGN §7)."""

import json
import os
import subprocess
import sys

from tests.support.bip import worker


def _esimota(args, db_url, timeout=120):
    env = dict(os.environ, DATABASE_URL=db_url)
    return subprocess.run([sys.executable, "-m", "esimota.cli", *args], env=env, capture_output=True,
                          text=True, timeout=timeout)


async def test_sim_fleet_writes_every_device(db_url, pool):
    async with worker(db_url) as p:
        res = await _run(["sim", "fleet", "--count", "6", "--port", str(p.ports["bip"]), "--procs", "1",
                          "--json"], db_url)
    assert res.returncode == 0, res.stderr
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["devices"] == 6 and summary["succeeded"] == 6 and summary["failed"] == 0
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE state = 4") == 6


async def test_sim_fleet_with_chip_faults_fails_them(db_url, pool):
    async with worker(db_url) as p:
        res = await _run(["sim", "fleet", "--count", "3", "--port", str(p.ports["bip"]), "--procs", "1",
                          "--fault-share", "1", "--chip-fault", "--json"], db_url)
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["failed"] == 3
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE state = 5") == 3


async def _run(args, db_url):
    import asyncio

    return await asyncio.to_thread(_esimota, args, db_url)


def test_sim_device_bad_key_file_exits_2(tmp_path, db_url):
    key = tmp_path / "k"
    key.write_text("not hex")
    res = _esimota(["sim", "device", "--eid", "89049032000000000000000000000551", "--iccid",
                    "89860000000000000000", "--master-key-file", str(key)], db_url)
    assert res.returncode == 2 and "MASTER_KEY_INVALID" in res.stderr and "Traceback" not in res.stderr


async def test_sim_device_defaults_to_esimota_bip_port_and_names_the_close_reason(tmp_path, db_url):
    """Issue 17: no --port means ESIMOTA_BIP_PORT (as `serve` reads it); the CLOSE reason is printed by
    name; readable text by default, JSON with --json, and both parse back to the same outcome."""
    import asyncio

    from esimota.cli.output import parse_text

    key = tmp_path / "k"
    key.write_text("00112233445566778899aabbccddeeff")
    argv = ["sim", "device", "--eid", "89049032000000000000000000000551", "--iccid", "89860000000000000000",
            "--master-key-file", str(key)]
    async with worker(db_url) as p:
        env_port = {"ESIMOTA_BIP_PORT": str(p.ports["bip"])}
        text, js = await asyncio.gather(asyncio.to_thread(_esimota_env, argv, db_url, env_port),
                                        asyncio.to_thread(_esimota_env, argv + ["--json"], db_url, env_port))
    assert text.returncode == js.returncode == 1, text.stderr  # the card was refused: not a write
    shown, data = parse_text(text.stdout), json.loads(js.stdout)
    assert shown["close_reason_name"] == data["close_reason_name"] == "unknown_card"
    assert shown["close_reason"] == str(data["close_reason"]) == "1"
    assert "{" not in text.stdout.splitlines()[0]


def _esimota_env(args, db_url, extra):
    env = dict(os.environ, DATABASE_URL=db_url, **extra)
    return subprocess.run([sys.executable, "-m", "esimota.cli", *args], env=env, capture_output=True,
                          text=True, timeout=120)
