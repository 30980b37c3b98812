"""Chip management's repository (§5.3.1.1, R13): production and logistics status per batch, projects."""

from __future__ import annotations

from typing import Any

BATCH = "SELECT id FROM chip_batches WHERE name = $1"
PROGRESS = """
SELECT production_status AS status, 'production' AS axis, count(*) AS n FROM chips WHERE batch_id = $1 GROUP BY 1
UNION ALL SELECT logistics_status, 'logistics', count(*) FROM chips WHERE batch_id = $1 GROUP BY 1
UNION ALL SELECT state::text, 'lifecycle', count(*) FROM chips WHERE batch_id = $1 GROUP BY 1"""
CHIPS_OF = "SELECT id, eid, logistics_status FROM chips WHERE batch_id = $1 AND ($2::text[] IS NULL OR eid = ANY($2)) FOR UPDATE"
SET_PRODUCTION = "UPDATE chips SET production_status = $2 WHERE id = ANY($1::bigint[])"
SET_LOGISTICS = "UPDATE chips SET logistics_status = $2 WHERE id = ANY($1::bigint[])"
# `--client` takes a client's id or its name (DESIGN §7); a name two clients share names neither
CLIENT = """
SELECT coalesce((SELECT id FROM clients WHERE client_id = $1),
                (SELECT min(id) FROM clients WHERE name = $1 HAVING count(*) = 1))"""
INSERT_PROJECT = """
INSERT INTO projects (client_id, name, application_field) VALUES ($1, $2, $3)
ON CONFLICT (client_id, name) DO UPDATE SET application_field = excluded.application_field RETURNING id"""
ASSIGN = """
UPDATE chips SET project_id = $1 WHERE eid = ANY($2::text[]) AND owner_client_id = $3
RETURNING eid"""
PROJECTS = """
SELECT p.name, p.application_field, count(c.id) AS chips, count(c.id) FILTER (WHERE c.state = 4) AS written
FROM projects p LEFT JOIN chips c ON c.project_id = p.id WHERE p.client_id = $1 GROUP BY p.id ORDER BY p.name"""
PROJECT_ID = "SELECT id FROM projects WHERE client_id = $1 AND name = $2"


async def batch_id(db: Any, name: str) -> int | None:
    return await db.fetchval(BATCH, name)


async def progress(db: Any, batch_pk: int) -> list[Any]:
    """Records (status, axis, n): chips per production, logistics and lifecycle status of the batch."""
    return await db.fetch(PROGRESS, batch_pk)


async def lock_chips_of(conn: Any, batch_pk: int, eids: list[str] | None) -> list[Any]:
    """Records (id, eid, logistics_status) of the batch's chips (or the listed ones), locked."""
    return await conn.fetch(CHIPS_OF, batch_pk, eids)


async def set_production(conn: Any, chip_ids: list[int], status: str) -> None:
    await conn.execute(SET_PRODUCTION, chip_ids, status)


async def set_logistics(conn: Any, chip_ids: list[int], status: str) -> None:
    await conn.execute(SET_LOGISTICS, chip_ids, status)


async def client_pk(db: Any, ref: str) -> int | None:
    """The client named by its client_id or its (unique) name, or None."""
    return await db.fetchval(CLIENT, ref)


async def upsert_project(conn: Any, client: int, name: str, field: str) -> int:
    return await conn.fetchval(INSERT_PROJECT, client, name, field)


async def project_id(db: Any, client: int | None, name: str) -> int | None:
    return await db.fetchval(PROJECT_ID, client, name)


async def assign(conn: Any, project: int, eids: list[str], client: int | None) -> list[Any]:
    """Records (eid) of the client's chips put into the project."""
    return await conn.fetch(ASSIGN, project, eids, client)


async def projects(db: Any, client: int) -> list[Any]:
    """Records (name, application_field, chips, written) of the client's projects."""
    return await db.fetch(PROJECTS, client)
