"""The operator console in a real browser (Debian's chromium driven by Playwright) against a real `esimota serve`
and the simulator: sign in, find a task by EID, follow a write 2 → 3 → 4 without a reload, close an exception
(R24) — an auditor cannot, even by a replayed POST (R28) —, a cross-site POST is refused, an imported
`<script>` chip model shows as text, the charts render (R29). Each page's screenshot is kept under the pytest
tmp dir (`console-screens`)."""

from __future__ import annotations

import csv
import datetime as dt
import os
import signal
import subprocess
import sys

import asyncpg
import pytest
from aiohttp import web
from playwright import async_api as playwright_api

from esimota import tls
from esimota.domain.identifiers import eid_check_digits
from esimota.service import admin, imports, ops, staff
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support import databases
from tests.support import cards
from tests.support.bip import apply_all
from tests.support.platform import free_port, serve

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
PASSWORD = "console-Test-password-7"
XSS = '<script>document.title="pwned"</script><img src=x onerror="document.title=1">'


@pytest.fixture(scope="module")
async def console_db(pg_server_url, template_db):
    """A database of this module's own (one platform serves every test here)."""
    name = await databases.create(pg_server_url, "esimota_console_", template=template_db)
    yield databases.url_of(pg_server_url, name)
    await databases.drop(pg_server_url, name)


@pytest.fixture(scope="module")
async def db(console_db):
    pool = await asyncpg.create_pool(console_db, min_size=1, max_size=5)
    await staff.add(pool, "root", "Root", "admin", None)
    for user, role in (("olga", "operator"), ("audra", "auditor"), ("sam", "support")):
        await staff.add(pool, user, user.title(), role, "root")
    yield pool
    await pool.close()


@pytest.fixture(scope="module")
def platform(db, console_db, tmp_path_factory):
    """`esimota serve` with TLS (the session cookie is Secure); staff passwords set by `esimota staff password`."""
    env = dict(os.environ, DATABASE_URL=console_db)
    env.pop("ESIMOTA_STAFF", None)
    for user in ("root", "olga", "audra", "sam"):
        run = subprocess.run([sys.executable, "-m", "esimota.cli", "staff", "password", user, "--password-stdin"],
                             input=PASSWORD + "\n", env=env, capture_output=True, text=True, timeout=60)
        assert run.returncode == 0, run.stderr
    home = tmp_path_factory.mktemp("console-home")
    served = serve(home, console_db, extra_env={"ESIMOTA_WATCHDOG_INTERVAL": "3600"})
    yield served
    served.stop(signal.SIGTERM)


@pytest.fixture(scope="module")
def screens(tmp_path_factory):
    return tmp_path_factory.mktemp("console-screens")


@pytest.fixture(scope="module")
async def browser():
    assert os.path.exists(CHROMIUM), "Debian's chromium is missing: `make install` installs it (as root)"
    async with playwright_api.async_playwright() as pw:
        b = await pw.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield b
        await b.close()


async def signed_in(browser, platform, user: str, viewport: tuple[int, int] = (1366, 768), locale: str = "zh-CN"):
    """A browser context of its own (cookies, language) with `user` signed in through the form."""
    ctx = await browser.new_context(ignore_https_errors=True, viewport={"width": viewport[0], "height": viewport[1]},
                                    locale=locale)
    page = await ctx.new_page()
    await page.goto(f"{platform.admin_url}/console/")
    assert page.url.endswith("/console/signin")
    await page.fill("input[name=username]", user)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{platform.admin_url}/console/")
    return ctx, page


async def shot(page, screens, name: str) -> None:
    await page.screenshot(path=str(screens / f"{name}.png"), full_page=True)


async def test_sign_in_find_a_task_by_eid_and_follow_the_write(db, platform, browser, screens):
    """R8, R13: the task page follows 待开机上电 → 写卡中 → 写卡成功 with its progress, without a reload."""
    fleet = await fleetdata.generate(db, 1, buffer_size=256)  # a small buffer: the script goes in several chunks
    [task] = await apply_all(db, fleet)
    spec = fleet.devices[0]
    ctx, page = await signed_in(browser, platform, "olga")
    cookie = next(c for c in await ctx.cookies() if c["name"] == "esimota_console")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["sameSite"] == "Strict"
    await page.click("nav >> text=写卡任务")
    await page.fill("#q-eid", spec.eid)
    await page.click("#search")
    await page.click(f"#tasks >> text={task.task_id}")
    await page.wait_for_selector("#task-state >> text=待开机上电")
    await page.evaluate("window.__same_page = 'yes'")  # gone if the page were reloaded
    spec.faults = Faults(drop_at_frame=2)  # HELLO accepted (2 → 3), the first chunk acknowledged, then the channel drops
    dev = Device(spec, "127.0.0.1", platform.bip_port, max_channels=1)
    assert not (await dev.run()).ok
    spec.counter = dev.counter
    await page.wait_for_selector("#task-state >> text=写卡中", timeout=15000)
    await page.wait_for_function(PARTLY_WRITTEN, timeout=15000)  # R8: the progress of the chunks acknowledged
    await shot(page, screens, "task-writing")
    await cards.finish(dev)  # the card resumes, completes, refreshes and reports success
    await page.wait_for_selector("#task-state >> text=写卡成功", timeout=15000)
    await page.wait_for_selector("#task-progress [data-progress='100']")
    assert await page.evaluate("window.__same_page") == "yes"
    events = await page.inner_text("#events")
    assert "power_on" in events and "succeed" in events and "写卡成功" in events
    assert await page.locator("#sessions tbody tr").count() >= 2  # the dropped channel and the resumed one
    await shot(page, screens, "task-succeeded")
    await page.goto(f"{platform.admin_url}/console/")  # the overview counts it (live, within its refresh)
    await page.wait_for_function("() => +document.querySelector('#state-4').textContent >= 1", timeout=15000)
    assert await page.locator("#chart-24h rect.ok").count() == 24
    assert await page.locator("#chart-30d rect.ok").count() == 30
    assert await page.locator("#chart-24h polyline.rate").count() == 1  # one success: the rate line exists
    await ctx.close()


async def _chip_fault_exception(db, platform) -> int:
    fleet = await fleetdata.generate(db, 1, faults=lambda i: Faults(chip_fault=True), seed=3)
    await apply_all(db, fleet)
    out = await Device(fleet.devices[0], "127.0.0.1", platform.bip_port, max_channels=2).run()
    assert not out.ok
    await ops.scan(db)  # the watchdog job's pass (table 4: 芯片故障, 24 h)
    return await db.fetchval("SELECT e.id FROM exceptions e JOIN chips c ON c.id = e.chip_id "
                             "WHERE c.eid = $1 AND e.kind = 'CHIP_FAULT'", fleet.devices[0].eid)


async def _evil_site(target: str, home):
    """Another origin whose page posts a form to the console at once (no CSRF token: it cannot read one).

    Served over https on another port of 127.0.0.1: another origin but the same site, so the browser sends the
    SameSite=Strict cookie along and only the CSRF check stands between the form and the change."""
    html = (f'<form method="post" action="{target}"><input name="resolution" value="forged"></form>'
            '<script>document.forms[0].submit()</script>')
    async def page(_request: web.Request) -> web.Response:
        return web.Response(text=html, content_type="text/html")

    app = web.Application()
    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=tls.server_context(home / "tls" / "cert.pem",
                                                                                home / "tls" / "key.pem")).start()
    return runner, f"https://127.0.0.1:{port}/"


async def test_operator_closes_an_exception_auditor_cannot_forged_posts_refused(db, platform, browser, screens):
    """R24 close with a resolution; R28 an auditor sees no close button and its replayed POST is refused;
    a cross-site POST without the CSRF token is refused; each change audited under the staff member."""
    exc_id = await _chip_fault_exception(db, platform)
    close_url = f"{platform.admin_url}/console/exceptions/{exc_id}/close"
    actx, apage = await signed_in(browser, platform, "audra")
    await apage.goto(f"{platform.admin_url}/console/exceptions/{exc_id}")
    assert "CHIP_FAULT" in await apage.inner_text("main")
    assert await apage.locator("#close").count() == 0 and await apage.locator("#close-form").count() == 0
    token = await apage.get_attribute("input[name=csrf]", "value")  # the auditor's own, valid token
    replay = await apage.request.post(close_url, form={"csrf": token, "resolution": "auditor closing"})
    assert replay.status == 403 and "ROLE_FORBIDDEN" in await replay.text()
    await actx.close()

    octx, opage = await signed_in(browser, platform, "olga")
    no_token = await opage.request.post(close_url, form={"resolution": "no token"})
    assert no_token.status == 403 and "CSRF_FAILED" in await no_token.text()
    runner, evil = await _evil_site(close_url, platform.home)
    try:
        await opage.goto(evil)
        await opage.wait_for_selector("#error")
        assert "CSRF_FAILED" in await opage.inner_text("#error")
    finally:
        await runner.cleanup()
    assert await db.fetchval("SELECT closed_at FROM exceptions WHERE id = $1", exc_id) is None

    await opage.goto(f"{platform.admin_url}/console/exceptions")
    await opage.click(f"#exceptions >> a[href='/console/exceptions/{exc_id}']")
    await opage.fill("#resolution", "chip replaced; device re-powered")
    await opage.click("#close")
    await opage.wait_for_selector("#notice")
    row = await db.fetchrow("SELECT closed_by, resolution FROM exceptions WHERE id = $1", exc_id)
    assert (row["closed_by"], row["resolution"]) == ("staff:olga", "chip replaced; device re-powered")
    audited = {(r["actor"], r["action"]) for r in await db.fetch("SELECT actor, action FROM audit_log")}
    assert ("staff:olga", "exception.close") in audited and ("staff:audra", "denied") in audited
    assert ("staff:olga", "console.csrf_refused") in audited  # the forged forms left their trace
    await shot(opage, screens, "exception-closed")
    await octx.close()


async def _allocate(page, platform, db, eid: str, tmp_path) -> None:
    """分配数据资源 (§6.2.1.1) from the numbers and chips pages, to the new client named by its name."""
    iccid = "89860199990000000011"
    path = tmp_path / "numbers.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(imports.NUMBER_COLUMNS)
        w.writerow(["1064999000001", iccid, "460999990000001", "a1" * 16, "b2" * 16, "44", "data", "100"])
    await imports.import_numbers(db, str(path))
    for where, field, value in (("numbers", "iccids", iccid), ("chips", "eids", eid)):
        await page.goto(f"{platform.admin_url}/console/{where}")
        await page.click("details.card summary")
        form = page.locator(f"form[action='/console/{where}/allocate']")
        await form.locator("input[name=client]").fill("Partner <b>X</b>")
        await form.locator(f"textarea[name={field}]").fill(value)
        await form.locator("button").click()
        await page.wait_for_selector("#notice")
    owner = "SELECT id FROM clients WHERE name = 'Partner <b>X</b>'"
    assert await db.fetchval(f"SELECT client_id = ({owner}) FROM numbers WHERE iccid = $1", iccid)
    assert await db.fetchval(f"SELECT owner_client_id = ({owner}) FROM chips WHERE eid = $1", eid)
    await page.goto(f"{platform.admin_url}/console/clients")


async def _import_hostile_chip(db, tmp_path) -> str:
    prefix = "89049032000000000000009999" + "0001"
    eid = prefix + eid_check_digits(prefix)
    path = tmp_path / "chips.csv"
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(imports.CHIP_COLUMNS)
        w.writerow([eid, "", XSS, "89860099000000000010", "1440999000001", "4G", dt.date.today().isoformat(), "5"])
    await admin.create_batch(db, "XSS", "00112233445566778899aabbccddeeff")
    await imports.import_chips(db, str(path), "XSS")
    return eid


PARTLY_WRITTEN = """() => { const p = document.querySelector('#task-progress [data-progress]');
                               return p !== null && +p.dataset.progress > 0 && +p.dataset.progress < 90; }"""
PAGES = ("", "tasks", "chips", "numbers", "exceptions", "clients", "quality", "audit")


async def test_every_page_escaped_charted_and_shot(db, platform, browser, screens, tmp_path):
    """Every value escaped (the imported chip model is text); each page answers, charts render; an admin creates
    a client and sees its secrets once; English by the switch; a support account sees no audit log."""
    eid = await _import_hostile_chip(db, tmp_path)
    ctx, page = await signed_in(browser, platform, "root")
    await page.goto(f"{platform.admin_url}/console/chips/{eid}")
    assert await page.inner_text("#chip-chip_model") == XSS
    assert await page.locator("#chip-chip_model script, #chip-chip_model img").count() == 0
    assert await page.title() != "pwned" and "1" != await page.title()
    await shot(page, screens, "chip")
    for name in PAGES:
        resp = await page.goto(f"{platform.admin_url}/console/{name}")
        assert resp.status == 200, name
        await shot(page, screens, name or "overview")
        if name == "quality":  # R29: six months charted and tabled, the §8.3.2 review of this month
            assert await page.locator("#chart-quality svg text").count() >= 6
            assert await page.locator("#quality tbody tr").count() == 6
            assert await page.locator("#review tbody tr").count() == 4  # the four classes of §8.1
        if name == "":
            assert await page.locator("#chart-states rect").count() == 6
        if name == "chips":  # R13 statuses in the page's language, as every other status word
            shown = await page.inner_text("#chips")
            assert "在库" in shown and "in_stock" not in shown and "produced" not in shown
    # a console URL that names no page: the console's own 404 page for the browser (JSON stays with the API)
    resp = await page.goto(f"{platform.admin_url}/console/no/such/page")
    assert resp.status == 404 and resp.headers["content-type"].startswith("text/html")
    assert await page.inner_text("h1") == "未找到" and "PAGE_NOT_FOUND" in await page.inner_text("#error")
    assert await page.locator("nav a").count() >= 6  # signed in: the layout with its sections
    await page.goto(f"{platform.admin_url}/console/clients")
    await page.click("summary")
    form = page.locator("form[action='/console/clients']")
    await form.locator("input[name=name]").fill("Partner <b>X</b>")
    await form.locator("input[name=phone]").fill("13800000009")
    await form.locator("input[name=ip]").fill("203.0.113.0/24")
    await form.locator("input[name=callback_url]").fill("https://partner.example/cb")
    await form.locator("button").click()
    secret = await page.inner_text("#client_secret")
    assert len(secret) >= 32
    stored = await db.fetchval("SELECT secret_hash FROM clients WHERE name = 'Partner <b>X</b>'")
    assert stored and secret not in str(stored)
    await page.goto(f"{platform.admin_url}/console/clients")
    assert "Partner <b>X</b>" in await page.inner_text("#clients") and secret not in await page.content()
    await _allocate(page, platform, db, eid, tmp_path)
    await page.click("#lang-switch")
    await page.wait_for_selector("h1 >> text=Clients")
    await shot(page, screens, "clients-en")
    await ctx.close()
    tctx, tpage = await signed_in(browser, platform, "sam", viewport=(768, 1024))  # a tablet
    assert await tpage.locator("nav >> text=审计日志").count() == 0
    assert (await tpage.goto(f"{platform.admin_url}/console/audit")).status == 403
    await tpage.goto(f"{platform.admin_url}/console/")
    await shot(tpage, screens, "overview-tablet")
    await tctx.close()

