"""Start-up refusals of `esimota serve` (issue 17): one clear line on stderr and exit 2, never a traceback,
before anything is served — a platform that started anyway reported itself healthy, then refused every card."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from esimota.sim.launch import free_port
from esimota.store import crypto, embedded, migrate


def _serve(home, db_url: str | None, *extra: str, env: dict | None = None) -> subprocess.CompletedProcess:
    e = dict(os.environ, ESIMOTA_HOME=str(home), ESIMOTA_DB_WAIT="1", ESIMOTA_ADMIN_PORT=str(free_port()),
             ESIMOTA_ADMIN_HTTP_PORT=str(free_port()))
    e.pop("DATABASE_URL", None)
    if db_url is not None:
        e["DATABASE_URL"] = db_url
    e.update(env or {})
    for k in [k for k, v in e.items() if v is None]:
        e.pop(k)
    argv = [sys.executable, "-m", "esimota.cli", "serve", "--no-tls", "--http-port", str(free_port()),
            "--grpc-port", str(free_port()), "--bip-port", str(free_port()), *extra]
    return subprocess.run(argv, env=e, capture_output=True, text=True, timeout=120)


def _one_line(res: subprocess.CompletedProcess, *words: str) -> str:
    assert res.returncode == 2, (res.returncode, res.stderr[-2000:])
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr[-2000:]
    assert lines[0].startswith("esimota: refusing to start: ")
    for w in words:
        assert w in lines[0], lines[0]
    assert res.stdout == ""
    return lines[0]


async def _with_keys(db_url: str) -> None:
    """The database holds its data keys, as any database that stored a number does."""
    conn = await asyncpg.connect(db_url)
    try:
        await crypto.load(conn)  # under the test suite's ESIMOTA_MASTER_KEY
    finally:
        await conn.close()


async def test_wrong_master_key_is_refused(tmp_path, db_url):
    await _with_keys(db_url)
    res = _serve(tmp_path / "home", db_url, env={"ESIMOTA_MASTER_KEY": "6b" * 32})
    line = _one_line(res, "master key", "does not unwrap", "ESIMOTA_MASTER_KEY", "docs/operations.md")
    assert "6b" * 32 not in line and "5a" * 32 not in line


async def test_a_fresh_home_against_a_database_with_keys_is_refused(tmp_path, db_url):
    """Issue 17's first story: a restored database and a new ESIMOTA_HOME (no master key yet)."""
    await _with_keys(db_url)
    res = _serve(tmp_path / "home", db_url, env={"ESIMOTA_MASTER_KEY": None})
    # under DATABASE_URL no key is ever generated (issue 18): the refusal names the key to restore
    _one_line(res, "KEY_MISSING", "ESIMOTA_MASTER_KEY", "master.key")
    assert not (tmp_path / "home" / "master.key").exists()  # no new key was made that could never read it


async def test_newer_schema_is_refused(tmp_path, db_url):
    newest = len(migrate.load())
    conn = await asyncpg.connect(db_url)
    try:
        await conn.execute("INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, 'future', 'x')",
                           newest + 3)
    finally:
        await conn.close()
    _one_line(_serve(tmp_path / "home", db_url), f"migration {newest + 3:04d}", f"({newest:04d})")


def test_a_taken_port_is_refused(tmp_path, db_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        res = _serve(tmp_path / "home", db_url, "--http-port", str(port))
    _one_line(res, f"127.0.0.1:{port}", "HTTP", "--http-port")


def test_an_unreachable_database_is_refused_after_a_bounded_wait(tmp_path, db_url):
    parts = urlsplit(db_url)
    dead = urlunsplit(parts._replace(netloc=f"{parts.netloc.rsplit('@', 1)[0]}@127.0.0.1:{free_port()}"))
    line = _one_line(_serve(tmp_path / "home", dead), "unreachable after 1 s", "DATABASE_URL")
    assert parts.password and parts.password not in line


@pytest.mark.parametrize("name,flag", [("HTTP", "--http-port"), ("gRPC", "--grpc-port"), ("BIP", "--bip-port"),
                                       ("the operations gRPC", "ESIMOTA_ADMIN_PORT"),
                                       ("the operations HTTPS", "ESIMOTA_ADMIN_HTTP_PORT")])
def test_each_taken_listener_is_refused_with_workers(tmp_path, db_url, name, flag):
    """Every listener, under the supervisor (--workers 2): one line naming it and how to move it."""
    host = "0.0.0.0" if flag == "--bip-port" else "127.0.0.1"
    with socket.socket() as taken:
        taken.bind((host, 0))
        taken.listen()
        port = taken.getsockname()[1]
        if flag.startswith("--"):
            res = _serve(tmp_path / "home", db_url, "--workers", "2", flag, str(port))
        else:
            res = _serve(tmp_path / "home", db_url, "--workers", "2", env={flag: str(port)})
    _one_line(res, f"{host}:{port}", f"for {name}:", flag)


@pytest.mark.parametrize("url,words", [
    ("postgresql://esimota:s3cret@127.0.0.1:99999/esimota", ["port '99999'", "1 to 65535"]),
    ("postgresql://esimota:s3cret@127.0.0.1:abc/esimota", ["port 'abc'"]),
    ("mysql://esimota:s3cret@127.0.0.1:3306/esimota", ["not a PostgreSQL URL", "postgresql://"]),
])
def test_a_malformed_database_url_is_refused_at_once(tmp_path, url, words):
    """A port out of range reached the socket layer as a 60-line OverflowError traceback; no wait mends a
    malformed URL, so it is refused before any (never 'unreachable after')."""
    line = _one_line(_serve(tmp_path / "home", url, "--workers", "2"), "DATABASE_URL", *words)
    assert "unreachable" not in line and "s3cret" not in line


async def test_a_wrong_password_is_refused_as_such(tmp_path, db_url):
    """The server answered: a wrong password is said so at once, not reported as unreachable after a wait."""
    parts = urlsplit(db_url)
    user = parts.netloc.rsplit("@", 1)[0].split(":")[0]
    wrong = urlunsplit(parts._replace(netloc=f"{user}:not-the-password@{parts.netloc.rsplit('@', 1)[1]}"))
    line = _one_line(_serve(tmp_path / "home", wrong), "refused the connection", "password authentication failed")
    assert "not-the-password" not in line and "unreachable" not in line


def test_the_embedded_platform_logs_json_lines_only_from_start_to_stop():
    """`make run`'s platform (no DATABASE_URL: the embedded PostgreSQL, started and stopped by serve) writes
    nothing but JSON lines: stopping the cluster forks pg_ctl, and gRPC's fork handlers used to print their
    own "skipping fork() handlers" lines into the log."""
    base = Path(tempfile.mkdtemp(prefix="esimota-serve-"))  # outside pytest's root (see test_embedded)
    e = dict(os.environ, ESIMOTA_HOME=str(base / "home"), ESIMOTA_ADMIN_PORT=str(free_port()),
             ESIMOTA_ADMIN_HTTP_PORT=str(free_port()))
    for k in ("DATABASE_URL", "ESIMOTA_MASTER_KEY", "GRPC_ENABLE_FORK_SUPPORT"):
        e.pop(k, None)
    argv = [sys.executable, "-m", "esimota.cli", "serve", "--no-tls", "--http-port", str(free_port()),
            "--grpc-port", str(free_port()), "--bip-port", str(free_port())]
    proc = subprocess.Popen(argv, env=e, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    lines = []
    try:
        for line in proc.stderr:  # until the worker is serving
            lines.append(line)
            if '"worker ready"' in line:
                break
        proc.send_signal(signal.SIGINT)
        lines += proc.stderr.readlines()
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        embedded.Cluster(base / "home").stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
    records = [json.loads(line) for line in lines]  # every line is one JSON object
    assert any(r["msg"] == "worker ready" for r in records)
    assert records[-1]["msg"] == "stopped"
