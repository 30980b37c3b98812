"""Tasks, task events, the callback outbox and exceptions: what a transition writes (R1, R10, R22)."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from typing import Any

from ..domain.lifecycle import OPEN_STATES, CardState
from . import coalescing

# States are domain/lifecycle's (DESIGN §3): the new task's state is the apply's target, passed in.
_OPEN = ", ".join(str(int(s)) for s in sorted(OPEN_STATES))
INSERT_TASK = """
INSERT INTO tasks (task_id, chip_id, client_id, write_type, province_code, number_id, state)
VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING *"""
OPEN_TASK = f"SELECT * FROM tasks WHERE chip_id = $1 AND state IN ({_OPEN})"
LATEST_TASK = "SELECT * FROM tasks WHERE chip_id = $1 ORDER BY id DESC LIMIT 1"
SELECT_TASK = "SELECT * FROM tasks WHERE task_id = $1"
CANCEL_TASK = "UPDATE tasks SET state = $3, cancelled_at = $2, finished_at = $2 WHERE id = $1"
# Progress is written behind in batches (DESIGN §5.5); it only ever moves forward, and only while writing.
PROGRESS = f"""
UPDATE tasks t SET script_acked = greatest(t.script_acked, u.acked), script_total = u.total,
                   script_done = t.script_done OR u.done, progress_at = $5
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::bool[]) AS u(id, acked, total, done)
WHERE t.id = u.id AND t.state = {int(CardState.WRITING)}"""
# The exceptions a successful write removes the cause of (docs/operations.md): the card's own ones, and
# a failed earlier write of the same chip. General ones only: a severe one still needs its report (§8.3.1).
RESOLVED_BY_SUCCESS = ("NUMBER_NOT_COMMUNICATING", "STUCK_WRITING", "EARLY_REPORT", "CHANNEL_PROTOCOL_ERROR",
                       "CHIP_FAULT", "DATA_ERROR")
CLOSE_RESOLVED = """
UPDATE exceptions SET closed_at = now(), closed_by = 'platform',
       resolution = CASE WHEN kind IN ('CHIP_FAULT', 'DATA_ERROR') THEN 'a re-apply of this chip was written'
                         WHEN kind = 'NUMBER_NOT_COMMUNICATING' THEN 'the operational number communicates: write succeeded'
                         ELSE 'the card''s write succeeded' END
WHERE chip_id = ANY($1::bigint[]) AND kind = ANY($2::text[]) AND closed_at IS NULL AND severity = 'general'"""
INSERT_EVENT = """
INSERT INTO task_events (chip_id, task_id, operation, from_state, to_state, actor, reason)
VALUES ($1, $2, $3, $4, $5, $6, $7)"""
INSERT_CALLBACK = """
INSERT INTO callback_outbox (event_id, client_id, task_id, payload) VALUES ($1, $2, $3, $4::jsonb)"""
# One open exception per (kind, chip): repeated reports refresh nothing (R23). Chip-less kinds (a
# province without numbers) are kept single by a transaction-scoped advisory lock on the kind.
OPEN_EXCEPTION = """
INSERT INTO exceptions (class, severity, kind, chip_id, task_id, client_id, detail, deadline_at)
SELECT $1, $2, $3, $4, $5, $6, $7, now() + $8::interval
WHERE $4::bigint IS NOT NULL OR NOT EXISTS (
    SELECT 1 FROM exceptions WHERE kind = $3 AND chip_id IS NULL AND closed_at IS NULL)
ON CONFLICT DO NOTHING"""
LOCK_KIND = "SELECT pg_advisory_xact_lock(hashtext($1))"
# §7.2.2.3 in one round trip (the status query is the hottest partner call): the chip and its latest task.
# StatusRow: an asyncpg Record of eid, chip_state, owner_client_id and the task's task_id, client_id,
# state, script_acked, script_total, script_done, write_time (NULL without a task).
_STATUS_COLUMNS = """c.eid, c.state AS chip_state, c.owner_client_id, t.task_id, t.client_id, t.state,
       t.script_acked, t.script_total, t.script_done, t.write_time"""
STATUS_BY_EID = f"""SELECT {_STATUS_COLUMNS}
FROM chips c LEFT JOIN LATERAL (SELECT * FROM tasks WHERE chip_id = c.id ORDER BY id DESC LIMIT 1) t ON true
WHERE c.eid = $1"""
STATUS_BY_TASK = f"SELECT {_STATUS_COLUMNS} FROM tasks t JOIN chips c ON c.id = t.chip_id WHERE t.task_id = $1"
STATUSES_BY_EID = f"""SELECT c.eid AS _key, {_STATUS_COLUMNS}
FROM chips c LEFT JOIN LATERAL (SELECT * FROM tasks WHERE chip_id = c.id ORDER BY id DESC LIMIT 1) t ON true
WHERE c.eid = ANY($1::bpchar[])"""
STATUSES_BY_TASK = f"""SELECT t.task_id AS _key, {_STATUS_COLUMNS}
FROM tasks t JOIN chips c ON c.id = t.chip_id WHERE t.task_id = ANY($1::text[])"""


def new_task_id() -> str:
    """An opaque task id (DESIGN §6)."""
    return "T" + secrets.token_hex(12)


async def event(conn: Any, chip_id: int, task_id: int | None, op: str, from_state: int, to_state: int,
                actor: str, reason: str | None = None) -> None:
    """Store one transition: who, when (the column default), from, to, why (§6.1, R1)."""
    await conn.execute(INSERT_EVENT, chip_id, task_id, op, from_state, to_state, actor, reason)


async def close_resolved_by_success(conn: Any, chip_ids: list[int]) -> None:
    """Close, with the reason, the general exceptions that these chips' successful writes resolved."""
    await conn.execute(CLOSE_RESOLVED, chip_ids, list(RESOLVED_BY_SUCCESS))


async def queue_callback(conn: Any, client_id: int, task_pk: int, payload: dict) -> str:
    """Queue the §7.3 callback in the caller's transaction; the dispatcher adds timestamp and sign."""
    event_id = "E" + secrets.token_hex(12)
    body = dict(payload, event_id=event_id)
    await conn.execute(INSERT_CALLBACK, event_id, client_id, task_pk, json.dumps(body, ensure_ascii=False))
    return event_id


async def open_exception(conn: Any, cls: str, severity: str, kind: str, deadline: dt.timedelta, *,
                         chip_id: int | None = None, task_id: int | None = None,
                         client_id: int | None = None, detail: str | None = None) -> None:
    """Record an exception of §8 with its handling deadline (tables 3–6)."""
    if chip_id is None:
        await conn.execute(LOCK_KIND, kind)
    await conn.execute(OPEN_EXCEPTION, cls, severity, kind, chip_id, task_id, client_id, detail, deadline)


async def write_progress(conn: Any, progress: dict[int, tuple[int, int, bool]], at: dt.datetime) -> None:
    """{task_pk: (acked, total, done)} written behind in one statement (DESIGN §5.5); only ever forward."""
    ids = sorted(progress)
    await conn.execute(PROGRESS, ids, [progress[i][0] for i in ids], [progress[i][1] for i in ids],
                       [progress[i][2] for i in ids], at)


# -- tasks (asyncpg Records of the tasks table, `SELECT *`) -----------------------------------------
async def insert(conn: Any, chip_id: int, client_pk: int, write_type: int, province_code: str | None,
                 number_id: int, state: int) -> Any:
    """A new task with a new opaque task id; returns its row."""
    return await conn.fetchrow(INSERT_TASK, new_task_id(), chip_id, client_pk, write_type, province_code,
                               number_id, state)


async def open_task(conn: Any, chip_id: int) -> Any:
    """The chip's task in an open state (2 or 3), or None."""
    return await conn.fetchrow(OPEN_TASK, chip_id)


async def latest(conn: Any, chip_id: int) -> Any:
    """The chip's latest task, or None."""
    return await conn.fetchrow(LATEST_TASK, chip_id)


async def by_task_id(conn: Any, task_id: str) -> Any:
    """The task of this opaque id, or None."""
    return await conn.fetchrow(SELECT_TASK, task_id)


async def cancel(conn: Any, task_pk: int, at: dt.datetime, state: int) -> None:
    """The task is cancelled at `at` (§7.2.2.4)."""
    await conn.execute(CANCEL_TASK, task_pk, at, state)


async def status_by_task(db: Any, task_id: str) -> Any:
    """The StatusRow of a task id, or None; from a pool, shared with the same lookups of this moment."""
    if hasattr(db, "acquire"):
        return await coalescing.coalescer(db, STATUSES_BY_TASK).get(task_id)
    return await db.fetchrow(STATUS_BY_TASK, task_id)


async def status_by_eid(db: Any, eid: str) -> Any:
    """The StatusRow of an EID, or None; from a pool, shared with the same lookups of this moment."""
    if hasattr(db, "acquire"):
        return await coalescing.coalescer(db, STATUSES_BY_EID).get(eid)
    return await db.fetchrow(STATUS_BY_EID, eid)
