"""The embedded PostgreSQL cluster: created under ESIMOTA_HOME, reused on a second start, stopped (DESIGN §7)."""

import os
import subprocess
import sys

import asyncpg
import pytest

from esimota.errors import ConfigError
from esimota.store import embedded


async def test_cluster_lifecycle_in_a_fresh_home(tmp_path):
    cluster = embedded.Cluster(tmp_path / "home")
    url = cluster.start()
    try:
        assert cluster.running()
        assert "127.0.0.1" in url
        conn = await asyncpg.connect(url)
        pid = await conn.fetchval("SELECT pg_backend_pid()")
        assert await conn.fetchval("SHOW listen_addresses") == "127.0.0.1"
        await conn.close()
        assert pid > 0
        # a second start reuses the running cluster: same port, same postmaster
        postmaster = (cluster.datadir / "postmaster.pid").read_text().split()[0]
        assert cluster.start() == url
        assert (cluster.datadir / "postmaster.pid").read_text().split()[0] == postmaster
        assert oct((tmp_path / "home" / "pg.password").stat().st_mode & 0o777) == "0o600"
        # stopped and started again (`esimota db stop` / `db start` under a running `serve`), it comes
        # back on the same port, where the platform's pool reconnects, even with a just-closed
        # connection's socket in TIME_WAIT on that port
        conn = await asyncpg.connect(url)
        await conn.close()
        assert cluster.stop() is True
        assert cluster.start() == url
    finally:
        assert cluster.stop() is True
    assert not cluster.running()
    assert cluster.stop() is False


def test_missing_binaries_give_one_clear_line(tmp_path, monkeypatch):
    monkeypatch.setenv("ESIMOTA_PG_BINDIR", str(tmp_path))
    with pytest.raises(ConfigError, match=r"apt-get install -y postgresql"):
        embedded.find_bindir()
    env = dict(os.environ, ESIMOTA_PG_BINDIR=str(tmp_path), ESIMOTA_HOME=str(tmp_path / "h"))
    env.pop("DATABASE_URL", None)
    res = subprocess.run([sys.executable, "-m", "esimota.cli", "db", "start"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1
    assert res.stderr.strip().count("\n") == 0 and "postgresql" in res.stderr
    assert "Traceback" not in res.stderr


def test_db_commands_start_url_migrate(tmp_path, pg_server_url):
    env = dict(os.environ, DATABASE_URL=pg_server_url, ESIMOTA_HOME=str(tmp_path))
    res = subprocess.run([sys.executable, "-m", "esimota.cli", "db", "url"], env=env,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 0 and res.stdout.strip() == pg_server_url


async def test_dump_tools_match_the_server_major_version(pg_server_url):
    """backup create|restore use pg_dump/pg_restore of the server's major version; a missing one is
    one clear line naming the Debian package."""
    conn = await asyncpg.connect(pg_server_url)
    try:
        major = int(await conn.fetchval("SHOW server_version_num")) // 10000
    finally:
        await conn.close()
    for tool in ("pg_dump", "pg_restore"):
        path = embedded.find_client_tool(tool, major)
        out = subprocess.run([str(path), "--version"], capture_output=True, text=True).stdout
        assert out.split()[2].split(".")[0] == str(major)
    with pytest.raises(ConfigError, match=r"pg_dump of PostgreSQL 99 .*postgresql-client-99") as err:
        embedded.find_client_tool("pg_dump", 99)
    assert "\n" not in str(err.value)
