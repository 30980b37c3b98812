"""The callback outbox (§7.3, R10, R27): claiming due callbacks, every attempt, delivery, retry, re-push.

OutboxRow (`claim`): an asyncpg Record of id, event_id, task_id (the task's row id), payload,
attempts, client_id (the client's public id) and callback_url.
"""

from __future__ import annotations

from typing import Any

CLAIM = """
UPDATE callback_outbox o SET next_attempt_at = now() + make_interval(secs => $2)
FROM (SELECT id FROM callback_outbox WHERE status = 'pending' AND next_attempt_at <= now()
      ORDER BY next_attempt_at LIMIT $1 FOR UPDATE SKIP LOCKED) due, clients c
WHERE o.id = due.id AND c.id = o.client_id
RETURNING o.id, o.event_id, o.task_id, o.payload, o.attempts, c.client_id, c.callback_url"""
RECORD_ATTEMPT = "INSERT INTO callback_attempts (outbox_id, http_status, outcome, detail) VALUES ($1, $2, $3, $4)"
RECORD_ATTEMPTS = """
INSERT INTO callback_attempts (outbox_id, http_status, outcome, detail)
SELECT * FROM unnest($1::bigint[], $2::int[], $3::text[], $4::text[])"""
DELIVERED = """
UPDATE callback_outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL
WHERE id = $1"""
DELIVERED_ALL = """
UPDATE callback_outbox SET status = 'delivered', attempts = attempts + 1, delivered_at = now(), last_error = NULL
WHERE id = ANY($1::bigint[])"""
RETRY = """
UPDATE callback_outbox SET attempts = attempts + 1, last_error = $2,
       next_attempt_at = now() + make_interval(secs => $3)
WHERE id = $1"""
EXHAUSTED = "UPDATE callback_outbox SET status = 'exhausted', attempts = attempts + 1, last_error = $2 WHERE id = $1"
CHIP_OF_TASK = "SELECT chip_id FROM tasks WHERE id = $1"
REPUSH = """
UPDATE callback_outbox SET status = 'pending', attempts = 0, next_attempt_at = now(), delivered_at = NULL
WHERE event_id = $1 RETURNING id"""
LIST = """
SELECT o.id, o.event_id, t.task_id, o.status, o.attempts, o.next_attempt_at, o.last_error
FROM callback_outbox o JOIN tasks t ON t.id = o.task_id
WHERE ($1::text IS NULL OR t.task_id = $1) AND ($2::text IS NULL OR o.event_id = $2) ORDER BY o.id"""
ATTEMPTS = "SELECT outbox_id, at, http_status, outcome, detail FROM callback_attempts WHERE outbox_id = ANY($1) ORDER BY id"


async def claim(db: Any, limit: int, lease_s: float) -> list[Any]:
    """Up to `limit` due OutboxRows, leased for `lease_s` (SKIP LOCKED: concurrent dispatchers share)."""
    return await db.fetch(CLAIM, limit, lease_s)


async def record_attempt(conn: Any, outbox_id: int, http_status: int | None, outcome: str, detail: str) -> None:
    await conn.execute(RECORD_ATTEMPT, outbox_id, http_status, outcome, detail)


async def record_attempts(conn: Any, ids: list[int], statuses: list[int | None], outcomes: list[str],
                          details: list[str]) -> None:
    """The attempts of one dispatch round, in one statement."""
    await conn.execute(RECORD_ATTEMPTS, ids, statuses, outcomes, details)


async def delivered(conn: Any, outbox_id: int) -> None:
    await conn.execute(DELIVERED, outbox_id)


async def delivered_all(conn: Any, ids: list[int]) -> None:
    """The delivered callbacks of one dispatch round, in one statement."""
    await conn.execute(DELIVERED_ALL, ids)


async def retry(conn: Any, outbox_id: int, error: str, delay_s: float) -> None:
    await conn.execute(RETRY, outbox_id, error, delay_s)


async def exhausted(conn: Any, outbox_id: int, error: str) -> None:
    await conn.execute(EXHAUSTED, outbox_id, error)


async def chip_of_task(conn: Any, task_pk: int) -> int | None:
    return await conn.fetchval(CHIP_OF_TASK, task_pk)


async def repush(conn: Any, event_id: str) -> int | None:
    """The event is pending again with a fresh schedule; its outbox id, or None if unknown."""
    return await conn.fetchval(REPUSH, event_id)


async def listed(conn: Any, task_id: str | None, event_id: str | None) -> tuple[list[Any], list[Any]]:
    """(callbacks, their attempts) of a task or one event: Records of LIST and of ATTEMPTS."""
    rows = await conn.fetch(LIST, task_id, event_id)
    return rows, await conn.fetch(ATTEMPTS, [r["id"] for r in rows])
