"""What a backup reads of the database itself (R30): an exported snapshot, table checksums, emptiness."""

from __future__ import annotations

from typing import Any

TABLES = "SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY tablename"
TABLE_COUNT = "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"
# order-independent row checksum: the sum of 60-bit prefixes of each row's MD5
CHECKSUM = """SELECT count(*) AS n, coalesce(sum(('x' || substr(md5(t::text), 1, 15))::bit(60)::bigint), 0)::text AS h
FROM "{table}" t"""
STABLE_TEXT = "SET TimeZone = 'UTC'; SET DateStyle = 'ISO'; SET bytea_output = 'hex'; SET extra_float_digits = 3"
EXPORT_SNAPSHOT = "SELECT pg_export_snapshot()"
SERVER_VERSION = "SHOW server_version_num"


async def table_checksums(conn: Any) -> dict[str, dict]:
    """Rows and an order-independent checksum of every table: what a restore must reproduce."""
    await conn.execute(STABLE_TEXT)
    out = {}
    for (table,) in await conn.fetch(TABLES):
        row = await conn.fetchrow(CHECKSUM.format(table=table.replace('"', '""')))
        out[table] = {"rows": row["n"], "checksum": row["h"]}
    return out


async def export_snapshot(conn: Any) -> str:
    """The id of the transaction's snapshot, for pg_dump --snapshot (inside a repeatable-read transaction)."""
    return await conn.fetchval(EXPORT_SNAPSHOT)


async def table_count(conn: Any) -> int:
    """Tables in the public schema (0: an empty database)."""
    return await conn.fetchval(TABLE_COUNT)


async def server_major(conn: Any) -> int:
    """The server's major version (pg_dump and pg_restore must be of the same one)."""
    return int(await conn.fetchval(SERVER_VERSION)) // 10000
