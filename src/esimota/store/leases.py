"""Job leases and job runs (issue 18): one node per background job at a time, one run per job and period."""

from __future__ import annotations

from typing import Any

# Take each lease that is free, expired (by the database's clock), or already ours (a renewal), in one
# statement for all of a runner's jobs; returns the jobs this runner holds afterwards.
ACQUIRE = """
INSERT INTO job_leases AS l (job, node, token, expires_at)
SELECT s.job, $2, s.token, now() + make_interval(secs => $4) FROM unnest($1::text[], $3::uuid[]) AS s(job, token)
ON CONFLICT (job) DO UPDATE SET node = excluded.node, token = excluded.token, expires_at = excluded.expires_at,
    renewed_at = now(), acquired_at = CASE WHEN l.token = excluded.token THEN l.acquired_at ELSE now() END
WHERE l.token = excluded.token OR l.expires_at < now()
RETURNING job"""
RELEASE = "DELETE FROM job_leases WHERE job = $1 AND token = $2"
HOLDERS = """SELECT job, node, token, acquired_at, renewed_at, expires_at, expires_at > now() AS valid FROM job_leases
ORDER BY job"""
# recent periods, newest first; cut_short: left 'running' by a runner that no longer holds the job's lease (the
# next holder finishes it)
RUNS = """
SELECT r.job, r.period, r.node, r.status, r.attempts, r.started_at, r.finished_at, r.detail,
       r.status = 'running' AND NOT coalesce(l.token = r.token AND l.expires_at > now(), false) AS cut_short
FROM job_runs r LEFT JOIN job_leases l ON l.job = r.job
WHERE ($1::text IS NULL OR r.job = $1) AND ($2::text IS NULL OR r.status = $2)
ORDER BY r.started_at DESC LIMIT $3"""

_HELD = "EXISTS (SELECT 1 FROM job_leases WHERE job = $1 AND token = $4 AND expires_at > now())"
# A period is claimed only by the runner that holds the job's lease now. A done period is never claimed
# again. A failed one (the pass raised) may be. So may one left 'running' by another runner: that runner no
# longer holds the lease, so it died or stopped its job before the lease could expire (jobs/leader.py), and
# its pass is over, done or not; scheduled passes are idempotent, so the period is finished rather than
# skipped. The holder's own 'running' period is claimed again only when it says ($5) that its own pass of
# it was cut short (cancelled, or its outcome not recorded).
CLAIM = f"""
INSERT INTO job_runs AS r (job, period, node, token)
SELECT $1, $2, $3, $4 WHERE {_HELD}
ON CONFLICT (job, period) DO UPDATE SET node = excluded.node, token = excluded.token, status = 'running',
    attempts = r.attempts + 1, started_at = now(), finished_at = NULL, detail = NULL
WHERE (r.status = 'failed' OR (r.status = 'running' AND (r.token <> $4 OR $5))) AND {_HELD}
RETURNING attempts"""
FINISH = """
UPDATE job_runs SET status = $4, finished_at = now(), detail = $5
WHERE job = $1 AND period = $2 AND token = $3 AND status = 'running'"""
# the current slot of a fixed interval, by the database's clock: the same on every node
SLOT = "SELECT floor(extract(epoch FROM now()) / $1)::bigint"
NOW_EPOCH = "SELECT extract(epoch FROM now())::float8"
PURGE_RUNS = "DELETE FROM job_runs WHERE started_at < now() - make_interval(days => $1)"

# -- backups (R26): "is one due?" is asked of the database, not of a node's folder ----------------------------
RECORD_BACKUP = """
INSERT INTO backups (file, manifest, sha256, bytes, node, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"""
BACKUP_AGE_S = "SELECT extract(epoch FROM now() - max(created_at))::float8 FROM backups"


async def slot(db: Any, interval_s: float) -> int:
    """The current slot of a fixed interval, by the database's clock (the same on every node)."""
    return int(await db.fetchval(SLOT, interval_s))


async def claim(db: Any, job: str, period: str, node: str, token: Any, cut_short: bool = False) -> int | None:
    """Claim `period` of `job` for the lease holder `token`: the attempt number, or None (done, running, or
    not ours). `cut_short`: this runner's own earlier pass of the period ended without recording its outcome."""
    return await db.fetchval(CLAIM, job, period, node, token, cut_short)


async def finish(db: Any, job: str, period: str, token: Any, status: str, detail: str | None) -> None:
    """Record how a claimed period ended ('done' or 'failed')."""
    await db.execute(FINISH, job, period, token, status, detail)


async def acquire(conn: Any, jobs: list[str], node: str, tokens: list, ttl: float, timeout: float) -> list[Any]:
    """Take or renew each lease that is free, expired or ours, in one statement: Records (job) held afterwards."""
    return await conn.fetch(ACQUIRE, jobs, node, tokens, ttl, timeout=timeout)


async def release(db: Any, job: str, token: Any, timeout: float) -> None:
    """Give a lease back (drain), so that another node takes it at once."""
    await db.execute(RELEASE, job, token, timeout=timeout)


async def holders(db: Any) -> list[Any]:
    """Every lease: Records (job, node, token, acquired_at, renewed_at, expires_at, valid)."""
    return await db.fetch(HOLDERS)


async def runs(db: Any, job: str | None, status: str | None, limit: int) -> list[Any]:
    """The `limit` newest job periods (of `job`, in `status`, when given), each with `cut_short`."""
    return await db.fetch(RUNS, job, status, limit)


async def purge_runs(db: Any, days: int) -> None:
    """Delete job runs older than `days`."""
    await db.execute(PURGE_RUNS, days)


async def record_backup(conn: Any, file: str, manifest: str, sha256: str, nbytes: int, node: str,
                        actor: str) -> int:
    """A backup made (R26): its row, whichever node made it; the id."""
    return await conn.fetchval(RECORD_BACKUP, file, manifest, sha256, nbytes, node, actor)


async def backup_age_s(db: Any) -> float | None:
    """Seconds since the newest backup of any node (None: none yet)."""
    return await db.fetchval(BACKUP_AGE_S)


async def now_epoch(db: Any) -> float:
    """The database's clock in seconds since the epoch (the same on every node)."""
    return await db.fetchval(NOW_EPOCH)
