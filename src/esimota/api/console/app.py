"""The console's aiohttp application, mounted at /console/ on the operations listener (DESIGN §6): sign-in,
sessions, CSRF, the page layout; the pages themselves are in pages.py and manage.py."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any, Awaitable, Callable

from aiohttp import web

from ...errors import EsimotaError, NotFound, PermissionDenied
from ...service import console_auth, staff
from ..addresses import CallerAddress
from ..status import outcome
from . import i18n
from .html import Safe, join, tag, void

STATIC = Path(__file__).resolve().parent / "static"
SESSION_COOKIE = "esimota_console"
SIGNIN_COOKIE = "esimota_signin"  # the sign-in form's CSRF token (double submit), before any session
PREFIX = "/console"
POOL = web.AppKey("console_pool", object)
ADDRESSES = web.AppKey("console_addresses", CallerAddress)
SESSION = "console_session"
# No inline script or style, nothing from elsewhere, never framed (the pages carry operators' actions).
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
       "frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def pool(request: web.Request) -> Any:
    return request.app[POOL]


def session(request: web.Request) -> console_auth.Session:
    return request[SESSION]


def lang(request: web.Request) -> str:
    return i18n.lang(request)


def t(request: web.Request, key: str) -> str:
    return i18n.t(lang(request), key)


def address(request: web.Request) -> str:
    """The caller, as the partner listeners see one (ESIMOTA_TRUSTED_PROXIES, api/addresses.py)."""
    addresses = request.app[ADDRESSES]
    header = addresses.header
    return addresses.resolve(request.remote or "", request.headers.getall(header, ()) if header else ())


def _cookie(resp: web.StreamResponse, name: str, value: str, **extra: Any) -> None:
    """HttpOnly, Secure, SameSite=Strict, the console's path only."""
    resp.set_cookie(name, value, path=PREFIX + "/", httponly=True, secure=True, samesite="Strict", **extra)


@web.middleware
async def _headers(request: web.Request, handler: Handler) -> web.StreamResponse:
    resp = await handler(request)
    resp.headers.setdefault("Content-Security-Policy", CSP)
    resp.headers["X-Content-Type-Options"] = "nosniff"
    resp.headers["Referrer-Policy"] = "same-origin"
    resp.headers["X-Frame-Options"] = "DENY"
    if not request.path.startswith(PREFIX + "/static/"):
        resp.headers["Cache-Control"] = "no-store"
    return resp


OPEN_PATHS = ("/signin", "/static/", "/lang")


@web.middleware
async def _no_such_page(request: web.Request, handler: Handler) -> web.StreamResponse:
    """A console URL that names no page is a page too: 404 in the console's layout, for the browser that
    asked (the JSON envelope stays with the API routes). Signed out, the sign-in comes first."""
    try:
        return await handler(request)
    except web.HTTPNotFound:
        return error_page(request, NotFound(f"no page {request.path}", reason="PAGE_NOT_FOUND"))


@web.middleware
async def _signed_in(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every page but sign-in needs a session; every POST needs its CSRF token too (R28)."""
    rel = request.path[len(PREFIX):]
    if any(rel.startswith(p) for p in OPEN_PATHS):
        return await handler(request)
    live = request.headers.get("X-Console-Live") == "1"
    sess = await console_auth.session(pool(request), request.cookies.get(SESSION_COOKIE), touch=not live)
    if sess is None:
        if live:
            return web.Response(status=401, text="signed out")
        return redirect(f"{PREFIX}/signin")
    request[SESSION] = sess
    if request.method == "POST":
        form = await request.post()
        try:
            _same_origin(request)
            console_auth.check_csrf(sess, form.get("csrf"))
        except PermissionDenied as exc:  # a forged or cross-site form: refused and traced (R1, R28)
            await console_auth.refused_form(pool(request), sess, request.path, request.headers.get("Origin"))
            return error_page(request, exc)
    try:
        return await handler(request)
    except EsimotaError as exc:
        return error_page(request, exc)


def _same_origin(request: web.Request) -> None:
    """A browser names the page a POST comes from; another site's is refused whatever else it carries."""
    origin = request.headers.get("Origin")
    if origin and origin != "null" and origin.split("://", 1)[-1] != request.host:
        raise PermissionDenied("a form of another site was refused", reason="CSRF_FAILED")


def require(request: web.Request, action: str) -> None:
    """Hide nothing server-side: an action the roles do not allow is refused here, whatever the page showed."""
    if not session(request).may(action):
        raise PermissionDenied(f"{session(request).username} may not {action}", reason="ROLE_FORBIDDEN")


async def authorize(request: web.Request, action: str) -> str:
    """The actor for the audit log, checked against the account as it is now (service/staff.authorize:
    a denial is audited, R28)."""
    return await staff.authorize(pool(request), session(request).username, action)


def csrf_field(request: web.Request) -> Safe:
    return void("input", type="hidden", name="csrf", value=session(request).csrf)


def post_form(request: web.Request, action: str, *body: Any, **attrs: Any) -> Safe:
    return tag("form", csrf_field(request), *body, method="post", action=action, **attrs)


def field(request: web.Request, key: str, name: str, value: Any = "", **attrs: Any) -> Safe:
    """A labelled input."""
    return tag("label", t(request, key), void("input", name=name, value=value or "", **attrs))


def select(request: web.Request, key: str, name: str, options: list[tuple[str, str]], chosen: str | None) -> Safe:
    """A labelled choice; the empty value (any) first."""
    opts = [tag("option", t(request, "any"), value="")]
    opts += [tag("option", label, value=v, selected=(v == chosen)) for v, label in options]
    return tag("label", t(request, key), tag("select", opts, name=name))


def filters(request: web.Request, *inputs: Any, button: str = "search", button_id: str | None = None) -> Safe:
    """A list's filter form: a GET, so the filters stay in the URL (and in the next page's link)."""
    return tag("form", *inputs, tag("button", t(request, button), type="submit", id=button_id), method="get",
               class_="filters")


NAV = (("overview", "/", None), ("tasks", "/tasks", None), ("chips", "/chips", None), ("numbers", "/numbers", None),
       ("exceptions", "/exceptions", None), ("clients", "/clients", None), ("quality", "/quality", "report.read"),
       ("audit", "/audit", "audit.read"))


def _nav(request: web.Request) -> Safe:
    sess = request.get(SESSION)
    links = []
    if sess is not None:
        for key, href, action in NAV:
            if action is None or sess.may(action):
                links.append(tag("a", t(request, key), href=PREFIX + href))
    other = "en" if lang(request) == "zh" else "zh"
    switch = tag("a", "English" if other == "en" else "中文", href=f"{PREFIX}/lang/{other}", class_="lang",
                 id="lang-switch")
    who = []
    if sess is not None:
        who = [tag("span", f"{sess.display_name} ({','.join(sorted(sess.roles))})", class_="who"),
               post_form(request, f"{PREFIX}/signout", tag("button", t(request, "signout"), type="submit"),
                         class_="inline")]
    return tag("header", tag("strong", t(request, "console"), class_="brand"), tag("nav", links),
               tag("div", switch, who, class_="right"))


def page(request: web.Request, title: str, *body: Any, status: int = 200) -> web.Response:
    """The layout: header with the sections this account may see, the language switch, the body."""
    doc = join([Safe("<!DOCTYPE html>"), tag(
        "html",
        tag("head", void("meta", charset="utf-8"),
            void("meta", name="viewport", content="width=device-width, initial-scale=1"),
            tag("title", f"{title} · {t(request, 'app')}"),
            void("link", rel="stylesheet", href=f"{PREFIX}/static/console.css"),
            tag("script", src=f"{PREFIX}/static/console.js", defer=True)),
        tag("body", _nav(request), tag("main", tag("h1", title), *body)),
        lang="zh-CN" if lang(request) == "zh" else "en")])
    return web.Response(text=doc, content_type="text/html", status=status)


def redirect(location: str) -> web.Response:
    """303 See Other: after a POST the browser GETs the result (no form resubmitted by a reload)."""
    return web.Response(status=303, headers={"Location": location})


def fragment(*body: Any) -> web.Response:
    """A live region's new content (the pages' script swaps it in; every value escaped here)."""
    return web.Response(text=join(body), content_type="text/html")


def error_page(request: web.Request, exc: BaseException) -> web.Response:
    o = outcome(exc)
    key = {403: "forbidden", 404: "not_found"}.get(o.http, "error")
    body = [tag("p", f"{o.reason}: {o.message}", class_="error", id="error")]
    resp = page(request, t(request, key), *body, status=o.http)
    if o.retry_after:
        resp.headers["Retry-After"] = str(int(o.retry_after))
    return resp


def next_link(request: web.Request, token: str) -> Safe:
    if not token:
        return Safe("")
    query = dict(request.query)
    query["page_token"] = token
    return tag("p", tag("a", t(request, "next_page"), href=str(request.rel_url.with_query(query)), id="next"))


def listed(request: web.Request, got: Any, listing: Safe) -> Safe:
    """A page of a list (service.lists.PageResult): its total, its rows, the link to the next page."""
    return join([tag("p", t(request, "total"), " ", got.total), listing, next_link(request, got.next_page_token)])


def notice(request: web.Request) -> Safe:
    """A one-line result of the last action, passed in the query (`?done=`): shown as text."""
    done = request.query.get("done")
    return tag("p", done, class_="notice", id="notice") if done else Safe("")


# -- sign-in and out --------------------------------------------------------------------------------
async def signin_form(request: web.Request, message: str | None = None, status: int = 200) -> web.Response:
    token = secrets.token_urlsafe(24)
    form = tag("form", void("input", type="hidden", name="csrf", value=token),
               tag("label", t(request, "username"), void("input", name="username", autocomplete="username",
                                                            required=True, autofocus=True)),
               tag("label", t(request, "password"), void("input", name="password", type="password",
                                                            autocomplete="current-password", required=True)),
               tag("button", t(request, "signin"), type="submit"),
               method="post", action=f"{PREFIX}/signin", class_="signin")
    body = [tag("p", message, class_="error", id="error") if message else Safe(""), form]
    resp = page(request, t(request, "signin"), *body, status=status)
    _cookie(resp, SIGNIN_COOKIE, token)
    return resp


async def signin(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    sent, expected = form.get("csrf"), request.cookies.get(SIGNIN_COOKIE)
    if not sent or not expected or not secrets.compare_digest(str(sent), expected):
        return await signin_form(request, "CSRF_FAILED", status=403)
    try:
        _same_origin(request)
        token = await console_auth.sign_in(pool(request), str(form.get("username", "")),
                                           str(form.get("password", "")), address(request))
    except EsimotaError as exc:
        o = outcome(exc)
        resp = await signin_form(request, f"{o.reason}: {o.message}", status=o.http)
        if o.retry_after:
            resp.headers["Retry-After"] = str(int(o.retry_after))
        return resp
    resp = redirect(f"{PREFIX}/")
    _cookie(resp, SESSION_COOKIE, token)
    resp.del_cookie(SIGNIN_COOKIE, path=PREFIX + "/")
    return resp


async def signout(request: web.Request) -> web.StreamResponse:
    await console_auth.sign_out(pool(request), session(request))
    resp = redirect(f"{PREFIX}/signin")
    resp.del_cookie(SESSION_COOKIE, path=PREFIX + "/")
    return resp


async def switch_lang(request: web.Request) -> web.StreamResponse:
    chosen = request.match_info["lang"]
    back = request.headers.get("Referer") or ""
    target = back if back.split("://", 1)[-1].startswith(request.host + PREFIX) else f"{PREFIX}/"
    resp = redirect(target)
    if chosen in i18n.LANGS:
        _cookie(resp, i18n.LANG_COOKIE, chosen, max_age=365 * 86400)
    return resp


def create_app(db: Any, addresses: CallerAddress, routes: Callable[[web.Application], None]) -> web.Application:
    """The console sub-application (server.py mounts it at /console/ on the operations listener);
    `routes` adds the pages (pages.register)."""
    app = web.Application(middlewares=[_headers, _no_such_page, _signed_in])
    app[POOL] = db
    app[ADDRESSES] = addresses
    app.router.add_get("/signin", signin_form)
    app.router.add_post("/signin", signin)
    app.router.add_post("/signout", signout)
    app.router.add_get("/lang/{lang}", switch_lang)
    app.router.add_static("/static/", STATIC)
    routes(app)
    return app


async def _to_console(request: web.Request) -> web.Response:
    return redirect(PREFIX + "/")


def mount(parent: web.Application, console: web.Application) -> None:
    """/console/ on the operations listener's application (and /console → /console/)."""
    parent.add_subapp(PREFIX + "/", console)
    parent.router.add_get(PREFIX, _to_console)
