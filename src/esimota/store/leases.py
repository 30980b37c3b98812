"""Job leases and job runs (issue 18): one node per background job at a time, one run per job and period."""

from __future__ import annotations

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
HOLDERS = "SELECT job, node, token, expires_at > now() AS valid FROM job_leases ORDER BY job"

_HELD = "EXISTS (SELECT 1 FROM job_leases WHERE job = $1 AND token = $4 AND expires_at > now())"
# A period is claimed only by the runner that holds the job's lease now; a failed period (the pass raised)
# may be claimed again; a done one never, nor one left 'running' by a runner that died or was cut off
# mid-pass: whether its pass took effect cannot be known, so that period is skipped, never run twice.
CLAIM = f"""
INSERT INTO job_runs AS r (job, period, node, token)
SELECT $1, $2, $3, $4 WHERE {_HELD}
ON CONFLICT (job, period) DO UPDATE SET node = excluded.node, token = excluded.token, status = 'running',
    attempts = r.attempts + 1, started_at = now(), finished_at = NULL, detail = NULL
WHERE r.status = 'failed' AND {_HELD}
RETURNING attempts"""
FINISH = """
UPDATE job_runs SET status = $4, finished_at = now(), detail = $5
WHERE job = $1 AND period = $2 AND token = $3 AND status = 'running'"""
# the current slot of a fixed interval, by the database's clock: the same on every node
SLOT = "SELECT floor(extract(epoch FROM now()) / $1)::bigint"
PURGE_RUNS = "DELETE FROM job_runs WHERE started_at < now() - make_interval(days => $1)"

# -- backups (R26): "is one due?" is asked of the database, not of a node's folder ----------------------------
RECORD_BACKUP = """
INSERT INTO backups (file, manifest, sha256, bytes, node, created_by) VALUES ($1, $2, $3, $4, $5, $6) RETURNING id"""
BACKUP_AGE_S = "SELECT extract(epoch FROM now() - max(created_at))::float8 FROM backups"
