"""The registry of regulator exports (R34): what was exported, where, by whom, until when it is kept.

Rows are asyncpg Records of the regulator_exports table unless a function says otherwise.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

INSERT = """
INSERT INTO regulator_exports (kind, period, path, sha256, rows, created_by, expires_at, node)
VALUES ($1, $2, $3, $4, $5, $6, now() + $7::interval, $8) RETURNING id"""
EXPIRED = "SELECT id, path FROM regulator_exports WHERE deleted_at IS NULL AND expires_at < now()"
DELETED = "UPDATE regulator_exports SET deleted_at = now() WHERE id = $1"
ALL = """SELECT * FROM regulator_exports WHERE ($1::text IS NULL OR kind = $1) AND ($2::text IS NULL OR period = $2)
ORDER BY id"""
MADE = "SELECT EXISTS (SELECT 1 FROM regulator_exports WHERE kind = $1 AND period = $2 AND deleted_at IS NULL)"
KEPT = "SELECT * FROM regulator_exports WHERE id = $1 AND deleted_at IS NULL"


async def register(db: Any, kind: str, period: str, path: str, sha256: str, rows: int, actor: str,
                   keep: dt.timedelta, node: str) -> int:
    """A new export made on `node`, kept for `keep`; its id."""
    return await db.fetchval(INSERT, kind, period, path, sha256, rows, actor, keep, node)


async def all_exports(db: Any, kind: str | None = None, period: str | None = None) -> list[Any]:
    """Every export registered (deleted ones too, with deleted_at), of `kind` and `period` when given."""
    return await db.fetch(ALL, kind, period)


async def kept(db: Any, export_id: int) -> Any:
    """The export if it is still kept (not deleted), else None."""
    return await db.fetchrow(KEPT, export_id)


async def expired(db: Any) -> list[Any]:
    """Records (id, path) of the exports past their keeping time and not deleted yet."""
    return await db.fetch(EXPIRED)


async def mark_deleted(db: Any, export_id: int) -> None:
    await db.execute(DELETED, export_id)


async def made(db: Any, kind: str, period: str) -> bool:
    """The `kind` export of `period` (subscribers: YYYY-MM, R34; service: YYYY-H1/H2, R33) exists and is kept,
    whichever node made it."""
    return bool(await db.fetchval(MADE, kind, period))
