"""`esimota tasks|chips|numbers|clients|exceptions|alerts|callbacks list`, `tasks show`, `exceptions show`,
`chips reprovision` (DESIGN §7; R1, R12, R13): find anything, each checked against staff roles (R28)."""

from __future__ import annotations

import argparse
from dataclasses import asdict
from typing import Any, Awaitable, Callable

from ..domain.lifecycle import CardState, progress
from ..errors import InvalidArgument
from .common import as_staff, emit, run_async
from .listing import list_flags, print_record, print_rows

Lister = Callable[..., Awaitable[Any]]

TASK_COLUMNS = ("task_id", "eid", "client_id", "state", "status_desc", "progress", "write_type", "province_code",
                "msisdn", "batch", "project", "created_at", "write_time")
CHIP_COLUMNS = ("eid", "state", "status_desc", "batch", "client_id", "project", "temp_msisdn", "temp_expires_on",
                "network_type", "production_status", "logistics_status")
NUMBER_COLUMNS = ("msisdn", "iccid", "province_code", "status", "client_id", "eid", "monthly_quota_mb",
                  "used_flow_mb")
CLIENT_COLUMNS = ("client_id", "name", "phone", "permissions", "rate_limit_per_min", "disabled", "created_at")
EXCEPTION_COLUMNS = ("id", "category", "severity", "kind", "eid", "task_id", "opened_at", "deadline_at",
                     "closed_at", "overdue")
ALERT_COLUMNS = ("id", "kind", "severity", "subject", "detail", "opened_at", "closed_at", "notified_at")
CALLBACK_COLUMNS = ("event_id", "task_id", "eid", "client_id", "status", "attempts", "next_attempt_at",
                    "last_error")


def _with_status(row: Any) -> dict:
    """A row as a dict, with the 中文 name of its state (and a task's derived progress, DESIGN §3)."""
    out = asdict(row)
    out["status_desc"] = CardState(out["state"]).zh
    if "script_total" in out:
        out["progress"] = progress(CardState(out["state"]), out["script_acked"], out["script_total"],
                                   out["script_done"])
    return out


async def collect(pool: Any, lister: Lister, limit: int, **filters: Any) -> tuple[list, int]:
    """Walk the pages of a list until `limit` rows (the service pages; the CLI only stops)."""
    if limit <= 0:
        raise InvalidArgument("--limit must be positive", reason="LIMIT_INVALID")
    rows: list = []
    token, total = "", 0
    while len(rows) < limit:
        page = await lister(pool, page_token=token, page_size_=min(1000, limit - len(rows)), **filters)
        rows += page.rows
        total, token = page.total, page.next_page_token
        if not token:
            break
    return rows[:limit], total


def _tristate(p: argparse.ArgumentParser, name: str, yes: str, no: str) -> None:
    """--NAME / --no-NAME: only those, or only the others; neither: all."""
    p.add_argument(f"--{name}", dest=name, action="store_const", const=True, default=None, help=yes)
    p.add_argument(f"--no-{name}", dest=name, action="store_const", const=False, help=no)


def _lister(action: str, fn_name: str, columns: tuple, filters: Callable[[argparse.Namespace], dict],
            shape: Callable[[Any], dict] = asdict) -> Callable[[argparse.Namespace], int]:
    async def body(args: argparse.Namespace) -> int:
        from ..service import lists

        async def run(pool, _actor):
            return await collect(pool, getattr(lists, fn_name), args.limit, **filters(args))
        rows, total = await as_staff(args, action, run)
        print_rows(args, columns, [shape(r) for r in rows], total=total)
        return 0
    return run_async(body)


async def _task_show(args: argparse.Namespace) -> int:
    from ..service import history

    async def run(pool, _actor):
        return await history.task_history(pool, args.ref)
    h = await as_staff(args, "chip.read", run)
    task = dict(h.task)
    task.pop("id", None)
    task.pop("client_pk", None)
    task["status_desc"] = CardState(task["state"]).zh
    task["progress"] = progress(CardState(task["state"]), task["script_acked"], task["script_total"],
                                task["script_done"])
    print_record(args, task, {
        "events": (("at", "operation", "from_state", "to_state", "actor", "reason"), [asdict(e) for e in h.events]),
        "sessions": (("started_at", "ended_at", "resumed", "end_event", "close_reason", "frames", "bytes"),
                     [asdict(s) for s in h.sessions]),
        "callback_attempts": (("at", "event_id", "http_status", "outcome", "detail"),
                              [asdict(a) for a in h.callback_attempts])})
    return 0


async def _exception_show(args: argparse.Namespace) -> int:
    from ..service import lists

    async def run(pool, _actor):
        return await lists.get_exception(pool, args.id)
    print_record(args, asdict(await as_staff(args, "exception.read", run)), {})
    return 0


async def _reprovision(args: argparse.Namespace) -> int:
    from ..service import temp_numbers

    async def run(pool, actor):
        return await temp_numbers.reprovision(pool, args.eid, temp_iccid=args.temp_iccid,
                                              temp_msisdn=args.temp_msisdn, open_time=args.open_time, actor=actor)
    row = await as_staff(args, "chip.manage", run)
    emit(args, {"ok": True, **{k: str(v) if v is not None else None for k, v in asdict(row).items()}},
         f"chip {row.eid}: temporary number {row.temp_msisdn} ({row.temp_iccid}), expires on {row.temp_expires_on}")
    return 0


def add_chip_commands(actions: Any) -> None:
    """`chips list` and `chips reprovision`, added to the `chips` group of cli/chips.py."""
    p = list_flags(actions.add_parser("list", help="find chips"))
    p.add_argument("--state", type=int, help="1..6 (§6.3 table 2)")
    p.add_argument("--batch")
    p.add_argument("--client", help="allocated to this client (id or name)")
    p.add_argument("--project")
    p.add_argument("--production-status")
    p.add_argument("--logistics-status")
    p.add_argument("--expiring-before", metavar="DATE", help="temporary number expiring before DATE (R12)")
    p.set_defaults(func=_lister("chip.read", "list_chips", CHIP_COLUMNS, lambda a: dict(
        state_=a.state, batch=a.batch, client=a.client, project=a.project, production_status=a.production_status,
        logistics_status=a.logistics_status, expiring_before=a.expiring_before), _with_status))
    r = actions.add_parser("reprovision", help="a new temporary number for a chip whose number expired (R12)")
    r.add_argument("eid")
    r.add_argument("--temp-iccid", required=True)
    r.add_argument("--temp-msisdn", required=True)
    r.add_argument("--open-time", required=True, metavar="DATE")
    _show_flags(r)
    r.set_defaults(func=run_async(_reprovision))


def add_number_commands(actions: Any) -> None:
    """`numbers list`, added to the `numbers` group of cli/chips.py."""
    p = list_flags(actions.add_parser("list", help="find operational numbers"))
    p.add_argument("--province", help="GB/T 2260 code")
    p.add_argument("--status", choices=("available", "allocated", "reserved", "bound"))
    p.add_argument("--client", help="id or name")
    p.set_defaults(func=_lister("chip.read", "list_numbers", NUMBER_COLUMNS, lambda a: dict(
        province=a.province, status=a.status, client=a.client)))


def register(sub) -> None:
    """Add tasks, clients, exceptions, alerts and callbacks to the `esimota` command (DESIGN §7)."""
    for group in (_tasks, _clients, _exceptions, _alerts, _callbacks):
        group(sub)


def _show_flags(p: argparse.ArgumentParser) -> None:
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--as", dest="as_", default=None, help="staff username (default: ESIMOTA_STAFF)")


def _tasks(sub) -> None:
    tasks = sub.add_parser("tasks", help="write tasks: find them, show one's history")
    acts = tasks.add_subparsers(dest="tasks_action", metavar="ACTION", required=True)
    p = list_flags(acts.add_parser("list", help="find write tasks, newest first"))
    p.add_argument("--state", type=int, help="1..6 (§6.3 table 2)")
    p.add_argument("--client", help="id or name")
    p.add_argument("--province", help="GB/T 2260 code")
    p.add_argument("--batch")
    p.add_argument("--project")
    p.add_argument("--since", help="created at or after (ISO 8601)")
    p.add_argument("--until", help="created before (ISO 8601)")
    p.add_argument("--eid")
    p.set_defaults(func=_lister("chip.read", "list_tasks", TASK_COLUMNS, lambda a: dict(
        state_=a.state, client=a.client, province=a.province, batch=a.batch, project=a.project, since=a.since,
        until=a.until, eid=a.eid), _with_status))
    show = acts.add_parser("show", help="a write's history: events, channel sessions, callback attempts (R1)")
    show.add_argument("ref", metavar="TASK_ID|EID")
    _show_flags(show)
    show.set_defaults(func=run_async(_task_show))


def _clients(sub) -> None:
    clients = sub.add_parser("clients", help="find client accounts")
    p = list_flags(clients.add_subparsers(dest="clients_action", metavar="ACTION", required=True)
                   .add_parser("list", help="client accounts (no secrets)"))
    _tristate(p, "disabled", "only disabled clients", "only active clients")
    p.add_argument("--name", help="part of the name")
    p.set_defaults(func=_lister("chip.read", "list_clients", CLIENT_COLUMNS,
                                lambda a: dict(disabled=a.disabled, name=a.name)))


def _exceptions(sub) -> None:
    exc = sub.add_parser("exceptions", help="exceptions of §8: find them, show one")
    acts = exc.add_subparsers(dest="exceptions_action", metavar="ACTION", required=True)
    p = list_flags(acts.add_parser("list", help="find exceptions, newest first"))
    _tristate(p, "open", "only open ones", "only closed ones")
    p.add_argument("--class", dest="category", choices=("apply", "write", "interface", "terminal"))
    p.add_argument("--severity", choices=("general", "severe"))
    _tristate(p, "overdue", "past their handling deadline", "within it")
    p.set_defaults(func=_lister("exception.read", "list_exceptions", EXCEPTION_COLUMNS, lambda a: dict(
        open_=a.open, category=a.category, severity=a.severity, overdue=a.overdue)))
    show = acts.add_parser("show", help="one exception")
    show.add_argument("id", type=int)
    _show_flags(show)
    show.set_defaults(func=run_async(_exception_show))


def _alerts(sub) -> None:
    alerts = sub.add_parser("alerts", help="monitoring alerts (R32) and expiry warnings (R12)")
    p = list_flags(alerts.add_subparsers(dest="alerts_action", metavar="ACTION", required=True)
                   .add_parser("list", help="find alerts, newest first"))
    p.add_argument("--kind", help="e.g. TEMP_NUMBER_EXPIRING, CARD_DEVICE_SEPARATION, QUOTA_EXCEEDED")
    _tristate(p, "open", "only open ones", "only closed ones")
    p.set_defaults(func=_lister("exception.read", "list_alerts", ALERT_COLUMNS,
                                lambda a: dict(kind=a.kind, open_=a.open)))


def _callbacks(sub) -> None:
    cbs = sub.add_parser("callbacks", help="§7.3 callbacks")
    p = list_flags(cbs.add_subparsers(dest="callbacks_action", metavar="ACTION", required=True)
                   .add_parser("list", help="find callbacks, newest first"))
    p.add_argument("--status", choices=("pending", "delivered", "exhausted"))
    p.add_argument("--client", help="id or name")
    p.set_defaults(func=_lister("exception.read", "list_callbacks", CALLBACK_COLUMNS,
                                lambda a: dict(status=a.status, client=a.client)))
