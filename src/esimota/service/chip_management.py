"""Chip management (§5.3.1.1, R13): production progress and logistics delivery per batch, projects of a client's chips."""

from __future__ import annotations

from typing import Any

from ..domain import identifiers
from ..errors import ImportRejected, InvalidArgument, NotFound
from ..store import audit
from ..store import chip_projects as project_store
from .common import connection

PRODUCTION = ("ordered", "in_production", "produced", "qc_failed")
LOGISTICS = ("in_stock", "shipped", "delivered", "returned")
# logistics moves forward only; a return comes back from shipped or delivered
LOGISTICS_NEXT = {"in_stock": {"shipped"}, "shipped": {"delivered", "returned"}, "delivered": {"returned"},
                  "returned": {"in_stock"}}

async def _batch(conn: Any, name: str) -> int:
    batch_id = await project_store.batch_id(conn, name)
    if batch_id is None:
        raise NotFound(f"no batch {name!r}", reason="BATCH_NOT_FOUND")
    return batch_id


async def progress(db: Any, batch: str) -> dict:
    """Production progress, logistics delivery and lifecycle states of one batch (R13)."""
    async with connection(db) as conn:
        rows = await project_store.progress(conn, await _batch(conn, batch))
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
        chips = await project_store.lock_chips_of(conn, await _batch(conn, batch), eids)
        if eids and len(chips) != len(set(eids)):
            raise NotFound("some EIDs are not in this batch", reason="CHIP_NOT_IN_BATCH")
        if logistics is not None:
            wrong = [c["eid"] for c in chips if logistics != c["logistics_status"]
                     and logistics not in LOGISTICS_NEXT[c["logistics_status"]]]
            if wrong:
                raise InvalidArgument(f"{len(wrong)} chip(s) cannot go to {logistics} (e.g. {wrong[0]})",
                                      reason="LOGISTICS_ORDER")
            await project_store.set_logistics(conn, [c["id"] for c in chips], logistics)
        if production is not None:
            await project_store.set_production(conn, [c["id"] for c in chips], production)
        await audit.record(conn, actor, "chips.status", batch, chips=len(chips), production=production,
                           logistics=logistics)
        return len(chips)


async def create_project(db: Any, client_id: str, name: str, field: str | None, actor: str) -> int:
    """A project groups a client's chips; its application field feeds the R33 report."""
    if not name or len(name) > 100:
        raise InvalidArgument("project name is required (at most 100 characters)", reason="PROJECT_NAME_INVALID")
    async with connection(db) as conn, conn.transaction():
        client = await project_store.client_pk(conn, client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
        project_id = await project_store.upsert_project(conn, client, name, field or "未分类")
        await audit.record(conn, actor, "project.create", name, client_id=client_id, field=field)
        return project_id


async def assign(db: Any, client_id: str, project: str, eids: list[str], actor: str, *,
                 lines: list[int] | None = None, source: str = "assignment") -> int:
    """Put chips of this client into a project; an invalid EID, or one unknown or of another client, refuses
    the whole request with every such line listed (numbered by `lines` when the EIDs come from a file)."""
    numbered = list(zip(lines or range(1, len(eids) + 1), eids))
    problems: list[tuple[int, str, str]] = []
    for line, eid in numbered:
        try:
            identifiers.validate_eid(eid)
        except InvalidArgument as exc:
            problems.append((line, exc.reason, exc.message))
    async with connection(db) as conn, conn.transaction():
        client = await project_store.client_pk(conn, client_id)
        project_id = await project_store.project_id(conn, client, project)
        if project_id is None:
            raise NotFound(f"no project {project!r} of {client_id!r}", reason="PROJECT_NOT_FOUND")
        bad = {line for line, _, _ in problems}
        done = await project_store.assign(conn, project_id, [e for ln, e in numbered if ln not in bad], client)
        assigned = {r["eid"] for r in done}
        problems += [(line, "NOT_OWNER", f"{eid} is unknown or not allocated to this client")
                     for line, eid in numbered if line not in bad and eid not in assigned]
        if problems:
            raise ImportRejected(sorted(problems), source=source)
        await audit.record(conn, actor, "project.assign", project, client_id=client_id, chips=len(done))
        return len(done)


async def projects(db: Any, client_id: str) -> list[dict]:
    async with connection(db) as conn:
        client = await project_store.client_pk(conn, client_id)
        if client is None:
            raise NotFound(f"no client {client_id!r}", reason="CLIENT_NOT_FOUND")
        return [dict(r) for r in await project_store.projects(conn, client)]
