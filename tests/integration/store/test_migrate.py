"""Migrations: numbered plain SQL, one transaction each, recorded, idempotent (STYLE 10)."""

from pathlib import Path

import asyncpg
import pytest

from esimota.errors import ConfigError
from esimota.store import migrate as m


async def test_migrate_is_idempotent_and_recorded(db_url):
    conn = await asyncpg.connect(db_url)
    try:
        # the template was migrated already: a second run applies nothing
        assert await m.migrate(conn) == []
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [mig.version for mig in m.load()]
        assert await conn.fetchval("SELECT count(*) FROM platform_info WHERE key = 'instance_id'") == 1
    finally:
        await conn.close()


async def test_failing_migration_leaves_nothing_half_applied(db_url, tmp_path: Path):
    for mig in m.load():
        (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql)
    n = len(m.load()) + 1
    (tmp_path / f"{n:04d}_broken.sql").write_text(
        "CREATE TABLE half_done (id int);\nINSERT INTO no_such_table VALUES (1);\n")
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(asyncpg.UndefinedTableError):
            await m.migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('half_done')") is None
        assert await conn.fetchval("SELECT max(version) FROM schema_migrations") == n - 1
    finally:
        await conn.close()


async def test_changed_migration_is_refused(db_url, tmp_path: Path):
    for mig in m.load():
        (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql + "\n-- edited\n")
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(ConfigError, match="changed after it was applied"):
            await m.migrate(conn, tmp_path)
    finally:
        await conn.close()


def test_gap_in_numbering_is_refused(tmp_path: Path):
    (tmp_path / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "0003_c.sql").write_text("SELECT 1;")
    with pytest.raises(ConfigError, match="expected 0002"):
        m.load(tmp_path)


def test_bad_file_name_is_refused(tmp_path: Path):
    (tmp_path / "1_a.sql").write_text("SELECT 1;")
    with pytest.raises(ConfigError, match="NNNN_name.sql"):
        m.load(tmp_path)


async def test_no_transaction_migration_builds_an_index_concurrently(db_url, tmp_path: Path):
    """A file marked `-- esimota: no-transaction` runs statement by statement, so CREATE INDEX
    CONCURRENTLY (refused inside a transaction block) works, and it is recorded like any other."""
    for mig in m.load():
        (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql)
    n = len(m.load()) + 1
    (tmp_path / f"{n:04d}_concurrent.sql").write_text(
        "-- esimota: no-transaction\n-- an index on a large table, built without blocking writes\n"
        "ALTER TABLE numbers ADD COLUMN IF NOT EXISTS probe text;\n"
        "DROP INDEX CONCURRENTLY IF EXISTS numbers_probe;\n"
        "CREATE INDEX CONCURRENTLY numbers_probe\n    ON numbers (probe) WHERE probe IS NOT NULL;\n")
    conn = await asyncpg.connect(db_url)
    try:
        assert await m.migrate(conn, tmp_path) == [n]
        valid = await conn.fetchval("SELECT indisvalid FROM pg_index WHERE indexrelid = 'numbers_probe'::regclass")
        assert valid is True
        assert await conn.fetchval("SELECT name FROM schema_migrations WHERE version = $1", n) == "concurrent"
        assert await m.migrate(conn, tmp_path) == []
    finally:
        await conn.close()


async def test_the_same_statement_in_a_transactional_migration_is_refused(db_url, tmp_path: Path):
    for mig in m.load():
        (tmp_path / f"{mig.version:04d}_{mig.name}.sql").write_text(mig.sql)
    n = len(m.load()) + 1
    (tmp_path / f"{n:04d}_concurrent.sql").write_text("CREATE INDEX CONCURRENTLY numbers_probe2 ON numbers (id);\n")
    conn = await asyncpg.connect(db_url)
    try:
        with pytest.raises(asyncpg.ActiveSQLTransactionError):
            await m.migrate(conn, tmp_path)
        assert await conn.fetchval("SELECT to_regclass('numbers_probe2')") is None
    finally:
        await conn.close()
