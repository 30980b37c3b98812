"""Lists of everything an operator or partner looks for (R13): filters, keyset pages newest first, totals.

Every list is one `ListSpec`: a SELECT with its joins, the filters it accepts (each a SQL condition on one
parameter), and the row type it returns. A page is `WHERE <filters> AND id < cursor ORDER BY id DESC
LIMIT n`: an index range scan on the (filter, id) indexes of migration 0015, stable under concurrent
inserts (a new row has a higher id, so it never shifts the pages after the cursor).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, fields
from typing import Any, Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class TaskRow:
    """A write task as the lists show it (no number secret: ICCID and MSISDN only)."""

    id: int
    task_id: str
    eid: str
    client_id: str
    client_name: str
    write_type: int
    province_code: str | None
    iccid: str
    msisdn: str
    state: int
    batch: str
    project: str | None
    script_acked: int
    script_total: int
    script_done: bool
    result: str | None
    created_at: dt.datetime
    write_time: dt.datetime | None
    finished_at: dt.datetime | None


@dataclass(frozen=True)
class ChipRow:
    id: int
    eid: str
    batch: str
    chip_model: str
    imei: str | None
    temp_iccid: str
    temp_msisdn: str
    network_type: str
    open_time: dt.date
    temp_expires_on: dt.date
    state: int
    production_status: str
    logistics_status: str
    client_id: str | None
    project: str | None
    active_iccid: str | None
    remaining_flow_bytes: int


@dataclass(frozen=True)
class NumberRow:
    """An operational number without its IMSI, Ki or OPc (DESIGN §2: they never leave the platform)."""

    id: int
    msisdn: str
    iccid: str
    province_code: str
    status: str  # available, allocated, reserved, bound
    client_id: str | None
    eid: str | None
    monthly_quota_mb: float
    used_flow_mb: float
    city: str | None


@dataclass(frozen=True)
class ClientRow:
    """A client account without its secrets."""

    id: int
    client_id: str
    name: str
    phone: str
    permissions: list
    ip_whitelist: list
    callback_url: str
    rate_limit_per_min: int
    disabled: bool
    created_at: dt.datetime


@dataclass(frozen=True)
class ExceptionRow:
    id: int
    category: str
    severity: str
    kind: str
    eid: str | None
    task_id: str | None
    client_id: str | None
    detail: str | None
    opened_at: dt.datetime
    deadline_at: dt.datetime
    reported_at: dt.datetime | None
    closed_at: dt.datetime | None
    closed_by: str | None
    resolution: str | None
    overdue: bool


@dataclass(frozen=True)
class AlertRow:
    id: int
    kind: str
    severity: str
    subject: str
    eid: str | None
    msisdn: str | None
    detail: str | None
    opened_at: dt.datetime
    closed_at: dt.datetime | None
    notified_at: dt.datetime | None


@dataclass(frozen=True)
class CallbackRow:
    id: int
    event_id: str
    task_id: str
    eid: str
    client_id: str
    status: str
    attempts: int
    next_attempt_at: dt.datetime
    last_error: str | None
    created_at: dt.datetime
    delivered_at: dt.datetime | None


@dataclass(frozen=True)
class ListSpec(Generic[T]):
    """One list: `select` names the columns of `row` (its fields, in order); `key` is the paging id."""

    name: str
    select: str
    key: str
    filters: dict[str, str]  # filter name -> condition with one "{}" for its parameter, on `count_from` only
    row: type
    count_from: str  # the base table alone: the total is counted without the joins


_FIELDS: dict[type, tuple[str, ...]] = {}


def _rows(cls: type, records: list) -> list:
    """Typed rows from records, by column name (the field names of `cls`, looked up once per class)."""
    names = _FIELDS.get(cls)
    if names is None:
        names = _FIELDS[cls] = tuple(f.name for f in fields(cls))
    return [cls(*[r[n] for n in names]) for r in records]


# A client named by its id or its name (`--client`, DESIGN §7), resolved inside the page's own statement
CLIENT_REF = ("(SELECT id FROM clients WHERE client_id = {0}::text OR name = {0}::text "
              "ORDER BY (client_id = {0}::text) DESC, id LIMIT 1)")
TASKS = ListSpec("tasks", """
SELECT t.id, t.task_id, c.eid, cl.client_id, cl.name AS client_name, t.write_type, t.province_code, n.iccid,
       n.msisdn, t.state, b.name AS batch, p.name AS project, t.script_acked, t.script_total, t.script_done,
       t.result, t.created_at, t.write_time, t.finished_at
FROM tasks t JOIN chips c ON c.id = t.chip_id JOIN clients cl ON cl.id = t.client_id
     JOIN numbers n ON n.id = t.number_id JOIN chip_batches b ON b.id = c.batch_id
     LEFT JOIN projects p ON p.id = c.project_id""", "t.id", {
    "state": "t.state = {}::smallint",
    "client": "t.client_id = {}::bigint",
    "client_ref": "t.client_id = " + CLIENT_REF,
    "province": "t.province_code = {}::bpchar",
    "batch": "t.chip_id IN (SELECT id FROM chips WHERE batch_id = {}::bigint)",
    "project": "t.chip_id IN (SELECT id FROM chips WHERE project_id = {}::bigint)",
    "since": "t.created_at >= {}::timestamptz",
    "until": "t.created_at < {}::timestamptz",
    "chip": "t.chip_id = {}::bigint",
}, TaskRow, "tasks t")

CHIPS = ListSpec("chips", """
SELECT c.id, c.eid, b.name AS batch, c.chip_model, c.imei, c.temp_iccid, c.temp_msisdn, c.network_type,
       c.open_time, c.temp_expires_on, c.state, c.production_status, c.logistics_status, cl.client_id,
       p.name AS project, c.active_iccid, c.remaining_flow_bytes
FROM chips c JOIN chip_batches b ON b.id = c.batch_id LEFT JOIN clients cl ON cl.id = c.owner_client_id
     LEFT JOIN projects p ON p.id = c.project_id""", "c.id", {
    "state": "c.state = {}::smallint",
    "batch": "c.batch_id = {}::bigint",
    "client_ref": "c.owner_client_id = " + CLIENT_REF,
    "project": "c.project_id = {}::bigint",
    "production_status": "c.production_status = {}::text",
    "logistics_status": "c.logistics_status = {}::text",
    "expiring_before": "c.temp_expires_on < {}::date AND c.state <> 4",
    "eid": "c.eid = {}::bpchar",
}, ChipRow, "chips c")

_NUMBER_STATUS = ("CASE WHEN n.status = 'available' AND n.client_id IS NOT NULL THEN 'allocated' "
                  "ELSE n.status END")
NUMBERS = ListSpec("numbers", f"""
SELECT n.id, n.msisdn, n.iccid, n.province_code, {_NUMBER_STATUS} AS status, cl.client_id, c.eid,
       n.monthly_quota_mb::float8 AS monthly_quota_mb, n.used_flow_mb::float8 AS used_flow_mb, n.city
FROM numbers n LEFT JOIN clients cl ON cl.id = n.client_id LEFT JOIN chips c ON c.id = n.chip_id""", "n.id", {
    "province": "n.province_code = {}::bpchar",
    "status": f"{_NUMBER_STATUS} = {{}}::text",
    "client_ref": "n.client_id = " + CLIENT_REF,
}, NumberRow, "numbers n")

CLIENTS = ListSpec("clients", """
SELECT cl.id, cl.client_id, cl.name, cl.phone, cl.permissions, cl.ip_whitelist::text[] AS ip_whitelist,
       cl.callback_url, cl.rate_limit_per_min, cl.disabled_at IS NOT NULL AS disabled, cl.created_at
FROM clients cl""", "cl.id", {
    "disabled": "(cl.disabled_at IS NOT NULL) = {}::bool",
    "name": "cl.name ILIKE '%' || {}::text || '%'",
}, ClientRow, "clients cl")

EXCEPTIONS = ListSpec("exceptions", """
SELECT e.id, e.class AS category, e.severity, e.kind, c.eid, t.task_id, cl.client_id, e.detail, e.opened_at,
       e.deadline_at, e.reported_at, e.closed_at, e.closed_by, e.resolution,
       coalesce(e.closed_at, now()) > e.deadline_at AS overdue
FROM exceptions e LEFT JOIN chips c ON c.id = e.chip_id LEFT JOIN tasks t ON t.id = e.task_id
     LEFT JOIN clients cl ON cl.id = e.client_id""", "e.id", {
    "open": "(e.closed_at IS NULL) = {}::bool",
    "category": "e.class = {}::text",
    "severity": "e.severity = {}::text",
    "overdue": "(coalesce(e.closed_at, now()) > e.deadline_at) = {}::bool",
    "id": "e.id = {}::bigint",
}, ExceptionRow, "exceptions e")

ALERTS = ListSpec("alerts", """
SELECT a.id, a.kind, a.severity, a.subject, c.eid, n.msisdn, a.detail, a.opened_at, a.closed_at, a.notified_at
FROM alerts a LEFT JOIN chips c ON c.id = a.chip_id LEFT JOIN numbers n ON n.id = a.number_id""", "a.id", {
    "kind": "a.kind = {}::text",
    "open": "(a.closed_at IS NULL) = {}::bool",
}, AlertRow, "alerts a")

CALLBACKS = ListSpec("callbacks", """
SELECT o.id, o.event_id, t.task_id, c.eid, cl.client_id, o.status, o.attempts, o.next_attempt_at, o.last_error,
       o.created_at, o.delivered_at
FROM callback_outbox o JOIN tasks t ON t.id = o.task_id JOIN chips c ON c.id = t.chip_id
     JOIN clients cl ON cl.id = o.client_id""", "o.id", {
    "status": "o.status = {}::text",
    "client_ref": "o.client_id = " + CLIENT_REF,
}, CallbackRow, "callback_outbox o")


@dataclass(frozen=True)
class Page(Generic[T]):
    rows: list
    more: bool       # another page follows (its cursor is the last row's id)
    total: int | None  # rows matching the filters (None when not counted)


def _where(spec: ListSpec, filters: dict[str, Any]) -> tuple[str, list[Any]]:
    conds, args = [], []
    for name, value in filters.items():
        if value is None:
            continue
        args.append(value)
        conds.append(spec.filters[name].format(f"${len(args)}"))
    return " AND ".join(conds) or "true", args


async def page(db: Any, spec: ListSpec, filters: dict[str, Any], *, before: int | None, limit: int,
               count: bool) -> Page:
    """One page of `spec`, newest first, after the cursor `before` (an id; None: from the newest)."""
    where, args = _where(spec, filters)
    total = None
    if count:
        total = await db.fetchval(f"SELECT count(*) FROM {spec.count_from} WHERE {where}", *args)
    cursor = f" AND {spec.key} < ${len(args) + 1}::bigint" if before is not None else ""
    # the page's ids first, from the base table alone (an index-only range scan of a (filter, id) index
    # of migration 0015), then the joins for those rows only
    ids = (f"SELECT {spec.key} FROM {spec.count_from} WHERE {where}{cursor} "
           f"ORDER BY {spec.key} DESC LIMIT {int(limit) + 1}")
    sql = f"{spec.select} WHERE {spec.key} IN ({ids}) ORDER BY {spec.key} DESC"
    records = await db.fetch(sql, *args, *([before] if before is not None else []))
    return Page(_rows(spec.row, records[:limit]), len(records) > limit, total)


# -- look-ups that turn a filter's name into the id the indexes hold --------------------------
CLIENT_EXISTS = "SELECT EXISTS (SELECT 1 FROM clients WHERE client_id = $1 OR name = $1)"
BATCH_PK = "SELECT id FROM chip_batches WHERE name = $1"
PROJECT_PK = "SELECT id FROM projects WHERE name = $1 OR id::text = $1 ORDER BY id"
CHIP_PK = "SELECT id FROM chips WHERE eid = $1"
TASK_PK = "SELECT id FROM tasks WHERE task_id = $1"


_PKS = {"batch": BATCH_PK, "project": PROJECT_PK}


async def pks(db: Any, which: str, name: str) -> list[Any]:
    """Records (id) of the batches or projects ("batch", "project") a name (or id) given by an operator names."""
    return await db.fetch(_PKS[which], name)


async def client_exists(db: Any, ref: str) -> bool:
    return bool(await db.fetchval(CLIENT_EXISTS, ref))


async def chip_pk(db: Any, eid: str) -> int | None:
    return await db.fetchval(CHIP_PK, eid)
