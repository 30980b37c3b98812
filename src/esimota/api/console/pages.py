"""The console's read pages (R13): overview, tasks and a task's history, chips, numbers — all from service/ only."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any
from urllib.parse import quote

from aiohttp import web

from ...domain import lifecycle, provinces
from ...errors import NotFound
from ...service import dashboard, history, lists
from ...service.common import now
from . import manage
from .app import PREFIX, field, filters, fragment, lang, listed, notice, page, pool, redirect, select, t
from .html import Safe, bars_with_rate, hbars, join, table, tag, when

LIVE_OVERVIEW_MS = 5000
LIVE_TASK_MS = 1000


def state_name(request: web.Request, state: int | None) -> str:
    if not state:
        return ""
    s = lifecycle.CardState(state)
    return s.zh if lang(request) == "zh" else f"{s.zh} {s.name.replace('_', ' ').lower()}"


def badge(request: web.Request, state: int) -> Safe:
    return tag("span", state_name(request, state), class_=f"badge s{state}", data_state=state)


def link(href: str, text: Any) -> Safe:
    return tag("a", text, href=PREFIX + href)


def state_options(request: web.Request) -> list[tuple[str, str]]:
    return [(str(int(s)), state_name(request, int(s))) for s in lifecycle.CardState]


def province_options() -> list[tuple[str, str]]:
    return [(code, f"{code} {name}") for code, name in provinces.PROVINCES.items()]


# -- overview -----------------------------------------------------------------------------------------
OVERVIEW_TTL = 4.0  # seconds one worker reuses the overview's figures: many open tabs cost one set of queries
OVERVIEW_CACHE = web.AppKey("console_overview", dict)


async def overview(request: web.Request) -> web.Response:
    cache = request.app[OVERVIEW_CACHE]
    key, clock = lang(request), time.monotonic()
    if key not in cache or cache[key][0] < clock:
        cache[key] = (clock + OVERVIEW_TTL, await _overview_body(request))
    body = cache[key][1]
    if request.query.get("fragment"):
        return fragment(body)
    live = tag("div", body, id="live", data_live=f"{PREFIX}/?fragment=1", data_every=LIVE_OVERVIEW_MS)
    return page(request, t(request, "overview"), notice(request), live)


async def _overview_body(request: web.Request) -> Safe:
    db = pool(request)
    states = await dashboard.cards_by_state(db)
    pending = await lists.list_callbacks(db, status="pending", page_size_=1)
    exhausted = await lists.list_callbacks(db, status="exhausted", page_size_=1)
    soon = (now() + dt.timedelta(days=30)).date().isoformat()
    expiring = await lists.list_chips(db, expiring_before=soon, page_size_=20)
    legend = (t(request, "succeeded"), t(request, "failed"), t(request, "success_rate"))
    charts = tag("div", bars_with_rate(t(request, "writes_24h"), await dashboard.writes(db, hours=24), legend,
                                       id="chart-24h"),
                 bars_with_rate(t(request, "writes_30d"), await dashboard.writes(db, days=30), legend,
                                id="chart-30d"), class_="grid")
    cards = tag("div", [tag("div", badge(request, s), tag("b", n, id=f"state-{s}"), class_="stat")
                        for s, n in states.items()],
                tag("div", t(request, "callbacks"), " ", t(request, "pending"), tag("b", pending.total, id="cb-pending"),
                    class_="stat"),
                tag("div", t(request, "callbacks"), " ", t(request, "exhausted"),
                    tag("b", exhausted.total, id="cb-exhausted"), class_="stat"), class_="cards")
    bars = hbars(t(request, "cards_by_state"), [(state_name(request, s), n) for s, n in states.items()],
                 id="chart-states")
    exc = await dashboard.open_exceptions(db, 20)
    return join([cards, charts, tag("div", bars, _exceptions_section(request, exc), class_="grid"),
                 _expiring_section(request, expiring)])


def _exceptions_section(request: web.Request, rows: list) -> Safe:
    body = table([t(request, "deadline"), t(request, "kind"), t(request, "severity"), t(request, "eid"),
                  t(request, "opened")],
                 [[tag("span", when(r.deadline_at), " ", tag("span", t(request, "overdue"), class_="badge overdue")
                       if r.overdue else ""),
                   link(f"/exceptions/{r.id}", r.kind), tag("span", t(request, r.severity), class_=f"badge {r.severity}"),
                   r.eid or "", when(r.opened_at)] for r in rows], id="open-exceptions")
    return tag("section", tag("h2", t(request, "open_exceptions")), body)


def _expiring_section(request: web.Request, got: Any) -> Safe:
    rows = [[link(f"/chips/{r.eid}", r.eid), r.temp_msisdn, r.network_type, r.temp_expires_on.isoformat(),
             badge(request, r.state)] for r in got.rows]
    return tag("section", tag("h2", t(request, "expiring"), f" ({got.total})"),
               table([t(request, "eid"), t(request, "temp_msisdn"), t(request, "network_type"),
                      t(request, "expires_on"), t(request, "state")], rows, id="expiring"))


# -- tasks ------------------------------------------------------------------------------------------
async def tasks(request: web.Request) -> web.Response:
    q = request.query
    if q.get("task"):
        return redirect(f"{PREFIX}/tasks/{quote(q['task'].strip(), safe='')}")
    got = await lists.list_tasks(pool(request), state_=q.get("state") or None, client=q.get("client") or None,
                                 province=q.get("province") or None, since=q.get("since") or None,
                                 until=q.get("until") or None, eid=(q.get("eid") or "").strip() or None,
                                 page_token=q.get("page_token", ""), page_size_=50)
    form = filters(request, field(request, "eid", "eid", q.get("eid"), id="q-eid", size=34),
               field(request, "task_id", "task", q.get("task")),
               select(request, "state", "state", state_options(request), q.get("state")),
               field(request, "client", "client", q.get("client")),
               select(request, "province", "province", province_options(), q.get("province")),
               field(request, "since", "since", q.get("since"), type="date"),
               field(request, "until", "until", q.get("until"), type="date"),
               button_id="search")
    rows = [[link(f"/tasks/{r.task_id}", r.task_id), link(f"/chips/{r.eid}", r.eid), badge(request, r.state),
             _progress(r.state, r.script_acked, r.script_total, r.script_done), r.client_name,
             r.province_code or "", r.msisdn, when(r.created_at), when(r.write_time)] for r in got.rows]
    result = table([t(request, "task_id"), t(request, "eid"), t(request, "state"), t(request, "progress"),
                    t(request, "client"), t(request, "province"), t(request, "msisdn"), t(request, "created"),
                    t(request, "write_time")], rows, id="tasks")
    return page(request, t(request, "tasks"), form, listed(request, got, result))


def _progress(state: int, acked: int, total: int, done: bool) -> Safe:
    value = lifecycle.progress(state, acked, total, done)
    return tag("span", tag("progress", f"{value}%", value=value, max=100), f" {value}%", data_progress=value)


async def task(request: web.Request) -> web.Response:
    ref = request.match_info["ref"]
    h = await history.task_history(pool(request), ref)
    body = _task_body(request, h)
    if request.query.get("fragment"):
        return fragment(body)
    live = tag("div", body, id="live", data_live=f"{PREFIX}/tasks/{h.task['task_id']}?fragment=1",
               data_every=LIVE_TASK_MS)
    return page(request, f"{t(request, 'task')} {h.task['task_id']}", live)


def _task_body(request: web.Request, h: history.History) -> Safe:
    tk = h.task
    head = tag("div", tag("span", badge(request, tk["state"]), class_="state-big", id="task-state"),
               tag("div", _progress(tk["state"], tk["script_acked"], tk["script_total"], tk["script_done"]),
                   class_="big", id="task-progress"), class_="card")
    facts = [("eid", link(f"/chips/{tk['eid']}", tk["eid"])), ("client", tk["client_id"]),
             ("write_type", t(request, "designated" if tk["write_type"] == 0 else "auto")),
             ("province", tk["province_code"] or ""), ("iccid", tk["iccid"]), ("msisdn", tk["msisdn"]),
             ("created", when(tk["created_at"])), ("write_time", when(tk["write_time"])),
             ("diagnostic", tk["diagnostic"] or "")]
    kv = tag("dl", [join([tag("dt", t(request, k)), tag("dd", v)]) for k, v in facts], class_="kv card")
    events = table([t(request, "at"), t(request, "operation"), t(request, "from_to"), t(request, "actor"),
                    t(request, "reason")],
                   [[when(e.at), e.operation, f"{state_name(request, e.from_state)} → {state_name(request, e.to_state)}",
                     e.actor, e.reason or ""] for e in h.events], id="events")
    sessions = table([t(request, "started"), t(request, "ended"), t(request, "end_event"), t(request, "frames"),
                      t(request, "bytes"), t(request, "resumed")],
                     [[when(s.started_at), when(s.ended_at), s.end_event or "", s.frames, s.bytes,
                       t(request, "yes" if s.resumed else "no")] for s in h.sessions], id="sessions")
    attempts = table([t(request, "at"), "event_id", t(request, "http_status"), t(request, "outcome"),
                      t(request, "detail")],
                     [[when(a.at), a.event_id, a.http_status or "", a.outcome, a.detail or ""]
                      for a in h.callback_attempts], id="callback-attempts")
    return join([tag("div", head, kv, class_="grid"), tag("h2", t(request, "timeline")), events,
                 tag("h2", t(request, "sessions")), sessions, tag("h2", t(request, "callback_attempts")), attempts])


# -- chips ------------------------------------------------------------------------------------------
async def chips(request: web.Request) -> web.Response:
    q = request.query
    if q.get("eid"):
        return redirect(f"{PREFIX}/chips/{quote(q['eid'].strip(), safe='')}")
    db = pool(request)
    batches = await dashboard.batch_progress(db)
    progress = table([t(request, "batch"), t(request, "chips"), t(request, "produced"), t(request, "delivered"),
                      t(request, "written")],
                     [[b["batch"], b["chips"], _share(b["produced"], b["chips"]), _share(b["delivered"], b["chips"]),
                       _share(b["written"], b["chips"])] for b in batches], id="batches")
    got = await lists.list_chips(db, state_=q.get("state") or None, batch=q.get("batch") or None,
                                 client=q.get("client") or None, page_token=q.get("page_token", ""), page_size_=50)
    form = filters(request, field(request, "eid", "eid", "", size=34),
               select(request, "state", "state", state_options(request), q.get("state")),
               field(request, "batch", "batch", q.get("batch")), field(request, "client", "client", q.get("client")))
    rows = [[link(f"/chips/{r.eid}", r.eid), r.batch, r.chip_model, badge(request, r.state), r.temp_msisdn,
             r.temp_expires_on.isoformat(), t(request, r.production_status), t(request, r.logistics_status),
             r.client_id or ""]
            for r in got.rows]
    listing = table([t(request, "eid"), t(request, "batch"), t(request, "chip_model"), t(request, "state"),
                     t(request, "temp_msisdn"), t(request, "expires_on"), t(request, "production"),
                     t(request, "logistics"), t(request, "allocated_to")], rows, id="chips")
    return page(request, t(request, "chips"), notice(request), tag("h2", t(request, "batches")), progress,
                manage.allocate_chips_form(request), form, listed(request, got, listing))


def _share(part: int, whole: int) -> Safe:
    value = round(100 * part / whole) if whole else 0
    return tag("span", tag("progress", f"{value}%", value=value, max=100), f" {part}/{whole}")


async def chip(request: web.Request) -> web.Response:
    c = await dashboard.chip(pool(request), request.match_info["eid"])
    facts = [("eid", c.eid), ("batch", c.batch), ("chip_model", c.chip_model), ("imei", c.imei or ""),
             ("state", badge(request, c.state)), ("temp_iccid", c.temp_iccid), ("temp_msisdn", c.temp_msisdn),
             ("network_type", c.network_type), ("open_time", c.open_time.isoformat()),
             ("expires_on", c.temp_expires_on.isoformat()), ("production", t(request, c.production_status)),
             ("logistics", t(request, c.logistics_status)), ("allocated_to", c.client_id or ""),
             ("active_iccid", c.active_iccid or ""), ("remaining_flow", f"{c.remaining_flow_bytes / 1048576:.2f} MB")]
    kv = tag("dl", [join([tag("dt", t(request, k)), tag("dd", v, id=f"chip-{k}")]) for k, v in facts],
             class_="kv card")
    try:
        latest = await history.task_history(pool(request), c.eid)
        last = tag("p", t(request, "task"), ": ", link(f"/tasks/{latest.task['task_id']}", latest.task["task_id"]))
    except NotFound:
        last = Safe("")
    return page(request, f"{t(request, 'chip')} {c.eid}", tag("h2", t(request, "sim_info")), kv, last)


# -- numbers ----------------------------------------------------------------------------------------
async def numbers(request: web.Request) -> web.Response:
    q = request.query
    db = pool(request)
    inventory = await dashboard.number_inventory(db)
    statuses = lists.NUMBER_STATUSES
    inv = table([t(request, "province")] + [t(request, st) for st in statuses],
                [[f"{code} {provinces.PROVINCES.get(code, '')}"] + [by.get(s, 0) for s in statuses]
                 for code, by in sorted(inventory.items())], id="inventory")
    got = await lists.list_numbers(db, province=q.get("province") or None, status=q.get("status") or None,
                                   client=q.get("client") or None, page_token=q.get("page_token", ""),
                                   page_size_=50)
    form = filters(request, select(request, "province", "province", province_options(), q.get("province")),
               select(request, "status", "status", [(st, t(request, st)) for st in statuses], q.get("status")),
               field(request, "client", "client", q.get("client")))
    rows = [[r.msisdn, r.iccid, r.province_code, t(request, r.status), r.client_id or "", r.eid or "",
             f"{r.used_flow_mb:.1f} / {r.monthly_quota_mb:.0f} MB"] for r in got.rows]
    listing = table([t(request, "msisdn"), t(request, "iccid"), t(request, "province"), t(request, "status"),
                     t(request, "client"), t(request, "eid"), "MB"], rows, id="numbers")
    return page(request, t(request, "numbers"), notice(request), tag("h2", t(request, "inventory")), inv,
                manage.allocate_numbers_form(request), form, listed(request, got, listing))


def register(app: web.Application) -> None:
    """The console's routes (given to app.create_app by server.py)."""
    app[OVERVIEW_CACHE] = {}
    app.router.add_get("/", overview)
    app.router.add_get("/tasks", tasks)
    app.router.add_get("/tasks/{ref}", task)
    app.router.add_get("/chips", chips)
    app.router.add_get("/chips/{eid}", chip)
    app.router.add_get("/numbers", numbers)
    manage.register(app)

