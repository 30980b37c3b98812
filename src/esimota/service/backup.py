"""Backups (§9.1.2, R14, R26): pg_dump encrypted with AES-256-GCM, a manifest, an off-site copy, tested restores, retention."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import unquote, urlsplit

import asyncpg
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import config
from ..errors import ConfigError, Conflict, InvalidArgument
from ..store import leases, snapshots
from ..store import ops as ops_store
from ..store.embedded import find_client_tool
from ..store.snapshots import table_checksums

MAGIC = b"ESIMOTA-BACKUP-1\n"
#: Said when a restore finishes: the data is only readable with the keys it was made with (issue 17).
RESTORE_KEYS = ("restore the keys kept with this backup before `esimota serve`: the at-rest master key "
                "(ESIMOTA_MASTER_KEY or ESIMOTA_HOME/master.key) and the export signing key "
                "(ESIMOTA_HOME/export-signing.key); a new master key cannot read this data and serve "
                "refuses to start with it (docs/operations.md, Keys)")
CHUNK = 4 << 20
PARTIAL = ".partial"  # a dump being written, or left by a process killed mid-dump
BUSY_KEY = 0x65_42_41_4B  # session advisory lock held by the session of the backup being made


def locations(out_dir: str | None = None, copy_dir: str | None = None) -> tuple[Path, Path | None]:
    """Where backups go: ESIMOTA_BACKUP_DIR (default HOME/backups) and the off-site ESIMOTA_BACKUP_COPY_DIR."""
    out = Path(out_dir or os.environ.get("ESIMOTA_BACKUP_DIR") or config.home() / "backups")
    copy = copy_dir or os.environ.get("ESIMOTA_BACKUP_COPY_DIR")
    return out, Path(copy) if copy else None


def keep_days() -> int:
    """Retention (§9.1.2): ESIMOTA_BACKUP_KEEP_DAYS, default 30."""
    raw = os.environ.get("ESIMOTA_BACKUP_KEEP_DAYS", "")
    try:
        return max(1, int(raw)) if raw else 30
    except ValueError:
        raise ConfigError(f"ESIMOTA_BACKUP_KEEP_DAYS must be a number of days, not {raw!r}") from None


def newest(out_dir: Path) -> Path | None:
    """The newest manifest in `out_dir` (names sort by time), if any."""
    manifests = sorted(out_dir.glob("esimota-*.manifest.json")) if out_dir.is_dir() else []
    return manifests[-1] if manifests else None


def backup_key(home: Path | None = None) -> bytes:
    """ESIMOTA_BACKUP_KEY (64 hex) or HOME/backup.key (0600, generated once). Keep a copy apart from backups."""
    return config.key_from_env_or_file("ESIMOTA_BACKUP_KEY", (home or config.home()) / "backup.key")


def key_id(key: bytes) -> str:
    """Names the key in the manifest without revealing it."""
    return hashlib.sha256(b"esimota-backup-key-id" + key).hexdigest()[:16]


def pg_env(url: str) -> tuple[dict, str]:
    """libpq environment for a URL, so that no password appears on a command line; returns (env, dbname)."""
    parts = urlsplit(url)
    env = dict(os.environ, PGHOST=parts.hostname or "127.0.0.1", PGPORT=str(parts.port or 5432),
               PGUSER=unquote(parts.username or ""), PGCONNECT_TIMEOUT="10")
    if parts.password:
        env["PGPASSWORD"] = unquote(parts.password)
    return env, unquote(parts.path.lstrip("/"))


def _seal(src: BinaryIO, dst: BinaryIO, key: bytes) -> None:
    """Chunked AES-256-GCM: nonce = 8 random bytes ‖ chunk index; AAD marks the last chunk (no truncation)."""
    aead, prefix = AESGCM(key), secrets.token_bytes(8)
    dst.write(MAGIC + prefix)
    index, block = 0, src.read(CHUNK)
    while True:
        nxt = src.read(CHUNK) if block else b""
        last = not nxt
        sealed = aead.encrypt(prefix + index.to_bytes(4, "big"), block, MAGIC + index.to_bytes(4, "big") + bytes([last]))
        dst.write(len(sealed).to_bytes(4, "big") + sealed)
        if last:
            return
        index, block = index + 1, nxt


def _open(src: BinaryIO, dst: BinaryIO, key: bytes) -> None:
    """The inverse of _seal; a wrong key, a changed byte or a cut file is BACKUP_CORRUPT."""
    aead = AESGCM(key)
    if src.read(len(MAGIC)) != MAGIC:
        raise InvalidArgument("not an esimota backup", reason="BACKUP_CORRUPT")
    prefix, index = src.read(8), 0
    while True:
        size = int.from_bytes(src.read(4) or b"\0\0\0\0", "big")
        sealed = src.read(size)
        try:
            for last in (False, True):
                try:
                    block = aead.decrypt(prefix + index.to_bytes(4, "big"), sealed,
                                         MAGIC + index.to_bytes(4, "big") + bytes([last]))
                    break
                except InvalidTag:
                    if last:
                        raise
        except InvalidTag:
            raise InvalidArgument("the backup does not decrypt (wrong key, altered or cut)",
                                  reason="BACKUP_CORRUPT") from None
        dst.write(block)
        if last:
            return
        index += 1


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


async def server_major(conn: Any) -> int:
    """The server's major version (150018 -> 15): pg_dump and pg_restore must be of the same one."""
    return await snapshots.server_major(conn)


def _dump(url: str, snapshot: str, out: Path, key: bytes, major: int) -> None:
    """pg_dump of the exported snapshot, sealed on the fly; the clear dump never touches the disk."""
    env, dbname = pg_env(url)
    argv = [str(find_client_tool("pg_dump", major)), "-Fc", "--no-owner", "--no-privileges", f"--snapshot={snapshot}", dbname]
    proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    # written as NAME.partial and renamed once whole: a process killed mid-dump leaves an evident leftover
    # (deleted by `prune` a day later), never a file that looks like a backup
    partial = out.with_name(out.name + PARTIAL)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as dst:
        _seal(proc.stdout, dst, key)
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0:
        partial.unlink(missing_ok=True)
        raise ConfigError(f"pg_dump failed: {err.strip()[:300]}")
    partial.rename(out)


def _copy(files: list[Path], copy_dir: Path) -> None:
    """The off-site copy (§9.1.2), checked byte for byte by SHA-256."""
    copy_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    for f in files:
        shutil.copy2(f, copy_dir / f.name)
        if _sha256(copy_dir / f.name) != _sha256(f):
            raise ConfigError(f"the copy of {f.name} in {copy_dir} differs")


async def create(url: str, out_dir: Path, copy_dir: Path | None, actor: str, *, keep_days: int = 30) -> dict:
    """One consistent backup: checksums and pg_dump read the same exported snapshot; recorded in `backups`
    with this node's name (what "is a backup due?" is asked of, issue 18)."""
    key = backup_key()
    out_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    dump, manifest_path = out_dir / f"esimota-{stamp}.dump.enc", out_dir / f"esimota-{stamp}.manifest.json"
    conn = await asyncpg.connect(url)
    try:
        # One backup at a time on the whole platform. The lock lives as long as the session of the backup
        # being made, which outlives a scheduled job stopped mid-pass (its dump goes on in a thread of its
        # own until the process exits): the next holder of the lease must not make a second one beside it.
        if not await ops_store.try_session_lock(conn, BUSY_KEY):
            raise Conflict("another backup is being made now", reason="BACKUP_BUSY")
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            major = await server_major(conn)
            snapshot = await snapshots.export_snapshot(conn)
            tables = await table_checksums(conn)
            _dump(url, snapshot, dump, key, major)
        manifest = {"format": MAGIC.decode().strip(), "created_at": dt.datetime.now(dt.timezone.utc).isoformat(),
                    "created_by": actor, "node": config.node_id(), "file": dump.name, "sha256": _sha256(dump),
                    "bytes": dump.stat().st_size, "key_id": key_id(key), "tables": tables}
        manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True))
        if copy_dir is not None:
            _copy([dump, manifest_path], copy_dir)
        await leases.record_backup(conn, str(dump), str(manifest_path), manifest["sha256"], manifest["bytes"],
                                   manifest["node"], actor)
    finally:
        await conn.close()
    pruned = prune([d for d in (out_dir, copy_dir) if d is not None], keep_days)
    return {"file": str(dump), "manifest": str(manifest_path), "copy": str(copy_dir) if copy_dir else None,
            "bytes": manifest["bytes"], "tables": len(tables), "rows": sum(t["rows"] for t in tables.values()),
            "pruned": pruned, "node": manifest["node"]}


async def age_s(db: Any) -> float | None:
    """Seconds since the newest backup any node made (manual ones count), by the database; None if none."""
    return await leases.backup_age_s(db)


def prune(dirs: list[Path], keep_days: int) -> list[str]:
    """Retention (§9.1.2): backups older than keep_days are deleted; the newest one is always kept."""
    cutoff = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=keep_days)
    gone = []
    for d in dirs:
        manifests = sorted(d.glob("esimota-*.manifest.json"))
        for m in manifests[:-1]:
            made = dt.datetime.fromtimestamp(m.stat().st_mtime, dt.timezone.utc)
            if made < cutoff:
                (d / m.name.replace(".manifest.json", ".dump.enc")).unlink(missing_ok=True)
                m.unlink()
                gone.append(str(m))
        for left in d.glob(f"esimota-*{PARTIAL}"):  # a dump cut short by a death (a day is past any dump's run)
            if left.stat().st_mtime < time.time() - 86400:
                left.unlink(missing_ok=True)
                gone.append(str(left))
    return gone


def _load_manifest(dump: Path) -> dict:
    path = dump.with_name(dump.name.replace(".dump.enc", ".manifest.json"))
    try:
        manifest = json.loads(path.read_text())
    except (OSError, ValueError):
        raise InvalidArgument(f"no readable manifest next to {dump.name}", reason="BACKUP_MANIFEST_MISSING") from None
    if not dump.is_file() or _sha256(dump) != manifest["sha256"]:
        raise InvalidArgument("the backup file is missing or its SHA-256 differs", reason="BACKUP_CORRUPT")
    return manifest


async def _check_empty(url: str) -> int:
    """Refuses a database that holds tables; returns the server's major version."""
    conn = await asyncpg.connect(url)
    try:
        if await snapshots.table_count(conn):
            raise InvalidArgument("restore goes into an empty database only", reason="DATABASE_NOT_EMPTY")
        return await server_major(conn)
    finally:
        await conn.close()


def _pg_restore(url: str, clear: Path, major: int) -> None:
    env, dbname = pg_env(url)
    argv = [str(find_client_tool("pg_restore", major)), "--no-owner", "--no-privileges", "--exit-on-error",
            "--single-transaction", "-d", dbname, str(clear)]
    res = subprocess.run(argv, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        raise ConfigError(f"pg_restore failed: {res.stderr.strip()[:300]}")


async def restore(dump_file: str, target_url: str) -> dict:
    """Decrypt (in a private temporary directory), pg_restore into an empty database, compare every table."""
    dump = Path(dump_file)
    manifest = _load_manifest(dump)
    key = backup_key()
    if key_id(key) != manifest["key_id"]:
        raise InvalidArgument("this backup was made with another backup key", reason="BACKUP_KEY_MISMATCH")
    major = await _check_empty(target_url)
    with tempfile.TemporaryDirectory(prefix="esimota-restore-") as tmp:
        clear = Path(tmp) / "dump"
        with open(dump, "rb") as src, open(os.open(clear, os.O_WRONLY | os.O_CREAT, 0o600), "wb") as dst:
            _open(src, dst, key)
        _pg_restore(target_url, clear, major)
    conn = await asyncpg.connect(target_url)
    try:
        restored = await table_checksums(conn)
    finally:
        await conn.close()
    bad = sorted(t for t in manifest["tables"] if restored.get(t) != manifest["tables"][t])
    if bad:
        raise InvalidArgument(f"restored tables differ from the manifest: {', '.join(bad)}", reason="RESTORE_MISMATCH")
    return {"tables": len(restored), "rows": sum(t["rows"] for t in restored.values()), "verified": True}
