"""Find anything (issue 15; R13, R12, R22): each list's filters, stable keyset pages and totals, on data made
through the real paths (imports, applies, cancels, refusals, the monitoring detectors)."""

import asyncio
import datetime as dt

import pytest

from esimota.errors import InvalidArgument, NotFound, PermissionDenied
from esimota.service import admin, imports, lists, monitoring, chip_management, writing
from esimota.service.common import CST
from esimota.service.writing import ApplyRequest

from tests.support import cards

from ..conftest import BATCH_KEY, eid, iccid, msisdn, reallocate, write_chips, write_numbers


async def _walk(fn, size, **filters):
    rows, token, totals = [], "", set()
    while True:
        page = await fn(page_token=token, page_size_=size, **filters)
        rows += page.rows
        totals.add(page.total)
        token = page.next_page_token
        if not token:
            return rows, totals


@pytest.fixture
async def fleet(pool, seeded, tmp_path):
    """Client A applies for chips 1–5 (auto, 44; chip 5 designated), B for 11–12; A cancels chip 3; chip 6
    is refused (no numbers in 11), a second batch B2 holds chips 31–33."""
    a, b = seeded
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n2.csv", range(50, 54), province="31")))
    await admin.allocate_numbers(pool, a.client_id, [iccid(52), iccid(53)])
    for i in (1, 2, 3, 4):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, "44"))
    await writing.apply_write(pool, a, ApplyRequest(eid(5), 0, None, iccid(52), msisdn(52)))
    await reallocate(pool, b, 11, 12)  # seeded allocates chips 1–20 to A (§6.2.1.1)
    for i in (11, 12):
        await writing.apply_write(pool, b, ApplyRequest(eid(i), 1, "31"))
    await writing.cancel_write(pool, a, eid=eid(3))
    with pytest.raises(PermissionDenied):
        await writing.apply_write(pool, a, ApplyRequest(eid(6), 1, "11"))
    await admin.create_batch(pool, "B2", "00" * 16)
    await imports.import_chips(pool, str(write_chips(tmp_path / "c2.csv", range(31, 34))), "B2")
    return a, b


async def test_task_filters_state_client_province_batch_eid_time(pool, fleet):
    """R13 write management: tasks by state, client (id or name), province, batch, EID and creation time."""
    a, b = fleet
    every = await lists.list_tasks(pool)
    assert every.total == 7 and [r.eid for r in every.rows] == [eid(i) for i in (12, 11, 5, 4, 3, 2, 1)]
    by_a = await lists.list_tasks(pool, client=a.client_id)
    assert by_a.total == 5 and {r.client_id for r in by_a.rows} == {a.client_id}
    assert (await lists.list_tasks(pool, client="B")).total == 2  # a client's name works too
    pending = await lists.list_tasks(pool, state_=2, client=a.client_id)
    assert [r.eid for r in pending.rows] == [eid(5), eid(4), eid(2), eid(1)]
    assert [r.eid for r in (await lists.list_tasks(pool, state_=1)).rows] == [eid(3)]  # the cancelled one
    assert {r.eid for r in (await lists.list_tasks(pool, province="31")).rows} == {eid(11), eid(12)}
    assert (await lists.list_tasks(pool, batch="B1")).total == 7
    assert (await lists.list_tasks(pool, batch="B2")).total == 0
    one = await lists.list_tasks(pool, eid=eid(5))
    assert [(r.write_type, r.iccid) for r in one.rows] == [(0, iccid(52))]
    now = dt.datetime.now(CST)
    assert (await lists.list_tasks(pool, since=(now - dt.timedelta(hours=1)).isoformat())).total == 7
    assert (await lists.list_tasks(pool, until=(now - dt.timedelta(hours=1)).isoformat())).total == 0
    assert (await lists.list_tasks(pool, since=now.date().isoformat(), client=b.client_id)).total == 2


async def test_task_project_filter(pool, fleet):
    a, _ = fleet
    await chip_management.create_project(pool, a.client_id, "meters", "智能表计", "root")
    await chip_management.assign(pool, a.client_id, "meters", [eid(1), eid(2)], "root")
    got = await lists.list_tasks(pool, project="meters")
    assert [(r.eid, r.project) for r in got.rows] == [(eid(2), "meters"), (eid(1), "meters")]
    chips = await lists.list_chips(pool, project="meters")
    assert chips.total == 2


async def test_bad_filters_are_typed_errors(pool, fleet):
    with pytest.raises(InvalidArgument) as err:
        await lists.list_tasks(pool, state_=9)
    assert err.value.reason == "STATE_INVALID"
    with pytest.raises(NotFound):
        await lists.list_tasks(pool, client="nobody")
    with pytest.raises(InvalidArgument) as err:
        await lists.list_tasks(pool, since="yesterday")
    assert err.value.reason == "TIME_INVALID"
    with pytest.raises(InvalidArgument) as err:
        await lists.list_tasks(pool, page_token="garbage!")
    assert err.value.reason == "PAGE_TOKEN_INVALID"
    first = await lists.list_tasks(pool, page_size_=2)
    with pytest.raises(InvalidArgument) as err:  # a token is only good for the filters it came with
        await lists.list_tasks(pool, state_=2, page_token=first.next_page_token)
    assert err.value.reason == "PAGE_TOKEN_INVALID"
    with pytest.raises(InvalidArgument):
        await lists.list_numbers(pool, status="lost")


async def test_chip_filters(pool, fleet, tmp_path):
    """Chips by state, batch, client (allocated / applied), production and logistics status, expiry (R12)."""
    a, b = fleet
    assert (await lists.list_chips(pool)).total == 23
    assert [r.eid for r in (await lists.list_chips(pool, batch="B2")).rows] == [eid(33), eid(32), eid(31)]
    assert {r.eid for r in (await lists.list_chips(pool, client=b.client_id)).rows} == {eid(11), eid(12)}
    assert (await lists.list_chips(pool, state_=6)).rows[0].eid == eid(6)
    await chip_management.set_status(pool, "B2", "root", eids=[eid(32)], production="qc_failed", logistics="shipped")
    got = await lists.list_chips(pool, production_status="qc_failed", logistics_status="shipped")
    assert [r.eid for r in got.rows] == [eid(32)]
    soon = dt.date.today() - dt.timedelta(days=170)  # NB-IoT numbers live 180 days: 10 left
    await imports.import_chips(pool, str(write_chips(tmp_path / "old.csv", [40], open_time=soon,
                                                     network="NB-IoT")), "B2")
    before = (dt.date.today() + dt.timedelta(days=30)).isoformat()
    assert [r.eid for r in (await lists.list_chips(pool, expiring_before=before)).rows] == [eid(40)]


async def test_number_filters(pool, fleet):
    """Numbers by status (available / allocated / reserved), province and client; never a secret."""
    a, _ = fleet
    assert (await lists.list_numbers(pool)).total == 14
    reserved = await lists.list_numbers(pool, status="reserved")
    assert reserved.total == 6  # 3 auto in 44 (chip 3 was cancelled), 1 designated, 2 in 31
    assert [r.iccid for r in (await lists.list_numbers(pool, status="allocated")).rows] == [iccid(53)]
    assert (await lists.list_numbers(pool, province="31", status="available")).total == 0
    assert (await lists.list_numbers(pool, province="44", status="available")).total == 7
    mine = await lists.list_numbers(pool, client=a.client_id)
    assert [(r.iccid, r.status) for r in mine.rows] == [(iccid(53), "allocated"), (iccid(52), "reserved")]
    row = reserved.rows[0]
    assert not any(hasattr(row, f) for f in ("imsi", "ki", "opc", "imsi_enc", "keys_enc"))


async def test_client_filters(pool, fleet):
    a, b = fleet
    assert [r.name for r in (await lists.list_clients(pool)).rows] == ["B", "A"]
    await admin.disable_client(pool, b.client_id)
    assert [r.name for r in (await lists.list_clients(pool, disabled=True)).rows] == ["B"]
    assert [r.name for r in (await lists.list_clients(pool, disabled=False, name="a")).rows] == ["A"]
    assert not hasattr((await lists.list_clients(pool)).rows[0], "secret_hash")


async def test_exception_and_alert_filters(pool, fleet, tmp_path):
    """Exceptions (R22): open/closed, class, severity, overdue; alerts (R12, R32): kind, open."""
    a, _ = fleet
    got = await lists.list_exceptions(pool, open_=True)
    assert [r.kind for r in got.rows] == ["NO_RESOURCE:11"] and got.rows[0].category == "apply"
    assert (await lists.list_exceptions(pool, category="write")).total == 0
    assert (await lists.list_exceptions(pool, severity="severe")).total == 0
    assert (await lists.list_exceptions(pool, overdue=True)).total == 0
    # two hours on: the exception is past its handling deadline (the clock is the one thing moved by hand)
    await pool.execute("UPDATE exceptions SET deadline_at = now() - interval '1 minute'")
    over = await lists.list_exceptions(pool, overdue=True, open_=True)
    assert [r.kind for r in over.rows] == ["NO_RESOURCE:11"] and over.rows[0].overdue
    shown = await lists.get_exception(pool, over.rows[0].id)
    assert shown.kind == "NO_RESOURCE:11"
    with pytest.raises(NotFound):
        await lists.get_exception(pool, 999999)
    soon = dt.date.today() - dt.timedelta(days=250)  # 4G: 20 days left
    await imports.import_chips(pool, str(write_chips(tmp_path / "old.csv", [41], open_time=soon)), "B1")
    await monitoring.scan(pool)
    alerts = await lists.list_alerts(pool, kind="TEMP_NUMBER_EXPIRING", open_=True)
    assert [(r.subject, r.eid) for r in alerts.rows] == [(eid(41), eid(41))]
    assert (await lists.list_alerts(pool, open_=False)).total == 0


async def test_pages_lose_and_repeat_no_row_while_rows_are_inserted(pool, seeded, tmp_path):
    """Keyset pages (newest first): a walk sees every row that existed when it began exactly once, in
    order, while other applies insert tasks between its pages; the total is the first page's."""
    a, b = seeded
    await imports.import_chips(pool, str(write_chips(tmp_path / "more.csv", range(100, 190))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "more.csv", range(100, 190))))
    await admin.allocate_chips(pool, a.client_id, batch="B1")  # the new chips are A's too (§6.2.1.1)
    for i in range(100, 140):
        await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, "44"))
    before = [r.task_id for r in (await lists.list_tasks(pool, client=a.client_id, page_size_=1000)).rows]
    page = await lists.list_tasks(pool, client=a.client_id, page_size_=3)
    seen, token, totals, pages = [r.task_id for r in page.rows], page.next_page_token, {page.total}, 1
    inserting = asyncio.ensure_future(_apply_many(pool, a, range(140, 190)))
    while token:
        await asyncio.sleep(0.01)  # let the inserts interleave with the walk
        page = await lists.list_tasks(pool, client=a.client_id, page_token=token, page_size_=3)
        seen += [r.task_id for r in page.rows]
        totals.add(page.total)
        token, pages = page.next_page_token, pages + 1
    await inserting
    assert seen == before and totals == {40} and pages == 14  # every row once, in order, none of the new
    assert (await lists.list_tasks(pool, client=a.client_id)).total == 90


async def _apply_many(pool, client, ids):
    for i in ids:
        await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, "44"))
        await asyncio.sleep(0)


async def test_callback_filters_and_bound_numbers(pool, seeded):
    """§7.3 callbacks by status and client; a written number is `bound` (both through the write's service)."""
    a, b = seeded
    await reallocate(pool, b, 11)
    async with cards.endpoint(pool) as port:
        for client, i in ((a, 1), (a, 2), (b, 11)):
            await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, "44"))
            out = await cards.write(await cards.spec_for(pool, eid(i), bytes.fromhex(BATCH_KEY)), port)
            assert out.ok, out  # the card wrote, refreshed and reported success: a callback is queued
    pending = await lists.list_callbacks(pool, status="pending")
    assert pending.total == 3 and [r.eid for r in pending.rows] == [eid(11), eid(2), eid(1)]
    mine = await lists.list_callbacks(pool, client="A")
    assert {r.client_id for r in mine.rows} == {a.client_id} and mine.total == 2
    assert (await lists.list_callbacks(pool, status="delivered")).total == 0
    bound = await lists.list_numbers(pool, status="bound")
    assert sorted(r.eid for r in bound.rows) == sorted([eid(1), eid(2), eid(11)])
    assert (await lists.list_chips(pool, state_=4)).total == 3
