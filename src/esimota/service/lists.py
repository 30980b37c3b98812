"""Find anything (R13, §5.3.1.1): one use case per list — filters, a stable order, cursor pages, a total.

Pages are keyset pages newest first (store/lists.py). The page token carries the last id seen, the
total counted with the first page and a digest of the filters: a token is only good for the filters
it was issued with (else 400 PAGE_TOKEN_INVALID), and the total stays the one of the first page.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from ..domain import identifiers, provinces
from ..errors import InvalidArgument, NotFound
from ..store import lists as store
from .common import CST, connection

MAX_PAGE = 1000
DEFAULT_PAGE = 100


@dataclass(frozen=True)
class PageResult:
    """One page: typed rows of store/lists.py, the token of the next page ("" at the end), the total."""

    rows: list
    next_page_token: str
    total: int


def _digest(spec: store.ListSpec, filters: dict) -> str:
    text = json.dumps([spec.name, sorted((k, str(v)) for k, v in filters.items() if v is not None)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _decode(token: str, digest: str) -> tuple[int | None, int | None]:
    if not token:
        return None, None
    try:
        raw = json.loads(base64.urlsafe_b64decode(token.encode() + b"=" * (-len(token) % 4)))
        key, total, seen = int(raw["k"]), int(raw["t"]), raw["f"]
    except (ValueError, KeyError, TypeError):
        raise InvalidArgument("page_token is not a token this list issued", reason="PAGE_TOKEN_INVALID") from None
    if seen != digest:
        raise InvalidArgument("page_token was issued for other filters", reason="PAGE_TOKEN_INVALID")
    return key, total


def _encode(key: int, total: int, digest: str) -> str:
    raw = json.dumps({"k": key, "t": total, "f": digest}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def page_size(value: int | None, maximum: int = MAX_PAGE) -> int:
    """0 or None: the default; more than `maximum` or negative: 400."""
    if not value:
        return min(DEFAULT_PAGE, maximum)
    if value < 0 or value > maximum:
        raise InvalidArgument(f"page_size must be 1..{maximum}", reason="PAGE_SIZE_INVALID")
    return value


async def run(db: Any, spec: store.ListSpec, filters: dict, page_token: str, size: int) -> PageResult:
    """A page of `spec` under `filters` (already resolved to what the indexes hold)."""
    digest = _digest(spec, filters)
    before, total = _decode(page_token, digest)
    async with connection(db) as conn:
        got = await store.page(conn, spec, filters, before=before, limit=size, count=total is None)
    total = got.total if total is None else total
    token = _encode(got.rows[-1].id, total, digest) if got.more else ""
    return PageResult(got.rows, token, total)


# -- filter values: parsed here, so that a bad one is a 400 with its name --------------------------
def state(value: int | str | None) -> int | None:
    if value in (None, "", 0):
        return None
    try:
        code = int(value)
    except (TypeError, ValueError):
        code = 0
    if not 1 <= code <= 6:
        raise InvalidArgument("state / card_status must be 1..6 (§6.3 table 2)", reason="STATE_INVALID")
    return code


def when(value: str | dt.datetime | None, name: str) -> dt.datetime | None:
    """ISO 8601 date or time; without an offset it is China Standard Time (+08:00)."""
    if value in (None, ""):
        return None
    if isinstance(value, dt.datetime):
        return value
    try:
        parsed = dt.datetime.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidArgument(f"{name} must be an ISO 8601 date or time", reason="TIME_INVALID") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=CST)


def day(value: str | dt.date | None, name: str) -> dt.date | None:
    if value in (None, ""):
        return None
    if isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value).strip())
    except ValueError:
        raise InvalidArgument(f"{name} must be an ISO date (YYYY-MM-DD)", reason="DATE_INVALID") from None


def choice(value: str | None, allowed: tuple[str, ...], name: str) -> str | None:
    if not value:
        return None
    if value not in allowed:
        raise InvalidArgument(f"{name} must be one of {', '.join(allowed)}", reason="FILTER_INVALID")
    return value


async def _pk(conn: Any, which: str, value: str | None, what: str, reason: str) -> int | None:
    """The id behind a name the operator gave (a batch, a project)."""
    if not value:
        return None
    rows = await store.pks(conn, which, value)
    if not rows:
        raise NotFound(f"no {what} {value!r}", reason=reason)
    if len(rows) > 1:
        raise InvalidArgument(f"{what} {value!r} is ambiguous; give its id", reason="FILTER_AMBIGUOUS")
    return rows[0]["id"]


async def _run_for_client(db: Any, spec: store.ListSpec, filters: dict, client: str | None, page_token: str,
                          size: int) -> PageResult:
    """`--client` takes a client's id or its name (DESIGN §7), resolved by the page's own statement; an
    empty first page then says whether the client exists (404 CLIENT_NOT_FOUND) or has nothing."""
    async with connection(db) as conn:
        got = await run(conn, spec, dict(filters, client_ref=client or None), page_token, size)
        if client and not got.rows and not page_token and not await store.client_exists(conn, client):
            raise NotFound(f"no client {client!r}", reason="CLIENT_NOT_FOUND")
    return got


# -- the lists ------------------------------------------------------------------------------------
async def list_tasks(db: Any, *, state_: int | str | None = None, client: str | None = None,
                     province: str | None = None, batch: str | None = None, project: str | None = None,
                     since: str | None = None, until: str | None = None, eid: str | None = None,
                     page_token: str = "", page_size_: int = 0) -> PageResult:
    """Write tasks, newest first: state, client, province, batch, project, creation time range, EID."""
    async with connection(db) as conn:
        filters = {"state": state(state_),
                   "province": provinces.validate_province(province) if province else None,
                   "batch": await _pk(conn, "batch", batch, "batch", "BATCH_NOT_FOUND"),
                   "project": await _pk(conn, "project", project, "project", "PROJECT_NOT_FOUND"),
                   "since": when(since, "since"), "until": when(until, "until"),
                   "chip": await _chip_pk(conn, eid)}
        return await _run_for_client(conn, store.TASKS, filters, client, page_token, page_size(page_size_))


async def _chip_pk(conn: Any, eid: str | None) -> int | None:
    if not eid:
        return None
    pk = await store.chip_pk(conn, identifiers.validate_eid(eid))
    if pk is None:
        raise NotFound("unknown EID", reason="EID_NOT_FOUND")
    return pk


async def list_chips(db: Any, *, state_: int | str | None = None, batch: str | None = None,
                     client: str | None = None, project: str | None = None, production_status: str | None = None,
                     logistics_status: str | None = None, expiring_before: str | None = None,
                     page_token: str = "", page_size_: int = 0) -> PageResult:
    """Seed chips: state, batch, client (allocated to), project, production / logistics status, and
    temporary numbers expiring before a date (R12)."""
    async with connection(db) as conn:
        filters = {"state": state(state_),
                   "batch": await _pk(conn, "batch", batch, "batch", "BATCH_NOT_FOUND"),
                   "project": await _pk(conn, "project", project, "project", "PROJECT_NOT_FOUND"),
                   "production_status": production_status or None, "logistics_status": logistics_status or None,
                   "expiring_before": day(expiring_before, "expiring_before")}
        return await _run_for_client(conn, store.CHIPS, filters, client, page_token, page_size(page_size_))


NUMBER_STATUSES = ("available", "allocated", "reserved", "bound")


async def list_numbers(db: Any, *, province: str | None = None, status: str | None = None,
                       client: str | None = None, page_token: str = "", page_size_: int = 0) -> PageResult:
    """Operational numbers: province, status (available to auto-allocation, allocated to a client,
    reserved by a task, bound to a chip), client. Never an IMSI, Ki or OPc (DESIGN §2)."""
    filters = {"province": provinces.validate_province(province) if province else None,
               "status": choice(status, NUMBER_STATUSES, "status")}
    return await _run_for_client(db, store.NUMBERS, filters, client, page_token, page_size(page_size_))


async def list_clients(db: Any, *, disabled: bool | None = None, name: str | None = None,
                       page_token: str = "", page_size_: int = 0) -> PageResult:
    """Client accounts (no secret in a row)."""
    filters = {"disabled": disabled, "name": name or None}
    return await run(db, store.CLIENTS, filters, page_token, page_size(page_size_))


CATEGORIES = ("apply", "write", "interface", "terminal")
SEVERITIES = ("general", "severe")


async def list_exceptions(db: Any, *, open_: bool | None = None, category: str | None = None,
                          severity: str | None = None, overdue: bool | None = None, page_token: str = "",
                          page_size_: int = 0) -> PageResult:
    """Exceptions of §8 (R22–R24): open or closed, class, severity, overdue (past the handling deadline)."""
    filters = {"open": open_, "category": choice(category, CATEGORIES, "class"),
               "severity": choice(severity, SEVERITIES, "severity"), "overdue": overdue}
    return await run(db, store.EXCEPTIONS, filters, page_token, page_size(page_size_))


async def get_exception(db: Any, exception_id: int) -> store.ExceptionRow:
    """`exceptions show ID`."""
    got = await run(db, store.EXCEPTIONS, {"id": int(exception_id)}, "", 1)
    if not got.rows:
        raise NotFound(f"no exception {exception_id}", reason="EXCEPTION_NOT_FOUND")
    return got.rows[0]


async def list_alerts(db: Any, *, kind: str | None = None, open_: bool | None = None, page_token: str = "",
                      page_size_: int = 0) -> PageResult:
    """Monitoring alerts (R32) and temporary-number expiry warnings (R12)."""
    filters = {"kind": kind.upper() if kind else None, "open": open_}
    return await run(db, store.ALERTS, filters, page_token, page_size(page_size_))


CALLBACK_STATUSES = ("pending", "delivered", "exhausted")


async def list_callbacks(db: Any, *, status: str | None = None, client: str | None = None,
                         page_token: str = "", page_size_: int = 0) -> PageResult:
    """§7.3 callbacks: pending, delivered, exhausted; per client."""
    filters = {"status": choice(status, CALLBACK_STATUSES, "status")}
    return await _run_for_client(db, store.CALLBACKS, filters, client, page_token, page_size(page_size_))
