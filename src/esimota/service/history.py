"""Write history (记录查询, §5.3.1.1; R1): a task's events, channel sessions and callback attempts, in order.

Operators read any task (`esimota tasks show`); a partner reads only its own (/api/v1/write/records,
/api/v1/write/tasks): another client's task answers exactly as an unknown one does (404).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..domain import identifiers
from ..errors import InvalidArgument, NotFound
from ..store import history as store
from ..store import lists as list_store
from ..store.clients import Client
from . import lists
from .common import connection, require

PARTNER_MAX_PAGE = 100  # DESIGN §6: page_size ≤ 100


@dataclass(frozen=True)
class History:
    """One task and everything that happened to it, each list in the order it happened."""

    task: Any  # the TASK row of store/history.py
    events: list
    sessions: list
    callback_attempts: list


async def _task_row(conn: Any, task_id: str | None, eid: str | None, client_pk: int | None) -> Any:
    if task_id:
        row = await store.task_by_id(conn, task_id)
        if row is None or (client_pk is not None and row["client_pk"] != client_pk):
            raise NotFound("unknown task_id", reason="TASK_NOT_FOUND")
        return row
    if not eid:
        raise InvalidArgument("eid or task_id is required", reason="EID_OR_TASK_REQUIRED")
    identifiers.validate_eid(eid)
    row = await store.latest_task_of_eid(conn, eid, client_pk)
    if row is None:  # an EID without a task of this caller is as unknown as an EID never imported
        raise NotFound("unknown EID", reason="EID_NOT_FOUND")
    return row


async def _history(db: Any, task_id: str | None, eid: str | None, client_pk: int | None) -> History:
    async with connection(db) as conn:
        task = await _task_row(conn, task_id, eid, client_pk)
        return History(task, await store.events(conn, task["id"]), await store.sessions(conn, task["id"]),
                       await store.callback_attempts(conn, task["id"]))


async def task_history(db: Any, ref: str) -> History:
    """`esimota tasks show TASK_ID|EID`: by EID, the chip's latest task."""
    ref = (ref or "").strip()
    if ref.isdigit() and len(ref) == 32:
        return await _history(db, None, ref, None)
    return await _history(db, ref, None, None)


async def write_records(db: Any, client: Client, *, eid: str | None = None, task_id: str | None = None) -> History:
    """GetWriteRecords: the history of one of the caller's writes, by task_id or EID (its latest task)."""
    require(client, "write")
    return await _history(db, task_id or None, eid or None, client.id)


async def list_write_tasks(db: Any, client: Client, *, card_status: int | None = None, since: str | None = None,
                           until: str | None = None, page_size: int = 0, page_token: str = "") -> lists.PageResult:
    """ListWriteTasks: the caller's own tasks, newest first, by card_status and creation time, paged."""
    require(client, "write")
    filters = {"state": lists.state(card_status), "client": client.id,
               "since": lists.when(since, "since"), "until": lists.when(until, "until")}
    return await lists.run(db, list_store.TASKS, filters, page_token,
                           lists.page_size(page_size, PARTNER_MAX_PAGE))
