"""Regulator exports (R33, R34): files, a SHA-256 manifest, an Ed25519 signature, verification, 24-month retention."""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import io
import json
import os
import shutil
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from .. import config
from ..errors import InvalidArgument, NotFound
from ..store import audit
from ..store import exports as export_store
from . import reports
from .common import CST, connection

KEEP = dt.timedelta(days=730)  # R34: kept 24 months, then deleted
MANIFEST, SIGNATURE, PUBLIC_KEY = "manifest.json", "manifest.sig", "signing-key.pub"
PARTIAL = ".partial"  # an export being written, or left by a pass cut short: never registered, never listed


def _signing_key(home: Path) -> Ed25519PrivateKey:
    """The platform's export signing key (an Ed25519 seed): ESIMOTA_EXPORT_SIGNING_KEY (64 hex) or
    HOME/export-signing.key, generated there (0600) on first use only without DATABASE_URL."""
    seed = config.key_from_env_or_file("ESIMOTA_EXPORT_SIGNING_KEY", home / "export-signing.key")
    key = Ed25519PrivateKey.from_private_bytes(seed)
    public = home / PUBLIC_KEY
    if not public.exists():
        public.write_text(key.public_key().public_bytes_raw().hex() + "\n")
    return key


def export_dir(home: Path | None = None) -> Path:
    """Where exports are written: ESIMOTA_EXPORT_DIR (shared storage when several nodes run), default HOME/exports."""
    raw = os.environ.get("ESIMOTA_EXPORT_DIR")
    return Path(raw) if raw else (home or config.home()) / "exports"


def public_key_hex(home: Path | None = None) -> str:
    """What the receiver is given once, out of band, to verify every later export."""
    return _signing_key(home or config.home()).public_key().public_bytes_raw().hex()


def _csv(columns: tuple, rows: list) -> bytes:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(columns)
    w.writerows([[r[c] for c in columns] for r in rows])
    return buf.getvalue().encode("utf-8")


def _partial(directory: Path) -> Path:
    return directory.with_name(directory.name + PARTIAL)


def _write(directory: Path, files: dict[str, tuple[bytes, int]], meta: dict, home: Path) -> str:
    """Files, the manifest (SHA-256, bytes, rows of each) and its signature, into DIRECTORY.partial (renamed
    to DIRECTORY when the export is registered); returns the manifest's hash."""
    staging = _partial(directory)
    staging.mkdir(parents=True, mode=0o700)
    entries = []
    for name, (data, rows) in files.items():
        (staging / name).write_bytes(data)
        entries.append({"name": name, "sha256": hashlib.sha256(data).hexdigest(), "bytes": len(data), "rows": rows})
    manifest = json.dumps({**meta, "files": entries, "public_key": public_key_hex(home)},
                          ensure_ascii=False, indent=1, sort_keys=True).encode()
    (staging / MANIFEST).write_bytes(manifest)
    (staging / SIGNATURE).write_text(_signing_key(home).sign(manifest).hex() + "\n")
    return hashlib.sha256(manifest).hexdigest()


async def _register(db: Any, kind: str, period: str, directory: Path, digest: str, rows: int, actor: str) -> int:
    """The row and its audit in one transaction; the complete directory takes its name just before the commit,
    so a process killed before then leaves only an unregistered DIRECTORY.partial (swept by the next pass)."""
    staging = _partial(directory)
    try:
        async with connection(db) as conn, conn.transaction():
            export_id = await export_store.register(conn, kind, period, str(directory), digest, rows, actor, KEEP,
                                                    config.node_id())
            await audit.record(conn, actor, "export.create", str(export_id), kind=kind, period=period, rows=rows)
            staging.rename(directory)
            return export_id
    except Exception:  # the commit failed after the rename (a cancel mid-commit is left as it is: it may have)
        if directory.is_dir() and not staging.exists():
            directory.rename(staging)
        raise


def sweep_partial(kind: str, period: str, *, home: Path | None = None, older_s: float = 60.0) -> list[str]:
    """Remove what a pass cut short left of `kind`/`period` (unregistered DIRECTORY.partial, older than
    `older_s`, so never one being written now); the scheduled pass calls it before making the export again."""
    gone = []
    cutoff = dt.datetime.now().timestamp() - older_s
    for d in export_dir(home).glob(f"{kind}-{period}-*{PARTIAL}"):
        if d.is_dir() and d.stat().st_mtime < cutoff:
            shutil.rmtree(d, ignore_errors=True)
            gone.append(str(d))
    return gone


def _target(home: Path, kind: str, period: str) -> Path:
    stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
    return export_dir(home) / f"{kind}-{period}-{stamp}"


async def export_subscribers(db: Any, month: str, actor: str, *, home: Path | None = None) -> dict:
    """R34: the monthly subscriber export as of the last day 24:00, signed; completeness = row count."""
    home = home or config.home()
    cutoff, rows = await reports.subscribers(db, month)
    directory = _target(home, "subscribers", month)
    meta = {"kind": "subscribers", "period": month, "as_of": cutoff.isoformat(),
            "created_at": dt.datetime.now(CST).isoformat(timespec="seconds")}
    digest = _write(directory, {"subscribers.csv": (_csv(reports.SUBSCRIBER_COLUMNS, rows), len(rows))}, meta, home)
    export_id = await _register(db, "subscribers", month, directory, digest, len(rows), actor)
    return {"id": export_id, "path": str(directory), "rows": len(rows), "as_of": cutoff.isoformat(),
            "manifest_sha256": digest}


async def export_service_report(db: Any, half: str, actor: str, *, home: Path | None = None) -> dict:
    """R33: the half-year service report as signed JSON."""
    home = home or config.home()
    report = await reports.service_report(db, half)
    data = json.dumps(report, ensure_ascii=False, indent=1, default=str).encode()
    directory = _target(home, "service", half)
    meta = {"kind": "service", "period": half, "created_at": dt.datetime.now(CST).isoformat(timespec="seconds")}
    digest = _write(directory, {"service-report.json": (data, 1)}, meta, home)
    export_id = await _register(db, "service", half, directory, digest, 1, actor)
    return {"id": export_id, "path": str(directory), "manifest_sha256": digest, "report": report}


def _rows_in(path: Path, name: str) -> int:
    if name.endswith(".csv"):
        with open(path, newline="", encoding="utf-8") as f:
            return max(0, sum(1 for _ in csv.reader(f)) - 1)
    return 1


def verify(directory: str, public_key_hex_text: str) -> dict:
    """The receiver's check (R34): signature over the manifest, then each file's SHA-256, size and rows."""
    base = Path(directory)
    try:
        manifest = (base / MANIFEST).read_bytes()
        signature = bytes.fromhex((base / SIGNATURE).read_text().strip())
        key = Ed25519PublicKey.from_public_bytes(bytes.fromhex(public_key_hex_text.strip()))
    except (OSError, ValueError) as exc:
        raise InvalidArgument(f"cannot read the export or the key: {exc}", reason="EXPORT_UNREADABLE") from None
    try:
        key.verify(signature, manifest)
    except InvalidSignature:
        raise InvalidArgument("the manifest's signature does not verify", reason="SIGNATURE_INVALID") from None
    meta = json.loads(manifest)
    problems = []
    for entry in meta["files"]:
        path = base / entry["name"]
        if not path.is_file():
            problems.append(f"{entry['name']}: missing")
            continue
        data = path.read_bytes()
        if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["bytes"]:
            problems.append(f"{entry['name']}: SHA-256 differs (altered)")
        elif _rows_in(path, entry["name"]) != entry["rows"]:
            problems.append(f"{entry['name']}: row count differs (incomplete)")
    if problems:
        raise InvalidArgument("; ".join(problems), reason="EXPORT_TAMPERED")
    return {"ok": True, "kind": meta["kind"], "period": meta["period"], "files": meta["files"]}


KINDS = {"subscribers": reports.month_range, "service": reports.half_range}  # kind -> its period's parser


async def list_exports(db: Any, actor: str, *, kind: str | None = None, period: str | None = None) -> list[dict]:
    """Every export registered (R33, R34), of `kind` and `period` when given; the listing is itself an audited
    access."""
    if kind is not None and kind not in KINDS:
        raise InvalidArgument("kind must be subscribers or service", reason="EXPORT_KIND_INVALID")
    if period is not None and kind is not None:
        KINDS[kind](period)  # a typed error for a period of the wrong shape
    elif period is not None and not any(_parses(parse, period) for parse in KINDS.values()):
        raise InvalidArgument("period must be YYYY-MM, YYYY-H1 or YYYY-H2", reason="PERIOD_INVALID")
    async with connection(db) as conn:
        rows = await export_store.all_exports(conn, kind, period)
        await audit.record(conn, actor, "export.list", None, count=len(rows), kind=kind, period=period)
    return [dict(r) for r in rows]


def _parses(parse: Any, text: str) -> bool:
    try:
        parse(text)
    except InvalidArgument:
        return False
    return True


async def open_export(db: Any, export_id: int, actor: str) -> dict:
    """Hand out one export's location (audited, R34)."""
    async with connection(db) as conn:
        row = await export_store.kept(conn, export_id)
        if row is None:
            raise NotFound(f"no export {export_id}", reason="EXPORT_NOT_FOUND")
        await audit.record(conn, actor, "export.read", str(export_id), path=row["path"])
    return dict(row)


async def purge(db: Any) -> int:
    """Delete exports older than 24 months (files and all); the registry row stays as the trace."""
    done = 0
    async with connection(db) as conn:
        for row in await export_store.expired(conn):
            shutil.rmtree(row["path"], ignore_errors=True)
            await export_store.mark_deleted(conn, row["id"])
            await audit.record(conn, "platform", "export.delete", str(row["id"]), reason="24 months elapsed")
            done += 1
    return done
