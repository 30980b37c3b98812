"""The embedded PostgreSQL cluster: created under ESIMOTA_HOME, reused on a second start, stopped (DESIGN §7)."""

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import asyncpg
import pytest

from esimota.errors import ConfigError
from esimota.store import embedded


@pytest.fixture
def cluster_dir():
    """A directory for a cluster of the test's own, outside pytest's temporary root (issue 17): run as
    root, the cluster runs as another user who needs search permission on every directory above its
    data, and each pytest session that starts as the same user (another `make test` on the machine)
    resets /tmp/pytest-of-<user> to 0700."""
    base = Path(tempfile.mkdtemp(prefix="esimota-cluster-"))
    yield base
    with contextlib.suppress(ConfigError):
        embedded.Cluster(base / "home").stop(mode="immediate")
    shutil.rmtree(base, ignore_errors=True)


async def test_cluster_lifecycle_in_a_fresh_home(cluster_dir):
    cluster = embedded.Cluster(cluster_dir / "home")
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
        assert oct((cluster_dir / "home" / "pg.password").stat().st_mode & 0o777) == "0o600"
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


def test_a_stale_postmaster_pid_does_not_fail_the_start(cluster_dir):
    """A crash leaves postmaster.pid behind: the next start waits for the file of the postmaster it
    launched, and neither gives up on the old one's pid nor takes its status for the new one's."""
    cluster = embedded.Cluster(cluster_dir / "home")
    cluster.start()
    cluster.stop()
    gone = int(Path("/proc/sys/kernel/pid_max").read_text()) + 1  # a pid no process can have
    pidfile = cluster.datadir / "postmaster.pid"
    pidfile.write_text(f"{gone}\n{cluster.datadir}\n1700000000\n{cluster.port()}\n\n127.0.0.1\n"
                       "  1234  5678\nstarting\n")
    os.chown(pidfile, cluster.datadir.stat().st_uid, cluster.datadir.stat().st_gid)
    try:
        url = cluster.start()
        lines = pidfile.read_text().split("\n")
        assert int(lines[0]) != gone and lines[7].strip() == "ready"
        assert cluster.running() and url == cluster.url()
    finally:
        assert cluster.stop() is True


# In the postgres processes only, the wall clock reads CLOCK_BACK_S seconds earlier: the server starts
# as if the clock had stepped back between the launch and the postmaster's first reading of it.
_CLOCK_BACK_C = r"""
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
static long back(void) {
    static long b = -1;
    if (b < 0) {
        char comm[32] = {0};
        FILE *f = fopen("/proc/self/comm", "r");
        if (f) { if (!fgets(comm, sizeof comm, f)) comm[0] = 0; fclose(f); }
        const char *s = getenv("CLOCK_BACK_S");
        b = (s && strncmp(comm, "postgres", 8) == 0) ? atol(s) : 0;
    }
    return b;
}
int gettimeofday(struct timeval *restrict tv, void *restrict tz) {
    static int (*real)(struct timeval *, void *);
    if (!real) real = (int (*)(struct timeval *, void *)) dlsym(RTLD_NEXT, "gettimeofday");
    int r = real(tv, tz);
    if (r == 0 && tv) tv->tv_sec -= back();
    return r;
}
int clock_gettime(clockid_t id, struct timespec *ts) {
    static int (*real)(clockid_t, struct timespec *);
    if (!real) real = (int (*)(clockid_t, struct timespec *)) dlsym(RTLD_NEXT, "clock_gettime");
    int r = real(id, ts);
    if (r == 0 && ts && (id == CLOCK_REALTIME || id == CLOCK_REALTIME_COARSE)) ts->tv_sec -= back();
    return r;
}
"""


async def test_start_does_not_compare_wall_clocks(cluster_dir, monkeypatch):
    """`pg_ctl start -w` rejects a postmaster.pid that says `ready` when its start time is more than
    2 s before pg_ctl's own clock reading, so a wall clock stepping back during a start would give
    "server did not start in time" for a server ready in milliseconds. Here the server's clock is an
    hour behind ours; the start still ends on the server's own `ready`."""
    cc = shutil.which("cc") or shutil.which("gcc")
    if cc is None:
        pytest.skip("no C compiler to build the clock shim (the Cython build needs one)")
    cluster = embedded.Cluster(cluster_dir / "home")
    cluster.init()  # gives the cluster's user its way to cluster_dir, where the shim goes
    src, shim = cluster_dir / "clock_back.c", cluster_dir / "clock_back.so"
    src.write_text(_CLOCK_BACK_C)
    subprocess.run([cc, "-shared", "-fPIC", "-o", str(shim), str(src), "-ldl"], check=True)
    shim.chmod(0o755)
    monkeypatch.setenv("LD_PRELOAD", str(shim))
    monkeypatch.setenv("CLOCK_BACK_S", "3600")
    ours = time.time()
    url = cluster.start()
    try:
        lines = (cluster.datadir / "postmaster.pid").read_text().split("\n")
        assert int(lines[2]) < ours - 3000, "the shim did not set the server's clock back"
        assert lines[7].strip() == "ready"
        conn = await asyncpg.connect(url)
        assert await conn.fetchval("SELECT 1") == 1
        await conn.close()
    finally:
        assert cluster.stop() is True


@pytest.mark.skipif(os.geteuid() != 0, reason="the cluster runs as the caller: no other user to lose its way")
def test_a_home_whose_parent_lost_its_search_permission(cluster_dir):
    """What pytest does to /tmp/pytest-of-<user> when a session starts (issue 17's cause): running()
    says it cannot tell instead of "not running", and start() gives the permission back and finds the
    same postmaster."""
    cluster = embedded.Cluster(cluster_dir / "home")
    url = cluster.start()
    try:
        postmaster = (cluster.datadir / "postmaster.pid").read_text().split()[0]
        cluster_dir.chmod(cluster_dir.stat().st_mode & ~0o077)
        with pytest.raises(ConfigError, match=r"cannot tell whether PostgreSQL runs: .*Permission denied.* "
                                              r"needs search permission") as err:
            cluster.running()
        assert "\n" not in str(err.value)
        assert cluster.start() == url
        assert (cluster.datadir / "postmaster.pid").read_text().split()[0] == postmaster
    finally:
        assert cluster.stop() is True


def test_a_port_taken_before_the_postmaster_binds_it_is_left_for_another(cluster_dir, monkeypatch):
    """The port is chosen free, then bound by the postmaster a moment later; on a busy machine another
    process may take it in between. The postmaster's 'could not bind' makes the start choose again."""
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    choices = iter([taken.getsockname()[1]])
    real = embedded._free_port
    monkeypatch.setattr(embedded, "_free_port", lambda preferred=0: next(choices, None) or real(preferred))
    cluster = embedded.Cluster(cluster_dir / "home")
    try:
        cluster.start()
        assert cluster.port() != taken.getsockname()[1]
        assert "could not bind" in cluster.logfile.read_text()  # the first postmaster really met the clash
    finally:
        taken.close()
        assert cluster.stop() is True
