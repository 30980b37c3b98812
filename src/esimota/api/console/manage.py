"""The console's pages that change things (exceptions, clients, allocation) and the reviewers' pages (quality
indicators, exception review, audit log). Each change is checked against the account's roles server-side and
audited under the staff member (R28): a form the page did not show is refused all the same."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from aiohttp import web

from ...service import admin, dashboard, lists, ops, reports
from .app import (PREFIX, authorize, field, filters, listed, next_link, notice, page, pool, post_form, redirect,
                  require, select, session, t)
from .html import Safe, join, lines, pct, table, tag, when


def _area(request: web.Request, key: str, name: str, **attrs: Any) -> Safe:
    return tag("label", t(request, key), tag("textarea", name=name, **attrs))


def _done(path: str, message: str) -> web.Response:
    return redirect(f"{PREFIX}{path}?done={quote(message)}")


def _lines(text: str) -> list[str]:
    return [ln.strip() for ln in (text or "").splitlines() if ln.strip()]


# -- allocation (§6.2.1.1 分配数据资源) ----------------------------------------------------------------
def allocate_chips_form(request: web.Request, client: str = "") -> Safe:
    """分配数据资源 (§6.2.1.1): EIDs (one a line) or a whole batch to one client; for admins and operators."""
    if not session(request).may("resources.import"):
        return Safe("")
    return tag("details", tag("summary", t(request, "allocate_chips")), post_form(
        request, f"{PREFIX}/chips/allocate", field(request, "client", "client", client, required=True),
        _area(request, "eids", "eids"), field(request, "batch", "batch"),
        tag("button", t(request, "allocate"), type="submit"), class_="stack"), class_="card")


async def allocate_chips(request: web.Request) -> web.Response:
    actor = await authorize(request, "resources.import")
    form = await request.post()
    done = await admin.allocate_chips(pool(request), str(form.get("client", "")), _lines(str(form.get("eids", ""))),
                                      batch=str(form.get("batch", "")).strip() or None, actor=actor)
    return _done("/chips", f"{len(done)} chip(s) → {form.get('client')}")


def allocate_numbers_form(request: web.Request) -> Safe:
    if not session(request).may("resources.import"):
        return Safe("")
    return tag("details", tag("summary", t(request, "allocate_numbers")), post_form(
        request, f"{PREFIX}/numbers/allocate", field(request, "client", "client", required=True),
        _area(request, "iccids", "iccids", required=True), tag("button", t(request, "allocate"), type="submit"),
        class_="stack"), class_="card")


async def allocate_numbers(request: web.Request) -> web.Response:
    actor = await authorize(request, "resources.import")
    form = await request.post()
    done = await admin.allocate_numbers(pool(request), str(form.get("client", "")),
                                        _lines(str(form.get("iccids", ""))), actor=actor)
    return _done("/numbers", f"{len(done)} number(s) → {form.get('client')}")


# -- exceptions (§8, R22–R24) -----------------------------------------------------------------------
def _flag(value: str | None) -> bool | None:
    return {"1": True, "0": False}.get(value or "")


async def exceptions(request: web.Request) -> web.Response:
    q = request.query
    got = await lists.list_exceptions(pool(request), open_=_flag(q.get("open", "1")), category=q.get("class") or None,
                                      severity=q.get("severity") or None, overdue=_flag(q.get("overdue")),
                                      page_token=q.get("page_token", ""), page_size_=50)
    yes_no = [("1", t(request, "yes")), ("0", t(request, "no"))]
    form = filters(request, select(request, "open", "open", yes_no, q.get("open", "1")),
               select(request, "class", "class", [(c, c) for c in lists.CATEGORIES], q.get("class")),
               select(request, "severity", "severity", [(s, t(request, s)) for s in lists.SEVERITIES],
                       q.get("severity")),
               select(request, "overdue", "overdue", yes_no, q.get("overdue")), button="apply")
    rows = [[tag("a", r.id, href=f"{PREFIX}/exceptions/{r.id}"), r.kind, r.category,
             tag("span", t(request, r.severity), class_=f"badge {r.severity}"), r.eid or "",
             when(r.opened_at), tag("span", when(r.deadline_at), " ", tag("span", t(request, "overdue"),
                                                                      class_="badge overdue") if r.overdue else ""),
             when(r.closed_at), tag("span", r.detail or "", class_="wrap")] for r in got.rows]
    listing = table(["#", t(request, "kind"), t(request, "class"), t(request, "severity"), t(request, "eid"),
                     t(request, "opened"), t(request, "deadline"), t(request, "closed"), t(request, "detail")],
                    rows, id="exceptions")
    return page(request, t(request, "exceptions"), notice(request), form, listed(request, got, listing))


async def exception(request: web.Request) -> web.Response:
    e = await lists.get_exception(pool(request), int(request.match_info["id"]))
    facts = [("kind", e.kind), ("class", e.category), ("severity", t(request, e.severity)),
             ("eid", tag("a", e.eid, href=f"{PREFIX}/chips/{e.eid}") if e.eid else ""),
             ("task_id", tag("a", e.task_id, href=f"{PREFIX}/tasks/{e.task_id}") if e.task_id else ""),
             ("client", e.client_id or ""), ("opened", when(e.opened_at)),
             ("deadline", when(e.deadline_at)), ("reported", when(e.reported_at)), ("closed", when(e.closed_at)),
             ("closed_by", e.closed_by or ""), ("resolution", e.resolution or ""), ("detail", e.detail or "")]
    kv = tag("dl", [join([tag("dt", t(request, k)), tag("dd", v)]) for k, v in facts], class_="kv card")
    actions: list[Safe] = []
    if e.closed_at is None and session(request).may("exception.handle"):
        if e.severity == "severe" and e.reported_at is None:
            actions.append(post_form(request, f"{PREFIX}/exceptions/{e.id}/reported",
                                     tag("button", t(request, "mark_reported"), type="submit", id="reported")))
        actions.append(post_form(request, f"{PREFIX}/exceptions/{e.id}/close",
                                 _area(request, "resolution", "resolution", required=True, id="resolution"),
                                 _area(request, "report", "report", id="report"),
                                 tag("button", t(request, "close"), type="submit", id="close"), class_="stack",
                                 id="close-form"))
    return page(request, f"{t(request, 'exception')} #{e.id}", notice(request), kv, *actions)


async def close_exception(request: web.Request) -> web.Response:
    actor = await authorize(request, "exception.handle")
    form = await request.post()
    exception_id = int(request.match_info["id"])
    await ops.close(pool(request), exception_id, actor, str(form.get("resolution", "")),
                    str(form.get("report", "")).strip() or None)
    return _done(f"/exceptions/{exception_id}", t(request, "done"))


async def mark_reported(request: web.Request) -> web.Response:
    actor = await authorize(request, "exception.handle")
    exception_id = int(request.match_info["id"])
    await ops.mark_reported(pool(request), exception_id, actor)
    return _done(f"/exceptions/{exception_id}", t(request, "done"))


# -- clients (§6.2.1.1, R15, R31: administrators only) ----------------------------------------------
async def clients(request: web.Request) -> web.Response:
    got = await lists.list_clients(pool(request), name=request.query.get("name") or None,
                                   page_token=request.query.get("page_token", ""), page_size_=50)
    rows = [[tag("a", c.name, href=f"{PREFIX}/clients/{c.client_id}"), c.client_id, c.phone,
             ", ".join(c.permissions), tag("span", ", ".join(c.ip_whitelist), class_="wrap"),
             tag("span", c.callback_url, class_="wrap"), c.rate_limit_per_min,
             t(request, "disabled") if c.disabled else "", when(c.created_at)] for c in got.rows]
    listing = table([t(request, "name"), "client_id", t(request, "phone"), t(request, "permissions"),
                     t(request, "ip"), t(request, "callback_url"), t(request, "rate_limit"), t(request, "status"),
                     t(request, "created")], rows, id="clients")
    create = Safe("")
    if session(request).may("client.manage"):
        create = tag("details", tag("summary", t(request, "create_client")), post_form(
            request, f"{PREFIX}/clients", field(request, "name", "name", required=True),
            field(request, "phone", "phone", required=True), field(request, "ip", "ip", required=True),
            field(request, "callback_url", "callback_url", required=True),
            field(request, "permissions", "permissions", "write,chip,number"),
            field(request, "rate_limit", "rate_limit", "600", type="number", min=1),
            tag("button", t(request, "create"), type="submit"), class_="stack"), class_="card")
    return page(request, t(request, "clients"), notice(request), create, listing,
                next_link(request, got.next_page_token))


def _secrets(request: web.Request, client_id: str, values: dict[str, str]) -> web.Response:
    """The secrets, this once (R15, R17): the answer to the POST itself, never stored, never in a URL."""
    kv = tag("dl", [join([tag("dt", k), tag("dd", tag("span", v, class_="secret", id=k))]) for k, v in values.items()],
             class_="kv card")
    return page(request, client_id, tag("p", t(request, "secrets_once"), class_="notice"), kv,
                tag("p", tag("a", client_id, href=f"{PREFIX}/clients/{client_id}")))


async def create_client(request: web.Request) -> web.Response:
    actor = await authorize(request, "client.manage")
    f = await request.post()
    try:
        rate = int(str(f.get("rate_limit") or 600))
    except ValueError:
        rate = 0
    new = await admin.create_client(pool(request), name=str(f.get("name", "")), phone=str(f.get("phone", "")),
                                    ip=str(f.get("ip", "")), callback_url=str(f.get("callback_url", "")),
                                    permissions=str(f.get("permissions") or "write,chip,number"),
                                    rate_limit_per_min=rate, actor=actor)
    return _secrets(request, new.client.client_id, {"client_id": new.client.client_id,
                                                    "client_secret": new.client_secret,
                                                    "callback_secret": new.callback_secret})


async def client_page(request: web.Request) -> web.Response:
    client_id = request.match_info["client_id"]
    c = await dashboard.client(pool(request), client_id)
    facts = [("name", c.name), ("phone", c.phone), ("permissions", ", ".join(c.permissions)),
             ("ip", ", ".join(c.ip_whitelist)), ("callback_url", c.callback_url),
             ("rate_limit", c.rate_limit_per_min), ("status", t(request, "disabled") if c.disabled else "")]
    kv = tag("dl", [join([tag("dt", t(request, k)), tag("dd", v)]) for k, v in facts], class_="kv card")
    forms: list[Safe] = []
    if session(request).may("client.manage") and not c.disabled:
        base = f"{PREFIX}/clients/{c.client_id}"
        forms = [post_form(request, f"{base}/whitelist", field(request, "ip", "ip", ", ".join(c.ip_whitelist)),
                           tag("button", t(request, "save"), type="submit"), class_="filters"),
                 post_form(request, f"{base}/permissions",
                           field(request, "permissions", "permissions", ",".join(c.permissions)),
                           tag("button", t(request, "save"), type="submit"), class_="filters"),
                 post_form(request, f"{base}/rotate", tag("button", t(request, "rotate"), type="submit"),
                           class_="inline"), " ",
                 post_form(request, f"{base}/rotate-callback",
                           tag("button", t(request, "rotate_callback"), type="submit"), class_="inline"), " ",
                 post_form(request, f"{base}/disable", tag("button", t(request, "disable"), type="submit",
                                                           class_="danger"),
                           class_="inline", data_confirm=t(request, "disable") + "?")]
    return page(request, f"{t(request, 'client')} {c.client_id}", notice(request), kv, tag("div", forms),
                allocate_chips_form(request, c.client_id) if not c.disabled else Safe(""))


async def client_change(request: web.Request) -> web.Response:
    actor = await authorize(request, "client.manage")
    client_id, what = request.match_info["client_id"], request.match_info["what"]
    f = await request.post()
    db = pool(request)
    if what == "whitelist":
        await admin.set_whitelist(db, client_id, str(f.get("ip", "")), actor=actor)
    elif what == "permissions":
        await admin.set_permissions(db, client_id, str(f.get("permissions", "")), actor=actor)
    elif what == "disable":
        await admin.disable_client(db, client_id, actor=actor)
    elif what in ("rotate", "rotate-callback"):
        callback = what == "rotate-callback"
        client, secret = await admin.rotate_secret(db, client_id, callback=callback, actor=actor)
        return _secrets(request, client.client_id, {"callback_secret" if callback else "client_secret": secret})
    else:
        raise web.HTTPNotFound()
    return _done(f"/clients/{client_id}", t(request, "done"))


# -- quality indicators (§10.3.1, R29) and the monthly exception review (§8.3.2, R24) ---------------
async def quality(request: web.Request) -> web.Response:
    require(request, "report.read")
    db = pool(request)
    months = await dashboard.quality_by_month(db, 6)
    labels = [m["month"] for m in months]
    chart = lines(t(request, "quality_monthly"), labels, [
        (t(request, "write_success_rate"), [m["writes"]["write_success_rate"] for m in months]),
        (t(request, "call_success_rate"), [m["interface"]["call_success_rate"] for m in months]),
        (t(request, "handled_in_time"), [m["exceptions"]["handled_in_time"] for m in months])],
        id="chart-quality", class_="lines")
    rows = [[m["month"], f"{m['writes']['succeeded']}/{m['writes']['finished']}",
             pct(m["writes"]["write_success_rate"]), pct(m["interface"]["call_success_rate"]),
             pct(m["exceptions"]["handled_in_time"])] for m in months]
    figures = table([t(request, "month"), t(request, "all_writes"), t(request, "write_success_rate"),
                     t(request, "call_success_rate"), t(request, "handled_in_time")], rows, id="quality")
    month = request.query.get("month") or labels[-1]
    start, end = reports.month_range(month)
    review = await reports.exception_review(db, start, end)
    return page(request, t(request, "quality"), chart, figures, _review(request, month, labels, review))


def _review(request: web.Request, month: str, labels: list[str], review: dict) -> Safe:
    form = filters(request, tag("label", t(request, "month"), tag("select", [
        tag("option", m, value=m, selected=(m == month)) for m in labels], name="month")), button="apply")
    rows = [[c["class_zh"], c["count"], "—" if c["per_1000_applies"] is None else c["per_1000_applies"],
             pct(c["handled_in_time"]), c["open"], c["severe"]] for c in review["classes"].values()]
    classes = table([t(request, "class"), t(request, "count"), t(request, "per_1000"), t(request, "handled_in_time"),
                     t(request, "open"), t(request, "severe")], rows, id="review")
    frequent = table([t(request, "kind"), t(request, "count"), ""],
                     [[f["kind"], f["count"], f["phenomenon"]] for f in review["frequent"]])
    return tag("section", tag("h2", t(request, "review"), " ", month), form,
               tag("p", t(request, "applies"), ": ", review["applies"], " · ", t(request, "exceptions"), ": ",
                   review["exceptions"], " · ", t(request, "handled_in_time"), ": ", pct(review["handled_in_time"])),
               classes, frequent)


# -- the audit log (R1, R28) --------------------------------------------------------------------------
async def audit(request: web.Request) -> web.Response:
    require(request, "audit.read")
    q = request.query
    before = int(q["before"]) if q.get("before", "").isdigit() else None
    rows = await dashboard.audit_log(pool(request), actor=q.get("actor") or None, action=q.get("action") or None,
                                     before=before)
    form = filters(request, field(request, "actor", "actor", q.get("actor")),
                   field(request, "action", "action", q.get("action")), button="apply")
    listing = table(["#", t(request, "at"), t(request, "actor"), t(request, "action"), t(request, "target"),
                     t(request, "detail")],
                    [[r["id"], when(r["at"]), r["actor"], r["action"], r["target"] or "",
                      tag("span", r["detail"], class_="wrap")] for r in rows], id="audit")
    more = Safe("")
    if len(rows) == dashboard.AUDIT_PAGE:
        query = {k: v for k, v in q.items() if k != "before"} | {"before": str(rows[-1]["id"])}
        more = tag("p", tag("a", t(request, "next_page"), href=str(request.rel_url.with_query(query))))
    return page(request, t(request, "audit"), form, listing, more)


def register(app: web.Application) -> None:
    app.router.add_post("/chips/allocate", allocate_chips)
    app.router.add_post("/numbers/allocate", allocate_numbers)
    app.router.add_get("/exceptions", exceptions)
    app.router.add_get("/exceptions/{id:\\d+}", exception)
    app.router.add_post("/exceptions/{id:\\d+}/close", close_exception)
    app.router.add_post("/exceptions/{id:\\d+}/reported", mark_reported)
    app.router.add_get("/clients", clients)
    app.router.add_post("/clients", create_client)
    app.router.add_get("/clients/{client_id}", client_page)
    app.router.add_post("/clients/{client_id}/{what}", client_change)
    app.router.add_get("/quality", quality)
    app.router.add_get("/audit", audit)
