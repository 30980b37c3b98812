"""Chip management (§5.3.1.1, R13): production progress and logistics delivery per batch, projects of a client's chips."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument, NotFound
from ..store import audit
from .common import connection

PRODUCTION = ("ordered", "in_production", "produced", "qc_failed")
LOGISTICS = ("in_stock", "shipped", "delivered", "returned")
# logistics moves forward only; a return comes back from shipped or delivered
LOGISTICS_NEXT = {"in_stock": {"shipped"}, "shipped": {"delivered", "returned"}, "delivered": {"returned"},
                  "returned": {"in_stock"}}

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


async def _batch(conn: Any, name: str) -> int:
    batch_id = await conn.fetchval(BATCH, name)
    if batch_id is None:
        raise NotFound(f"no batch {name!r}", reason="BATCH_NOT_FOUND")
    return batch_id


async def progress(db: Any, batch: str) -> dict:
    """Production progress, logistics delivery and lifecycle states of one batch (R13)."""
    async with connection(db) as conn:
        rows = await conn.fetch(PROGRESS, await _batch(conn, batch))
    out: dict = {"batch": batch, "production": {}, "logistics": {}, "lifecycle": {}}
    for r in rows:
        out[r["axis"]][r["status"]] = r["n"]
    out["chips"] = sum(out["production"].values())
    out["delivered_share"] = round(out["logistics"].get("delivered", 0) / out["chips"], 4) if out["chips"] else None
    return out


async def set_status(db: Any, batch: str, actor: str, *, eids: list[str] | None = None,
                     production: str | None = None, logistics: str | None = None) -> int:
    """Move a batch's chips (or the listed ones) to a production / logistics status; all or nothing."""
    if production is None and logistics is None:
        raise InvalidArgument("give --production or --logistics", reason="STATUS_REQUIRED")
    if production is not None and production not in PRODUCTION:
        raise InvalidArgument(f"production must be one of {', '.join(PRODUCTION)}", reason="STATUS_INVALID")
    if logistics is not None and logistics not in LOGISTICS:
        raise InvalidArgument(f"logistics must be one of {', '.join(LOGISTICS)}", reason="STATUS_INVALID")
    async with connection(db) as conn, conn.transaction():
        chips = await conn.fetch(CHIPS_OF, await _batch(conn, batch), eids)
        if eids and len(chips) != len(set(eids)):
            raise NotFound("some EIDs are not in this batch", reason="CHIP_NOT_IN_BATCH")
        if logistics is not None:
            wrong = [c["eid"] for c in chips if logistics != c["logistics_status"]
                     and logistics not in LOGISTICS_NEXT[c["logistics_status"]]]
            if wrong:
                raise InvalidArgument(f"{len(wrong)} chip(s) cannot go to {logistics} (e.g. {wrong[0]})",
                                      reason="LOGISTICS_ORDER")
            await conn.execute(SET_LOGISTICS, [c["id"] for c in chips], logistics)
        if production is not None:
            await conn.execute(SET_PRODUCTION, [c["id"] for c in chips], production)
        await audit.record(conn, actor, "chips.status", batch, chips=len(chips), production=production,
                           logistics=logistics)
        return len(chips)


async def create_project(db: Any, client_id: str, name: str, field: str | None, actor: str) -> int:
    """A project groups a client's chips; its application field feeds the R33 report."""
    if not name or len(name) > 100:
        raise InvalidArgument("project name is required (at most 100 characters)", reason="PROJECT_NAME_INVALID")
    async with connection(db) as conn, conn.transaction():
        client = await conn.fetchval(CLIENT, client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
        project_id = await conn.fetchval(INSERT_PROJECT, client, name, field or "未分类")
        await audit.record(conn, actor, "project.create", name, client_id=client_id, field=field)
        return project_id


async def assign(db: Any, client_id: str, project: str, eids: list[str], actor: str) -> int:
    """Put chips of this client into a project; any chip of another client refuses the whole request."""
    async with connection(db) as conn, conn.transaction():
        client = await conn.fetchval(CLIENT, client_id)
        project_id = await conn.fetchval("SELECT id FROM projects WHERE client_id = $1 AND name = $2", client, project)
        if project_id is None:
            raise NotFound(f"no project {project!r} of {client_id!r}", reason="PROJECT_NOT_FOUND")
        done = await conn.fetch(ASSIGN, project_id, eids, client)
        if len(done) != len(set(eids)):
            raise InvalidArgument("some EIDs are unknown or not allocated to this client", reason="NOT_OWNER")
        await audit.record(conn, actor, "project.assign", project, client_id=client_id, chips=len(done))
        return len(done)


async def projects(db: Any, client_id: str) -> list[dict]:
    async with connection(db) as conn:
        client = await conn.fetchval(CLIENT, client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
        return [dict(r) for r in await conn.fetch(PROJECTS, client)]
