"""Numbered plain-SQL migrations, one transaction each, recorded in schema_migrations (STYLE 10).

A file whose first line is `-- esimota: no-transaction` runs outside a transaction, one statement at a
time (each ending with `;` at the end of a line), so that CREATE INDEX CONCURRENTLY can build an index on
a large table without locking out writes. Such a file must be safe to run again after a failure part
way: `ADD COLUMN IF NOT EXISTS`, and `DROP INDEX CONCURRENTLY IF EXISTS` before each
`CREATE INDEX CONCURRENTLY` (a failed concurrent build leaves an invalid index behind).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

from ..errors import ConfigError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")
NO_TRANSACTION = "-- esimota: no-transaction"
_LOCK_KEY = 0x65_53_49_4D  # advisory lock: several workers may migrate at start-up

_CREATE = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""
HAS_TABLE = "SELECT to_regclass($1) IS NOT NULL"
NEWEST = "SELECT coalesce(max(version), 0) FROM schema_migrations"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()

    @property
    def transactional(self) -> bool:
        return self.sql.split("\n", 1)[0].strip() != NO_TRANSACTION

    def statements(self) -> list[str]:
        """The statements of a no-transaction file: each ends with `;` at the end of a line."""
        out, current = [], []
        for line in self.sql.splitlines():
            current.append(line)
            if line.rstrip().endswith(";"):
                out.append("\n".join(current).strip())
                current = []
        rest = "\n".join(l for l in current if not l.strip().startswith("--")).strip()
        if rest:
            out.append(rest)
        return [st for st in out if any(l.strip() and not l.strip().startswith("--") for l in st.splitlines())]


def load(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    """Every NNNN_name.sql in order; a gap or a duplicate number is a configuration error."""
    found: list[Migration] = []
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise ConfigError(f"migration file name must be NNNN_name.sql: {path.name}")
        found.append(Migration(int(m.group(1)), m.group(2), path.read_text(encoding="utf-8")))
    for i, mig in enumerate(found, start=1):
        if mig.version != i:
            raise ConfigError(f"migrations must be numbered 1, 2, 3…: expected {i:04d}, found {mig.version:04d}")
    return found


async def migrate(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[int]:
    """Apply what is missing; returns the versions applied now (idempotent: [] when up to date)."""
    migrations = load(directory)
    await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
    try:
        await conn.execute(_CREATE)
        rows = await conn.fetch("SELECT version, checksum FROM schema_migrations")
        done = {r["version"]: r["checksum"] for r in rows}
        applied: list[int] = []
        for mig in migrations:
            if mig.version in done:
                if done[mig.version] != mig.checksum:
                    raise ConfigError(f"migration {mig.version:04d}_{mig.name} was changed after it was applied")
                continue
            await _apply(conn, mig)
            applied.append(mig.version)
        return applied
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)


async def _apply(conn: asyncpg.Connection, mig: Migration) -> None:
    record = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"
    if not mig.transactional:  # each statement on its own (CREATE INDEX CONCURRENTLY), recorded last
        for statement in mig.statements():
            await conn.execute(statement)
        await conn.execute(record, mig.version, mig.name, mig.checksum)
        return
    async with conn.transaction():
        await conn.execute(mig.sql)
        await conn.execute(record, mig.version, mig.name, mig.checksum)


async def has_table(conn: asyncpg.Connection, name: str) -> bool:
    """Whether the database has table `name` (a database migrated only in part, or never)."""
    return bool(await conn.fetchval(HAS_TABLE, name))


async def schema_version(conn: asyncpg.Connection) -> int:
    """The newest migration applied to the database; 0 before the first."""
    if not await has_table(conn, "schema_migrations"):
        return 0
    return await conn.fetchval(NEWEST)


async def migrate_url(url: str, directory: Path = MIGRATIONS_DIR) -> list[int]:
    conn = await asyncpg.connect(url)
    try:
        return await migrate(conn, directory)
    finally:
        await conn.close()
