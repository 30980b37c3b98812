"""Operations repository (§8, R22–R24, R32): exception detectors' queries, alerts, notifications, cursors."""

from __future__ import annotations

from typing import Any

# -- cursors over append-only logs, kept in platform_info ----------------------------------------
GET_CURSOR = "SELECT value FROM platform_info WHERE key = $1"
SET_CURSOR = """
INSERT INTO platform_info (key, value) VALUES ($1, $2)
ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = now()"""

# -- exceptions ------------------------------------------------------------------------------
IS_OPEN = "SELECT 1 FROM exceptions WHERE kind = $1 AND chip_id IS NOT DISTINCT FROM $2 AND closed_at IS NULL"
OPENED_SINCE = "SELECT 1 FROM exceptions WHERE kind = $1 AND opened_at > now() - $2::interval LIMIT 1"
CLOSE_AUTO = """
UPDATE exceptions SET closed_at = opened_at, resolution = $2, closed_by = 'platform'
WHERE kind = $1 AND closed_at IS NULL AND opened_at > now() - interval '1 minute'"""
CLOSE_GENERAL = """
UPDATE exceptions SET closed_at = now(), resolution = $3, closed_by = 'platform'
WHERE id = ANY($1::bigint[]) AND closed_at IS NULL AND severity = 'general' AND kind = ANY($2::text[])"""
# Tables 3–6 are the one truth: rows opened elsewhere get the catalogue's class, severity, deadline.
RECONCILE = """
UPDATE exceptions e SET class = c.cls, severity = c.severity, deadline_at = e.opened_at + c.deadline
FROM unnest($1::text[], $2::text[], $3::text[], $4::interval[]) AS c(kind, cls, severity, deadline)
WHERE upper(split_part(e.kind, ':', 1)) = c.kind AND e.closed_at IS NULL AND e.escalated_at IS NULL
  AND (e.class <> c.cls OR e.severity <> c.severity OR e.deadline_at <> e.opened_at + c.deadline)"""
SELECT_EXCEPTION = "SELECT * FROM exceptions WHERE id = $1"
KINDS_OF = "SELECT kind FROM exceptions WHERE id = ANY($1)"
TRY_SESSION_LOCK = "SELECT pg_try_advisory_lock($1)"
GET_EXCEPTION = "SELECT * FROM exceptions WHERE id = $1 FOR UPDATE"
CLOSE_ONE = "UPDATE exceptions SET closed_at = now(), resolution = $2, report = $3, closed_by = $4 WHERE id = $1"
MARK_REPORTED = "UPDATE exceptions SET reported_at = coalesce(reported_at, now()) WHERE id = $1"
EXCEPTIONS_OPEN = """
SELECT class, severity, deadline_at < now() AS overdue, count(*) FROM exceptions WHERE closed_at IS NULL
GROUP BY 1, 2, 3"""
# temporary numbers of chips not yet written (R12): expired, within 30 days (the alert), within 90 days
TEMP_EXPIRING = """
SELECT count(*) FILTER (WHERE temp_expires_on < current_date) AS expired,
       count(*) FILTER (WHERE temp_expires_on <= current_date + 30) AS "30d",
       count(*) FILTER (WHERE temp_expires_on <= current_date + 90) AS "90d"
FROM chips WHERE state IN (1, 2, 3, 5, 6) AND temp_expires_on <= current_date + 90"""
TASKS_WAITING = "SELECT state, count(*) FROM chips WHERE state IN (2, 3) GROUP BY 1"
CALLBACKS_QUEUED = "SELECT status, count(*) FROM callback_outbox WHERE status IN ('pending', 'exhausted') GROUP BY 1"

# stuck writing (DESIGN §3, table 4 row 1): no progress for 30 min → general, 1 h → severe
STUCK = """
SELECT c.id AS chip_id, c.eid, t.id AS task_id, t.client_id, coalesce(t.progress_at, t.started_at) AS since
FROM chips c JOIN tasks t ON t.chip_id = c.id AND t.state = 3
WHERE c.state = 3 AND coalesce(t.progress_at, t.started_at, c.state_changed_at) < now() - $1::interval"""
ESCALATE_STUCK = """
UPDATE exceptions e SET kind = 'STUCK_WRITING_SEVERE', severity = 'severe', escalated_at = now(),
                        deadline_at = now() + $2::interval
FROM chips c JOIN tasks t ON t.chip_id = c.id AND t.state = 3
WHERE e.kind = 'STUCK_WRITING' AND e.closed_at IS NULL AND e.chip_id = c.id AND c.state = 3
  AND coalesce(t.progress_at, t.started_at, c.state_changed_at) < now() - $1::interval
  AND NOT EXISTS (SELECT 1 FROM exceptions s WHERE s.kind = 'STUCK_WRITING_SEVERE' AND s.chip_id = c.id
                  AND s.closed_at IS NULL)
RETURNING e.id"""
UNSTUCK = """
SELECT e.id FROM exceptions e JOIN chips c ON c.id = e.chip_id
WHERE e.kind IN ('STUCK_WRITING', 'STUCK_WRITING_SEVERE') AND e.closed_at IS NULL
  AND (c.state <> 3 OR EXISTS (SELECT 1 FROM tasks t WHERE t.chip_id = c.id AND t.state = 3
        AND coalesce(t.progress_at, t.started_at) >= now() - $1::interval))"""

# no province resource: a province that has numbers again closes its exception
NO_RESOURCE_OPEN = "SELECT id, kind FROM exceptions WHERE kind LIKE 'NO_RESOURCE:%' AND closed_at IS NULL"
AVAILABLE_IN = "SELECT count(*) FROM numbers WHERE province_code = $1 AND status = 'available'"
MULTI_OPEN = "SELECT id FROM exceptions WHERE kind = 'NO_RESOURCE_MULTI' AND closed_at IS NULL"

# expired temporary numbers on cards that wait for a power-on they can no longer make
EXPIRED_WAITING = """
SELECT c.id AS chip_id, c.eid, c.temp_expires_on, t.id AS task_id, t.client_id
FROM chips c JOIN tasks t ON t.chip_id = c.id AND t.state = 2
WHERE c.state = 2 AND c.temp_expires_on <= $1"""

# callbacks that keep failing (table 5, 回调信息接收失败) and those delivered since
CALLBACKS_FAILING = """
SELECT o.id, o.event_id, o.task_id, o.client_id, o.attempts, o.last_error, t.chip_id
FROM callback_outbox o JOIN tasks t ON t.id = o.task_id
WHERE o.status = 'pending' AND o.attempts >= $1"""
CALLBACKS_RECOVERED = """
SELECT e.id FROM exceptions e
WHERE e.kind = 'CALLBACK_FAILED' AND e.closed_at IS NULL AND e.severity = 'general' AND e.task_id IS NOT NULL
  AND NOT EXISTS (SELECT 1 FROM callback_outbox o WHERE o.task_id = e.task_id AND o.status <> 'delivered')"""

# API call log (R27) windows: bursts of token / whitelist failures, server errors, refused applies
API_FAILURES = """
SELECT coalesce(client_id, host(source_ip), '?') AS subject, count(*) AS n, max(id) AS last_id,
       string_agg(DISTINCT coalesce(reason, code::text), ',') AS reasons
FROM api_calls
WHERE at > now() - $1::interval AND code = ANY($2::int[]) AND ($3::text[] IS NULL OR reason = ANY($3::text[]))
  AND ($4::text IS NULL OR route LIKE $4)
GROUP BY 1 HAVING count(*) >= $5"""
QUIET_SUBJECTS = """
SELECT e.id FROM exceptions e
WHERE e.kind LIKE $1 || ':%' AND e.closed_at IS NULL AND e.severity = 'general' AND NOT EXISTS (
    SELECT 1 FROM api_calls a WHERE a.at > now() - $2::interval AND a.code = ANY($3::int[])
      AND coalesce(a.client_id, host(a.source_ip), '?') = split_part(e.kind, ':', 2))"""

# channel attempts (DESIGN §5.4) after a cursor: no test traffic, protocol errors, MAC/counter failures
BIP_ATTEMPTS = """
SELECT a.id, a.eid, a.chip_id, a.close_reason, a.detail, t.id AS task_id, t.client_id
FROM bip_attempts a
LEFT JOIN LATERAL (SELECT id, client_id FROM tasks WHERE chip_id = a.chip_id ORDER BY id DESC LIMIT 1) t ON true
WHERE a.id > $1 AND a.close_reason = ANY($2::smallint[]) ORDER BY a.id LIMIT 5000"""
MAX_BIP_ATTEMPT = "SELECT coalesce(max(id), 0) FROM bip_attempts"

# -- notifications (§8.3.1) --------------------------------------------------------------------
QUEUE_SEVERE = """
INSERT INTO notifications (source, ref_id, payload)
SELECT 'exception', e.id, jsonb_build_object(
    'source', 'exception', 'id', e.id, 'class', e.class, 'severity', e.severity, 'kind', e.kind,
    'eid', c.eid, 'detail', e.detail, 'opened_at', e.opened_at, 'deadline_at', e.deadline_at)
FROM exceptions e LEFT JOIN chips c ON c.id = e.chip_id
WHERE e.severity = 'severe' AND e.closed_at IS NULL AND e.reported_at IS NULL
ON CONFLICT (source, ref_id) DO NOTHING"""
# one statement (no transaction held open): due rows are moved a claim lease ahead, so no other sender
# takes them while this one posts them outside the database (issue 18); a sender that dies leaves them
# due again when the lease ends
CLAIM_NOTIFICATIONS = """
UPDATE notifications SET next_attempt_at = now() + make_interval(secs => $2)
WHERE id IN (SELECT id FROM notifications WHERE status = 'pending' AND next_attempt_at <= now() ORDER BY id
             LIMIT $1 FOR UPDATE SKIP LOCKED)
RETURNING *"""
NOTIFIED = "UPDATE notifications SET status = 'delivered', delivered_at = now(), attempts = attempts + 1 WHERE id = $1"
NOTIFY_RETRY = """
UPDATE notifications SET attempts = attempts + 1, last_error = $2,
    next_attempt_at = now() + least(interval '10 minutes', interval '15 seconds' * power(2, attempts))
WHERE id = $1"""

# -- alerts (R32, R12) ----------------------------------------------------------------------
OPEN_ALERTS = """
INSERT INTO alerts (kind, severity, subject, chip_id, number_id, detail)
SELECT $1, $2, s.subject, s.chip_id, s.number_id, s.detail
FROM unnest($3::text[], $4::bigint[], $5::bigint[], $6::text[]) AS s(subject, chip_id, number_id, detail)
ON CONFLICT DO NOTHING RETURNING id"""
CLOSE_ALERTS = """
UPDATE alerts SET closed_at = now(), resolution = $3
WHERE kind = $1 AND closed_at IS NULL AND NOT (subject = ANY($2::text[])) RETURNING id"""


# -- the operations console's list of exceptions (R22) ------------------------------------------
_EXCEPTIONS = """
SELECT e.id, e.class, e.severity, e.kind, c.eid, t.task_id, cl.client_id, e.detail, e.opened_at,
       e.deadline_at, e.closed_at
FROM exceptions e LEFT JOIN chips c ON c.id = e.chip_id LEFT JOIN tasks t ON t.id = e.task_id
     LEFT JOIN clients cl ON cl.id = e.client_id"""
LIST_EXCEPTIONS = _EXCEPTIONS + """
WHERE ($1 OR e.closed_at IS NULL) AND ($2::text IS NULL OR e.class = $2)
ORDER BY e.id DESC LIMIT $3"""
ONE_EXCEPTION = _EXCEPTIONS + " WHERE e.id = $1"


async def cursor(db: Any, name: str) -> int | None:
    value = await db.fetchval(GET_CURSOR, "ops.cursor." + name)
    return None if value is None else int(value)


async def set_cursor(db: Any, name: str, value: int) -> None:
    await db.execute(SET_CURSOR, "ops.cursor." + name, str(value))


async def exception(db: Any, exception_id: int) -> Any:
    """One row of the exceptions table, or None."""
    return await db.fetchrow(SELECT_EXCEPTION, exception_id)


async def list_exceptions(db: Any, include_closed: bool, category: str | None, limit: int) -> list[Any]:
    """Exceptions newest first with their chip's EID, task id and client id; open ones only unless asked."""
    return await db.fetch(LIST_EXCEPTIONS, include_closed, category, limit)


async def exception_info(db: Any, exception_id: int) -> Any:
    """One exception as list_exceptions gives it, or None."""
    return await db.fetchrow(ONE_EXCEPTION, exception_id)

async def kinds_of(db: Any, ids: list[int]) -> list[str]:
    """The kinds of these exceptions (the order of the table, not of `ids`)."""
    return [r["kind"] for r in await db.fetch(KINDS_OF, ids)]


async def open_exception_counts(db: Any) -> list[Any]:
    """Open exceptions per (class, severity, overdue): Records (class, severity, overdue, count)."""
    return await db.fetch(EXCEPTIONS_OPEN)


async def temp_expiring(db: Any) -> Any:
    """Temporary numbers of chips not yet written (R12): a Record of expired, "30d" and "90d" counts."""
    return await db.fetchrow(TEMP_EXPIRING)


async def tasks_waiting(db: Any) -> list[Any]:
    """Chips waiting for power-on (2) or writing (3): Records (state, count)."""
    return await db.fetch(TASKS_WAITING)


async def callbacks_queued(db: Any) -> list[Any]:
    """Callbacks pending or exhausted in the outbox: Records (status, count)."""
    return await db.fetch(CALLBACKS_QUEUED)


async def try_session_lock(conn: Any, key: int) -> bool:
    """A session-level advisory lock on `key`, if no other session holds it (held until `conn` closes)."""
    return bool(await conn.fetchval(TRY_SESSION_LOCK, key))


async def open_alerts(conn: Any, kind: str, severity: str, subjects: list[str], chip_ids: list, number_ids: list,
                      details: list) -> list[Any]:
    """Open an alert of `kind` for each subject not alerted yet (R32); the rows opened."""
    return await conn.fetch(OPEN_ALERTS, kind, severity, subjects, chip_ids, number_ids, details)


async def close_alerts(conn: Any, kind: str, keep: list[str], why: str) -> list[Any]:
    """Close the open alerts of `kind` whose subject is not in `keep`; the rows closed."""
    return await conn.fetch(CLOSE_ALERTS, kind, keep, why)



# -- exceptions of §8 (rows: asyncpg Records with the columns each statement names) ----------------------
def _count(status: str) -> int:
    """Rows a command touched, from its status text ("UPDATE 3")."""
    return int(status.split()[-1])


async def is_open(conn: Any, kind: str, chip_id: int | None) -> bool:
    return bool(await conn.fetchval(IS_OPEN, kind, chip_id))


async def close_auto(conn: Any, kind: str, why: str) -> None:
    await conn.execute(CLOSE_AUTO, kind, why)


async def reconcile(conn: Any, kinds: list, classes: list, severities: list, deadlines: list) -> int:
    """Open rows get the catalogue's class, severity and deadline; rows changed."""
    return _count(await conn.execute(RECONCILE, kinds, classes, severities, deadlines))


async def stuck(conn: Any, after: Any) -> list[Any]:
    return await conn.fetch(STUCK, after)


async def escalate_stuck(conn: Any, after: Any, deadline: Any) -> list[Any]:
    return await conn.fetch(ESCALATE_STUCK, after, deadline)


async def unstuck(conn: Any, after: Any) -> list[Any]:
    return await conn.fetch(UNSTUCK, after)


async def close_general(conn: Any, ids: list[int], kinds: list[str], why: str) -> int:
    """Close these general exceptions (severe ones wait for a report); rows closed."""
    return _count(await conn.execute(CLOSE_GENERAL, ids, kinds, why))


async def no_resource_open(conn: Any) -> list[Any]:
    return await conn.fetch(NO_RESOURCE_OPEN)


async def available_in(conn: Any, province: str) -> int:
    return await conn.fetchval(AVAILABLE_IN, province)


async def expired_waiting(conn: Any, today: Any) -> list[Any]:
    return await conn.fetch(EXPIRED_WAITING, today)


async def callbacks_failing(conn: Any, after: int) -> list[Any]:
    return await conn.fetch(CALLBACKS_FAILING, after)


async def callbacks_recovered(conn: Any) -> list[Any]:
    return await conn.fetch(CALLBACKS_RECOVERED)


async def api_failures(conn: Any, window: Any, codes: list[int], reasons: list[str] | None, route: str | None,
                       threshold: int) -> list[Any]:
    return await conn.fetch(API_FAILURES, window, codes, reasons, route, threshold)


async def opened_since(conn: Any, kind: str, window: Any) -> bool:
    return bool(await conn.fetchval(OPENED_SINCE, kind, window))


async def quiet_subjects(conn: Any, prefix: str, window: Any, codes: list[int]) -> list[Any]:
    return await conn.fetch(QUIET_SUBJECTS, prefix, window, codes)


async def bip_attempts(conn: Any, after_id: int, reasons: list[int]) -> list[Any]:
    return await conn.fetch(BIP_ATTEMPTS, after_id, reasons)


async def lock_exception(conn: Any, exception_id: int) -> Any:
    """The exception row, locked FOR UPDATE, or None."""
    return await conn.fetchrow(GET_EXCEPTION, exception_id)


async def mark_reported(conn: Any, exception_id: int) -> None:
    """§8.3.1: the exception was reported (the first time counts)."""
    await conn.execute(MARK_REPORTED, exception_id)


async def close_one(conn: Any, exception_id: int, resolution: str, report: str | None, actor: str) -> None:
    await conn.execute(CLOSE_ONE, exception_id, resolution, report, actor)


# -- the operator's notification outbox (§8.3.1, R24) ----------------------------------------------
async def queue_severe(conn: Any) -> int:
    """Queue every open severe exception not yet reported; rows queued."""
    return _count(await conn.execute(QUEUE_SEVERE))


async def claim_notifications(conn: Any, limit: int, claim_s: float) -> list[Any]:
    """Claim up to `limit` due notifications by moving them `claim_s` ahead (one statement, no lock held)."""
    return await conn.fetch(CLAIM_NOTIFICATIONS, limit, claim_s)


async def notified(conn: Any, notification_id: int) -> None:
    await conn.execute(NOTIFIED, notification_id)


async def notify_retry(conn: Any, notification_id: int, error: str) -> None:
    await conn.execute(NOTIFY_RETRY, notification_id, error)
