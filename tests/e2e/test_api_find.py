"""The partner's own data over HTTPS (issue 15, DESIGN §6): write records (记录查询 §5.3.1.1), its task list,
batch apply, provinces where an auto-allocation can succeed now (§7.2.2.1); AdminService lists over gRPC."""

from __future__ import annotations

import aiohttp
import pytest

from esimota.sim import fleetdata
from esimota.v1 import admin_pb2, admin_pb2_grpc
from tests.support import cards

from .test_api_harness import running, start, stop  # noqa: F401  (fixture)


async def _other_client(running, pool, http, *, chips: int = 2) -> tuple[fleetdata.Fleet, str]:
    other = await fleetdata.generate(pool, chips, seed=7, province="31")
    await running.platform.api.clients.reload()
    return other, await running.token(http, other.client_id, other.client_secret)


async def test_records_and_tasks_answer_only_the_callers_own(running, pool):
    """GetWriteRecords by task_id or eid: events, sessions, callback attempts in order; another client's
    task or chip is 404 exactly like an unknown one. ListWriteTasks: newest first, paged, filtered."""
    f = running.fleet
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        tasks = []
        for d in f.devices[:5]:
            code, body, _ = await running.get(http, "/api/v1/write/apply", token=token, eid=d.eid, write_type=1,
                                              province_code="44")
            assert code == 200, body
            tasks.append(body["task_id"])
        assert (await cards.write(f.devices[0], running.platform.ports["bip"])).ok  # 2 → 3 → 4, reported
        code, rec, _ = await running.get(http, "/api/v1/write/records", token=token, task_id=tasks[0])
        assert code == 200 and set(rec) - {"code", "message"} == {"eid", "task_id", "card_status", "status_desc",
                                                                   "events", "sessions", "callbacks"}
        assert (rec["eid"], rec["card_status"], rec["status_desc"]) == (f.devices[0].eid, 4, "写卡成功")
        assert [(e["operation"], e["from_status"], e["to_status"]) for e in rec["events"]] == [
            ("apply", 1, 2), ("power_on", 2, 3), ("succeed", 3, 4)]
        assert rec["events"][0]["actor"] == f"client:{f.client_id}" and rec["events"][0]["at"].endswith("+08:00")
        code, by_eid, _ = await running.post(http, "/api/v1/write/records", {"token": token, "eid": f.devices[0].eid})
        assert code == 200 and by_eid["task_id"] == tasks[0]

        other, other_token = await _other_client(running, pool, http)
        for params in ({"task_id": tasks[0]}, {"task_id": "Tnope"}):
            code, body, _ = await running.get(http, "/api/v1/write/records", token=other_token, **params)
            assert (code, body["error"]) == (404, "TASK_NOT_FOUND"), params
        for eid in (f.devices[0].eid, fleetdata.make_eid(99_999_999)):
            code, body, _ = await running.get(http, "/api/v1/write/records", token=other_token, eid=eid)
            assert (code, body["error"]) == (404, "EID_NOT_FOUND")

        seen, token_page, totals = [], "", set()
        while True:
            code, page, _ = await running.get(http, "/api/v1/write/tasks", token=token, page_size=2,
                                              page_token=token_page)
            assert code == 200, page
            seen += [t["task_id"] for t in page["tasks"]]
            totals.add(page["total"])
            token_page = page["next_page_token"]
            if not token_page:
                break
        assert seen == tasks[::-1] and totals == {5}  # newest first, each once
        code, page, _ = await running.get(http, "/api/v1/write/tasks", token=token, card_status=4)
        assert [t["task_id"] for t in page["tasks"]] == [tasks[0]] and page["tasks"][0]["progress"] == 100
        code, page, _ = await running.get(http, "/api/v1/write/tasks", token=other_token)
        assert (code, page["tasks"], page["total"]) == (200, [], 0)
        code, body, _ = await running.get(http, "/api/v1/write/tasks", token=token, page_size=101)
        assert (code, body["error"]) == (400, "PAGE_SIZE_INVALID")
        code, body, _ = await running.get(http, "/api/v1/write/tasks", token=token, page_token="x")
        assert (code, body["error"]) == (400, "PAGE_TOKEN_INVALID")


async def test_provinces_list_only_where_an_auto_allocation_can_succeed(running, pool):
    """§7.2.2.1 当前可写入: the caller's provinces with a number available to it; none left, none listed."""
    f = running.fleet
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token)
        assert body["provinces"] == [{"province_code": "44", "province_name": "广东"}]
        other, other_token = await _other_client(running, pool, http)  # its numbers are in 31, allocated to it
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=other_token)
        assert [p["province_code"] for p in body["provinces"]] == ["31"]
        for d in f.devices:  # six chips take the six numbers of 44
            await running.get(http, "/api/v1/write/apply", token=token, eid=d.eid, write_type=1, province_code="44")
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token)
        assert (code, body["provinces"]) == (200, [])


@pytest.fixture
async def big(tmp_path, monkeypatch, db_url, pool):
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=70)
    yield r
    await stop(r)


async def test_apply_batch_of_100_good_and_bad_items(big, pool):
    """POST /api/v1/write/apply-batch: 100 items, each answered with the code and body a single apply gets;
    a retried batch returns the same tasks (idempotent per item, R18); more than 100 is 400."""
    f = big.fleet
    good = [{"eid": d.eid, "write_type": 1, "province_code": "44"} for d in f.devices[:60]]
    bad = ([{"eid": "1234", "write_type": 1, "province_code": "44"}] * 10
           + [{"eid": fleetdata.make_eid(90_000_000 + i), "write_type": 1, "province_code": "44"} for i in range(10)]
           + [{"eid": d.eid, "province_code": "44"} for d in f.devices[60:70]]
           + [{"eid": d.eid, "write_type": 1, "province_code": "99"} for d in f.devices[60:70]])
    items = [x for pair in zip(good[:40], bad) for x in pair] + good[40:]
    assert len(items) == 100
    async with aiohttp.ClientSession() as http:
        token = await big.token(http)
        code, body, _ = await big.post(http, "/api/v1/write/apply-batch", {"token": token, "items": items})
        assert code == 200 and len(body["items"]) == 100, body
        answers = body["items"]
        assert [a["eid"] for a in answers] == [i["eid"] for i in items]
        ok = [a for a in answers if a["code"] == 200]
        assert len(ok) == 60 and all(a["card_status"] == 2 and a["task_id"] for a in ok)
        reasons = sorted({(a["code"], a["error"]) for a in answers if a["code"] != 200})
        assert reasons == [(400, "EID_INVALID"), (400, "PROVINCE_INVALID"), (400, "WRITE_TYPE_REQUIRED"),
                           (404, "EID_NOT_FOUND")]
        for item, answer in zip(items, answers):  # each as a single apply would answer
            if answer["code"] != 200:
                code, single, _ = await big.get(http, "/api/v1/write/apply", token=token, **item)
                assert (code, single["error"]) == (answer["code"], answer["error"]), item
        code, again, _ = await big.post(http, "/api/v1/write/apply-batch", {"token": token, "items": items})
        assert [a.get("task_id") for a in again["items"]] == [a.get("task_id") for a in answers]
        assert await pool.fetchval("SELECT count(*) FROM tasks") == 60
        code, body, _ = await big.post(http, "/api/v1/write/apply-batch", {"token": token, "items": items + good[:1]})
        assert (code, body["error"]) == (400, "TOO_MANY_ITEMS")
        code, body, _ = await big.post(http, "/api/v1/write/apply-batch", {"token": token, "items": [1, 2]})
        assert (code, body["error"]) == (400, "PARAM_INVALID")
        code, body, _ = await big.post(http, "/api/v1/write/apply-batch", {"token": token})
        assert (code, body["error"]) == (400, "ITEMS_REQUIRED")


async def test_openapi_describes_the_new_routes(running):
    async with aiohttp.ClientSession() as http:
        async with http.get(running.base_url + "/openapi.json", ssl=running.ssl) as r:
            doc = await r.json()
    assert {"/api/v1/write/records", "/api/v1/write/tasks", "/api/v1/write/apply-batch"} <= set(doc["paths"])
    assert set(doc["paths"]["/api/v1/write/apply-batch"]) == {"post"}
    assert set(doc["paths"]["/api/v1/write/tasks"]) == {"get", "post"}


async def test_admin_lists_over_grpc_need_a_staff_role(running, pool):
    """AdminService ListTasks / ListChips / ShowTask with the staff token; without one, UNAUTHENTICATED."""
    f = running.fleet
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        await running.get(http, "/api/v1/write/apply", token=token, eid=f.devices[0].eid, write_type=1,
                          province_code="44")
    md = (("authorization", f"Bearer {running.staff_token}"),)
    async with running.admin_channel() as ch:  # AdminService: the operations listener (DESIGN §6)
        stub = admin_pb2_grpc.AdminServiceStub(ch)
        got = await stub.ListTasks(admin_pb2.ListTasksRequest(client=f.client_id, state=2), metadata=md)
        assert [t.eid for t in got.tasks] == [f.devices[0].eid] and got.total == 1
        assert got.tasks[0].status_desc == "待开机上电"
        chips = await stub.ListChips(admin_pb2.ListChipsRequest(page_size=4), metadata=md)
        assert len(chips.chips) == 4 and chips.total == 6 and chips.next_page_token
        rest = await stub.ListChips(admin_pb2.ListChipsRequest(page_size=4, page_token=chips.next_page_token),
                                    metadata=md)
        assert len(rest.chips) == 2 and not rest.next_page_token
        shown = await stub.ShowTask(admin_pb2.ShowTaskRequest(ref=f.devices[0].eid), metadata=md)
        assert [e.operation for e in shown.events] == ["apply"]
        import grpc
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await stub.ListTasks(admin_pb2.ListTasksRequest())
        assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_every_admin_find_rpc_over_grpc(running, pool):
    """Each remaining AdminService rpc of issue 15 once, through the servicer: typed records, no secrets."""
    import datetime as dt
    f = running.fleet
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        for d in f.devices[:2]:
            await running.get(http, "/api/v1/write/apply", token=token, eid=d.eid, write_type=1, province_code="44")
        await running.get(http, "/api/v1/write/apply", token=token, eid=f.devices[2].eid, write_type=1,
                          province_code="11")  # NO_RESOURCE: an exception
    assert (await cards.write(f.devices[0], running.platform.ports["bip"])).ok  # a callback queued
    md = (("authorization", f"Bearer {running.staff_token}"),)
    async with running.admin_channel() as ch:  # AdminService: the operations listener (DESIGN §6)
        stub = admin_pb2_grpc.AdminServiceStub(ch)
        nums = await stub.ListNumbers(admin_pb2.ListNumbersRequest(status="reserved"), metadata=md)
        assert nums.total == 1 and nums.numbers[0].client_id == f.client_id
        bound = await stub.ListNumbers(admin_pb2.ListNumbersRequest(status="bound", client=f.client_id), metadata=md)
        assert [n.eid for n in bound.numbers] == [f.devices[0].eid]
        clients = await stub.ListClients(admin_pb2.ListClientsRequest(disabled=False), metadata=md)
        assert [c.client_id for c in clients.clients] == [f.client_id] and clients.clients[0].ip_whitelist
        excs = await stub.SearchExceptions(admin_pb2.SearchExceptionsRequest(open=True, category="apply"),
                                           metadata=md)
        assert [e.kind for e in excs.exceptions] == ["NO_RESOURCE:11"] and not excs.exceptions[0].overdue
        one = await stub.ShowException(admin_pb2.ShowExceptionRequest(id=excs.exceptions[0].id), metadata=md)
        assert one.kind == "NO_RESOURCE:11" and one.client_id == f.client_id
        alerts = await stub.ListAlerts(admin_pb2.ListAlertsRequest(open=True), metadata=md)
        assert alerts.total == 0
        cbs = await stub.SearchCallbacks(admin_pb2.SearchCallbacksRequest(client=f.client_id), metadata=md)
        assert [c.eid for c in cbs.callbacks] == [f.devices[0].eid] and cbs.callbacks[0].status in ("pending",
                                                                                                    "delivered")
        chip = await stub.ReprovisionChip(admin_pb2.ReprovisionChipRequest(
            eid=f.devices[3].eid, temp_iccid="89860099999999999990", temp_msisdn="1064099999999",
            open_time=dt.date.today().isoformat()), metadata=md)
        assert (chip.temp_msisdn, chip.state, chip.status_desc) == ("1064099999999", 1, "待写卡")
        hist = await stub.ShowTask(admin_pb2.ShowTaskRequest(ref=f.devices[0].eid), metadata=md)
        assert [e.operation for e in hist.events] == ["apply", "power_on", "succeed"]
        assert hist.task.progress == 100


async def test_scheduled_regulator_reports_are_found_and_opened_over_admin_service(tmp_path, monkeypatch, db_url,
                                                                                    pool):
    """R33, R34: the served platform's regulator-exports job makes the last ended half-year's service report
    and the last month's subscriber export by itself; staff find them with AdminService ListExports (by kind
    and period) and fetch one with OpenExport, each access audited; a bad kind or an unknown id is a typed
    error, never a traceback."""
    import asyncio
    import datetime as dt
    import time

    import grpc

    from esimota.jobs import exports
    from esimota.service.common import CST

    shared = tmp_path / "shared-exports"
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1,
                    env={"ESIMOTA_EXPORT_INTERVAL": "0.5", "ESIMOTA_EXPORT_DIR": str(shared)})
    try:
        deadline = time.monotonic() + 60
        while await pool.fetchval("SELECT count(*) FROM job_runs WHERE job = 'regulator-exports' "
                                  "AND status = 'done'") < 2:
            assert time.monotonic() < deadline, "the scheduled reports were never made"
            await asyncio.sleep(0.1)
        half = exports.half_due(dt.datetime.now(CST))
        md = (("authorization", f"Bearer {r.staff_token}"),)
        async with r.admin_channel() as ch:
            stub = admin_pb2_grpc.AdminServiceStub(ch)
            both = await stub.ListExports(admin_pb2.ListExportsRequest(), metadata=md)
            assert sorted(e.kind for e in both.exports) == ["service", "subscribers"]
            assert {e.created_by for e in both.exports} == {exports.ACTOR}
            listed = await stub.ListExports(admin_pb2.ListExportsRequest(kind="service", period=half), metadata=md)
            assert [(e.kind, e.period, e.rows) for e in listed.exports] == [("service", half, 1)]
            one = listed.exports[0]
            assert one.path.startswith(str(shared)) and one.node and one.expires_at and not one.deleted_at
            opened = await stub.OpenExport(admin_pb2.OpenExportRequest(id=one.id), metadata=md)
            assert (opened.path, opened.manifest_sha256) == (one.path, one.manifest_sha256)
            for bad, code, reason in ((admin_pb2.ListExportsRequest(kind="weekly"), grpc.StatusCode.INVALID_ARGUMENT,
                                       "EXPORT_KIND_INVALID"),
                                      (admin_pb2.ListExportsRequest(kind="service", period="2026-13"),
                                       grpc.StatusCode.INVALID_ARGUMENT, "HALF_INVALID")):
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await stub.ListExports(bad, metadata=md)
                assert err.value.code() == code and reason in str(err.value.trailing_metadata())
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await stub.OpenExport(admin_pb2.OpenExportRequest(id=one.id + 100), metadata=md)
            assert err.value.code() == grpc.StatusCode.NOT_FOUND
        audited = await pool.fetch("SELECT action, count(*) FROM audit_log WHERE actor = 'staff:root' "
                                   "AND action LIKE 'export.%' GROUP BY 1 ORDER BY 1")
        assert [tuple(a) for a in audited] == [("export.list", 2), ("export.read", 1)]
    finally:
        await stop(r)
