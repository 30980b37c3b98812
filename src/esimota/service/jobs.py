"""What the background jobs are doing (issue 18): which node holds each job's lease, and how each recent period
ended — the operator's view of job_leases and job_runs, without SQL (`esimota monitor jobs`)."""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from ..store import leases
from .common import connection

STATUSES = ("running", "done", "failed")
MAX_LIMIT = 1000


async def status(db: Any, *, job: str | None = None, state: str | None = None, limit: int = 20) -> dict:
    """Every lease (holder, valid, renewed, expires; never its token) and the `limit` newest periods, of `job`
    and in `state` when given; a period `cut_short` was left running by a node that lost the lease (it died,
    was cut off or drained mid-pass) and is finished by the next holder."""
    if state is not None and state not in STATUSES:
        raise InvalidArgument(f"status must be one of {', '.join(STATUSES)}", reason="STATUS_INVALID")
    if not 1 <= limit <= MAX_LIMIT:
        raise InvalidArgument(f"limit must be 1–{MAX_LIMIT}", reason="LIMIT_INVALID")
    async with connection(db) as conn:
        held = await leases.holders(conn)
        runs = await leases.runs(conn, job, state, limit)
    return {"leases": [{k: r[k] for k in ("job", "node", "valid", "acquired_at", "renewed_at", "expires_at")}
                       for r in held],
            "runs": [dict(r) for r in runs]}
