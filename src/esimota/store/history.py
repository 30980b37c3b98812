"""A write's history (记录查询, §5.3.1.1; R1 "every step traceable"): events, channel sessions, callbacks."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any

EVENTS = """
SELECT e.id, e.operation, e.from_state, e.to_state, e.actor, e.reason, e.at
FROM task_events e WHERE e.task_id = $1 ORDER BY e.id"""
SESSIONS = """
SELECT s.id, s.started_at, s.ended_at, s.end_event, s.close_reason, s.frames, s.bytes, s.resumed
FROM bip_sessions s WHERE s.task_id = $1 ORDER BY s.id"""
CALLBACK_ATTEMPTS = """
SELECT a.id, o.event_id, a.at, a.http_status, a.outcome, a.detail
FROM callback_outbox o JOIN callback_attempts a ON a.outbox_id = o.id
WHERE o.task_id = $1 ORDER BY a.at, a.id"""
# the task a partner or operator names, with what `tasks show` prints about it
TASK = """
SELECT t.id, t.task_id, c.eid, cl.client_id, t.client_id AS client_pk, t.state, t.write_type, t.province_code,
       n.iccid, n.msisdn, t.script_acked, t.script_total, t.script_done, t.result, t.diagnostic,
       t.created_at, t.started_at, t.write_time, t.finished_at, t.cancelled_at
FROM tasks t JOIN chips c ON c.id = t.chip_id JOIN clients cl ON cl.id = t.client_id
     JOIN numbers n ON n.id = t.number_id"""
TASK_BY_ID = TASK + " WHERE t.task_id = $1"
TASK_LATEST_OF_EID = TASK + " WHERE t.chip_id = (SELECT id FROM chips WHERE eid = $1) ORDER BY t.id DESC LIMIT 1"
TASK_LATEST_OF_EID_FOR = TASK + """
 WHERE t.chip_id = (SELECT id FROM chips WHERE eid = $1) AND t.client_id = $2 ORDER BY t.id DESC LIMIT 1"""

# -- channel sessions, written by the BIP service (service/channel_records.py) with its group commit --
START_SESSIONS = """
INSERT INTO bip_sessions (session_ref, chip_id, task_id, resumed)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[], $4::bool[])"""
# A HELLO that takes a session over ends the chip's earlier one (DESIGN §5.4 step 4).
SUPERSEDE_SESSIONS = """
UPDATE bip_sessions SET ended_at = clock_timestamp(), end_event = 'taken over'
WHERE chip_id = ANY($1::bigint[]) AND ended_at IS NULL"""
END_SESSIONS = """
UPDATE bip_sessions s SET ended_at = clock_timestamp(), end_event = u.ev, close_reason = u.reason,
                          frames = u.frames, bytes = u.bytes
FROM unnest($1::bigint[], $2::text[], $3::smallint[], $4::int[], $5::bigint[]) AS u(ref, ev, reason, frames, bytes)
WHERE s.session_ref = u.ref AND s.ended_at IS NULL"""


@dataclass(frozen=True)
class EventRow:
    id: int
    operation: str
    from_state: int
    to_state: int
    actor: str
    reason: str | None
    at: dt.datetime


@dataclass(frozen=True)
class SessionRow:
    id: int
    started_at: dt.datetime
    ended_at: dt.datetime | None
    end_event: str | None
    close_reason: int | None
    frames: int
    bytes: int
    resumed: bool


@dataclass(frozen=True)
class AttemptRow:
    id: int
    event_id: str
    at: dt.datetime
    http_status: int | None
    outcome: str
    detail: str | None


def _rows(cls: type, records: list) -> list:
    return [cls(*(r[f.name] for f in fields(cls))) for r in records]


async def events(db: Any, task_pk: int) -> list[EventRow]:
    return _rows(EventRow, await db.fetch(EVENTS, task_pk))


async def sessions(db: Any, task_pk: int) -> list[SessionRow]:
    return _rows(SessionRow, await db.fetch(SESSIONS, task_pk))


async def callback_attempts(db: Any, task_pk: int) -> list[AttemptRow]:
    return _rows(AttemptRow, await db.fetch(CALLBACK_ATTEMPTS, task_pk))


async def task_by_id(db: Any, task_id: str) -> Any:
    """The TASK row of this task id, or None."""
    return await db.fetchrow(TASK_BY_ID, task_id)


async def latest_task_of_eid(db: Any, eid: str, client_pk: int | None) -> Any:
    """The TASK row of the chip's latest task (of that client's, if given), or None."""
    if client_pk is None:
        return await db.fetchrow(TASK_LATEST_OF_EID, eid)
    return await db.fetchrow(TASK_LATEST_OF_EID_FOR, eid, client_pk)


async def supersede_sessions(conn: Any, chip_ids: list[int]) -> None:
    await conn.execute(SUPERSEDE_SESSIONS, chip_ids)


async def start_sessions(conn: Any, rows: list[tuple]) -> None:
    """Channel sessions (ref, chip_id, task_pk, resumed) started in one group, in one statement."""
    await conn.execute(START_SESSIONS, *[list(col) for col in zip(*rows)])


async def end_sessions(conn: Any, rows: list[tuple]) -> None:
    """Channel sessions ended in one group (ref, ending, close reason, frames, bytes), in one statement."""
    await conn.execute(END_SESSIONS, *[list(col) for col in zip(*rows)])
