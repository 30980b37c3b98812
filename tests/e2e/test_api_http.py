"""Every route of DESIGN §6 through a real HTTPS client: the fields of §7.2 (R19), each error code, limits."""

from __future__ import annotations

import asyncio
import json

import aiohttp
import grpc
import pytest

from esimota.service import admin, usage
from esimota.sim import fleetdata
from esimota.v1 import auth_pb2, auth_pb2_grpc
from tests.support import cards

from .test_api_harness import running, start, stop  # noqa: F401  (fixture)

ERR = {"code", "message", "error"}


def fields(body: dict) -> set:
    return set(body) - {"code", "message"}


async def test_token_get_and_post_and_its_errors(running):
    """§7.2.1: token and expire_time 86400 by GET and POST; 400 missing, 401 wrong secret."""
    f = running.fleet
    async with aiohttp.ClientSession() as http:
        code, body, _ = await running.get(http, "/api/v1/auth/token", client_id=f.client_id,
                                          client_secret=f.client_secret)
        assert code == 200 and body["code"] == 200 and fields(body) == {"token", "expire_time"}
        assert body["expire_time"] == 86400
        code, body, _ = await running.post(http, "/api/v1/auth/token",
                                           {"client_id": f.client_id, "client_secret": f.client_secret})
        assert code == 200 and body["token"]
        code, body, _ = await running.get(http, "/api/v1/auth/token", client_id=f.client_id)
        assert (code, body["code"], body["error"]) == (400, 400, "CREDENTIALS_REQUIRED") and set(body) == ERR
        code, body, _ = await running.get(http, "/api/v1/auth/token", client_id=f.client_id, client_secret="x")
        assert (code, body["error"]) == (401, "BAD_CREDENTIALS")
        code, body, _ = await running.get(http, "/api/v1/auth/token", client_id="nobody", client_secret="x")
        assert (code, body["error"]) == (401, "BAD_CREDENTIALS")


async def test_provinces_with_query_token_bearer_and_without(running):
    """§7.2.2.1 provinces [{province_code, province_name}]; token in the query or as Bearer; else 401."""
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        code, body, headers = await running.get(http, "/api/v1/write/provinces", token=token)
        # §7.2.2.1 当前可写入: only where an auto-allocation can succeed now (the fleet's numbers are in 44)
        assert code == 200 and fields(body) == {"provinces"}
        assert body["provinces"] == [{"province_code": "44", "province_name": "广东"}]
        assert headers["RateLimit-Limit"] == "100000" and "RateLimit-Remaining" in headers
        code, body, _ = await running.post(http, "/api/v1/write/provinces", {},
                                           headers={"Authorization": f"Bearer {token}"})
        assert code == 200 and len(body["provinces"]) == 1
        code, body, _ = await running.get(http, "/api/v1/write/provinces")
        assert (code, body["error"]) == (401, "TOKEN_REQUIRED")
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token[:-2] + "xx")
        assert (code, body["error"]) == (401, "TOKEN_INVALID")


async def test_apply_status_cancel_through_the_lifecycle(running, pool):
    """§7.2.2.2–4: apply (idempotent, R18), status with progress and write_time, cancel only in 2 (R20)."""
    eids = [d.eid for d in running.fleet.devices]
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        code, body, _ = await running.get(http, "/api/v1/write/apply", token=token, eid=eids[0], write_type=1,
                                          province_code="44")
        assert code == 200 and fields(body) == {"task_id", "card_status", "status_desc"}
        assert (body["card_status"], body["status_desc"]) == (2, "待开机上电")
        task = body["task_id"]
        code, again, _ = await running.post(http, "/api/v1/write/apply", {"token": token, "eid": eids[0],
                                                                           "write_type": 1, "province_code": "44"})
        assert code == 200 and again["task_id"] == task
        code, body, _ = await running.get(http, "/api/v1/write/status", token=token, task_id=task)
        assert code == 200 and fields(body) == {"eid", "task_id", "card_status", "status_desc", "progress",
                                                "write_time"}
        assert (body["card_status"], body["progress"], body["write_time"]) == (2, 0, None)
        card = await cards.start_writing(running.fleet.devices[0], running.platform.ports["bip"])  # 2 → 3
        code, body, _ = await running.get(http, "/api/v1/write/cancel", token=token, task_id=task)
        assert (code, body["error"]) == (403, "STATE_NOT_ALLOWED")
        await cards.finish(card)
        code, body, _ = await running.get(http, "/api/v1/write/status", token=token, eid=eids[0])
        assert (body["card_status"], body["status_desc"], body["progress"]) == (4, "写卡成功", 100)
        assert body["write_time"].endswith("+08:00")
        code, body, _ = await running.get(http, "/api/v1/write/apply", token=token, eid=eids[1], write_type=1,
                                          province_code="44")
        code, body, _ = await running.get(http, "/api/v1/write/cancel", token=token, eid=eids[1])
        assert code == 200 and fields(body) == {"cancel_time"} and body["cancel_time"].endswith("+08:00")
        code, body, _ = await running.get(http, "/api/v1/write/status", token=token, eid=eids[1])
        assert body["card_status"] == 1


async def test_write_errors_400_403_404_409(running):
    """DESIGN §6 status mapping: 400 bad or missing parameter, 403, 404 unknown, 409 conflicting apply."""
    eids = [d.eid for d in running.fleet.devices]
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        cases = [
            (dict(eid=eids[2], province_code="44"), 400, "WRITE_TYPE_REQUIRED"),
            (dict(eid=eids[2], write_type="x"), 400, "PARAM_INVALID"),
            (dict(eid="1234", write_type=1, province_code="44"), 400, "EID_INVALID"),
            (dict(eid=eids[2], write_type=1), 400, "PROVINCE_REQUIRED"),
            (dict(eid=fleetdata.make_eid(99_999_999), write_type=1, province_code="44"), 404, "EID_NOT_FOUND"),
            (dict(eid=eids[2], write_type=0, iccid="89860000000000000019", msisdn="1440999999999"), 403,
             "NUMBER_NOT_ALLOCATED"),
        ]
        for params, want, reason in cases:
            code, body, _ = await running.get(http, "/api/v1/write/apply", token=token, **params)
            assert (code, body["code"], body["error"]) == (want, want, reason), params
        await running.get(http, "/api/v1/write/apply", token=token, eid=eids[3], write_type=1, province_code="44")
        code, body, _ = await running.get(http, "/api/v1/write/apply", token=token, eid=eids[3], write_type=1,
                                          province_code="11")
        assert (code, body["error"]) == (409, "APPLY_CONFLICT")
        code, body, _ = await running.get(http, "/api/v1/write/status", token=token, task_id="Tnope")
        assert (code, body["error"]) == (404, "TASK_NOT_FOUND")
        code, body, _ = await running.get(http, "/api/v1/write/cancel", token=token)
        assert (code, body["error"]) == (400, "EID_OR_TASK_REQUIRED")
        code, body, _ = await running.post(http, "/api/v1/write/status", [1, 2],
                                           headers={"Authorization": f"Bearer {token}"})
        assert (code, body["error"]) == (400, "BODY_INVALID")


async def _written(running, pool, http, token, i: int) -> dict:
    """Apply and complete a write on device i; returns the number written."""
    eid = running.fleet.devices[i].eid
    await running.get(http, "/api/v1/write/apply", token=token, eid=eid, write_type=1, province_code="44")
    assert (await cards.write(running.fleet.devices[i], running.platform.ports["bip"])).ok
    row = await pool.fetchrow("SELECT msisdn, iccid FROM numbers WHERE chip_id = (SELECT id FROM chips "
                              "WHERE eid = $1)", eid)
    return dict(row, eid=eid)


async def test_chip_and_number_queries(running, pool):
    """§7.2.3.1–§7.2.3.5 with exactly their fields (R19), usage from ingested records, location (R21)."""
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        dev = running.fleet.devices[4]
        code, chip, _ = await running.get(http, "/api/v1/chip/info", token=token, eid=dev.eid)
        assert code == 200 and fields(chip) == {"eid", "imei", "chip_model", "temp_msisdn", "temp_iccid",
                                                "card_status", "status_desc", "remaining_flow"}
        assert (chip["temp_iccid"], chip["imei"], chip["card_status"], chip["remaining_flow"]) == \
            (dev.temp_iccid, dev.imei, 1, 10.0)
        code, st, _ = await running.get(http, "/api/v1/number/open-status", token=token, eid=dev.eid)
        assert code == 200 and fields(st) == {"eid", "msisdn", "open_time", "card_status", "status_desc",
                                              "expire_time"}
        assert st["expire_time"].endswith("+08:00") and st["msisdn"] == chip["temp_msisdn"]
        n = await _written(running, pool, http, token, 5)
        code, num, _ = await running.get(http, "/api/v1/number/info", token=token, msisdn=n["msisdn"])
        assert code == 200 and fields(num) == {"msisdn", "iccid", "eid", "province", "card_status", "status_desc",
                                               "open_time"}
        assert (num["iccid"], num["eid"], num["province"], num["card_status"]) == (n["iccid"], n["eid"], "广东", 4)
        await usage.ingest_usage(pool, [("r1", n["msisdn"], "", 12.5, "2099-01-01T00:00:00+08:00"),
                                        ("r2", "", n["iccid"], 2.25, usage.parse_time(
                                            "2024-01-01T00:00:00", "t").isoformat())])
        import datetime as dt
        now = dt.datetime.now(usage.CST).isoformat()
        await usage.ingest_usage(pool, [("r3", n["msisdn"], "", 30.5, now), ("r3", n["msisdn"], "", 30.5, now)])
        code, use, _ = await running.get(http, "/api/v1/number/usage", token=token, iccid=n["iccid"])
        assert code == 200 and fields(use) == {"msisdn", "iccid", "total_flow", "used_flow", "remaining_flow",
                                               "update_time"}
        assert (use["total_flow"], use["used_flow"], use["remaining_flow"]) == (100.0, 30.5, 69.5)
        await usage.ingest_locations(pool, [(n["msisdn"], "", "深圳", now)])
        code, loc, _ = await running.get(http, "/api/v1/number/location", token=token, msisdn=n["msisdn"])
        assert code == 200 and fields(loc) == {"msisdn", "city", "province", "location_time"}
        assert (loc["city"], loc["province"]) == ("深圳", "广东")
        code, st, _ = await running.get(http, "/api/v1/number/open-status", token=token, msisdn=n["msisdn"])
        assert (st["eid"], st["card_status"], st["expire_time"]) == (n["eid"], 4, None) and st["open_time"]


async def test_query_errors(running):
    """400 missing or malformed, 404 unknown EID or number (§7.2.3)."""
    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        for path, params, want, reason in [
            ("/api/v1/chip/info", {}, 400, "EID_INVALID"),
            ("/api/v1/chip/info", {"eid": fleetdata.make_eid(99_999_998)}, 404, "EID_NOT_FOUND"),
            ("/api/v1/number/info", {}, 400, "NUMBER_REQUIRED"),
            ("/api/v1/number/info", {"msisdn": "13800000000"}, 400, "MSISDN_NOT_IOT"),
            ("/api/v1/number/usage", {"msisdn": "1440999999999"}, 404, "NUMBER_NOT_FOUND"),
            ("/api/v1/number/location", {"iccid": "89860000000000000019"}, 404, "NUMBER_NOT_FOUND"),
            ("/api/v1/number/open-status", {"eid": "89x"}, 400, "EID_INVALID"),
        ]:
            code, body, _ = await running.get(http, path, token=token, **params)
            assert (code, body["code"], body["error"]) == (want, want, reason), (path, params)
            assert set(body) == ERR


async def test_permissions_whitelist_limits_and_revocation(running, pool):
    """DESIGN §6: per-API permission 403, whitelist 403, 429 with Retry-After and RateLimit-*; rotation
    of the secret revokes tokens within 5 s (R17)."""
    cid, _, secret, _ = await fleetdata.create_client(pool, permissions=("chip",))
    await admin.update_client(pool, cid, rate_limit_per_min=3)  # `esimota client update` (R17)
    async with aiohttp.ClientSession() as http:
        await asyncio.sleep(2.5)  # the client cache of every process refreshes within 2 s
        token = await running.token(http, cid, secret)
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token)
        assert (code, body["error"]) == (403, "NO_PERMISSION")
        for _ in range(3):  # the refused call above was not counted: limits apply to permitted calls
            code, body, headers = await running.get(http, "/api/v1/chip/info", token=token, eid="1")
        assert code == 400 and headers["RateLimit-Remaining"] == "0"
        code, body, headers = await running.get(http, "/api/v1/chip/info", token=token, eid="1")
        assert (code, body["code"], body["error"]) == (429, 429, "RATE_LIMITED")
        assert 1 <= int(headers["Retry-After"]) <= 60 and headers["RateLimit-Limit"] == "3"
        token = await running.token(http)
        await admin.update_client(pool, running.fleet.client_id, ip="10.0.0.0/8")
        await asyncio.sleep(2.5)
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token)
        assert (code, body["error"]) == (403, "IP_NOT_WHITELISTED")
        code, body, _ = await running.get(http, "/api/v1/auth/token", client_id=running.fleet.client_id,
                                          client_secret=running.fleet.client_secret)
        assert (code, body["error"]) == (403, "IP_NOT_WHITELISTED")
        await admin.update_client(pool, running.fleet.client_id, ip="127.0.0.1/32")
        await admin.rotate_secret(pool, running.fleet.client_id)
        await asyncio.sleep(2.5)
        code, body, _ = await running.get(http, "/api/v1/write/provinces", token=token)
        assert (code, body["error"]) == (401, "TOKEN_REVOKED")


async def test_call_log_keeps_every_call_without_secrets(running, pool):
    """R27: client, route, parameters (no secret), code, latency, source IP; purged after 6 months."""
    from esimota.store import call_log

    async with aiohttp.ClientSession() as http:
        token = await running.token(http)
        await running.get(http, "/api/v1/chip/info", token=token, eid=running.fleet.devices[0].eid)
    await running.platform.api.call_log.flush()
    rows = await pool.fetch("SELECT * FROM api_calls ORDER BY id")
    assert [(r["route"], r["code"]) for r in rows] == [("/esimota.v1.AuthService/GetToken", 200),
                                                       ("/esimota.v1.QueryService/GetChip", 200)]
    text = json.dumps([dict(r) for r in rows], default=str)
    assert running.fleet.client_secret not in text and token not in text
    assert rows[1]["client_id"] == running.fleet.client_id and str(rows[1]["source_ip"]) == "127.0.0.1"
    assert json.loads(rows[1]["params"]) == {"eid": running.fleet.devices[0].eid}
    assert all(len(r["request_id"]) == 24 for r in rows) and rows[0]["request_id"] != rows[1]["request_id"]
    await pool.execute("UPDATE api_calls SET at = now() - interval '200 days' WHERE id = $1", rows[0]["id"])
    assert await call_log.purge(pool) == 1
    assert await pool.fetchval("SELECT count(*) FROM api_calls") == 1


async def _token_status(r, http, xff: str | None) -> int:
    params = dict(client_id=r.fleet.client_id, client_secret=r.fleet.client_secret)
    headers = {"X-Forwarded-For": xff} if xff is not None else {}
    async with http.get(r.base_url + "/api/v1/auth/token", params=params, ssl=r.ssl, headers=headers) as resp:
        return resp.status


async def test_a_spoofed_proxy_header_from_an_untrusted_peer_changes_nothing(tmp_path, monkeypatch, db_url, pool):
    """DESIGN §6: with ESIMOTA_TRUSTED_PROXY_HEADER set but the peer not in ESIMOTA_TRUSTED_PROXIES, the
    header moves neither the whitelist (HTTP and gRPC) nor the per-address GetToken throttle."""
    from esimota.api import core

    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1,
                    env={"ESIMOTA_TRUSTED_PROXY_HEADER": "X-Forwarded-For"})
    try:
        await pool.execute("UPDATE clients SET ip_whitelist = '{203.0.113.0/24}'")
        await r.platform.api.clients.reload()
        async with aiohttp.ClientSession() as http:
            assert await _token_status(r, http, "203.0.113.9") == 403
            async with r.channel() as ch:
                with pytest.raises(grpc.aio.AioRpcError) as err:
                    await auth_pb2_grpc.AuthServiceStub(ch).GetToken(
                        auth_pb2.GetTokenRequest(client_id=r.fleet.client_id, client_secret=r.fleet.client_secret),
                        metadata=(("x-forwarded-for", "203.0.113.9"),))
                assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
            # every call below claims another address; all count as 127.0.0.1's (two used above), which runs out
            codes = [await _token_status(r, http, f"198.51.100.{i % 250}") for i in range(core.TOKEN_CALLS_PER_IP)]
            assert set(codes[:-2]) == {403} and codes[-2:] == [429, 429]
    finally:
        await stop(r)


async def test_trusted_proxy_header_rightmost_untrusted_address(tmp_path, monkeypatch, db_url, pool):
    """DESIGN §6: from a trusted proxy the caller is the rightmost address of the header that is not itself
    a trusted proxy; what the caller wrote to the left of it proves nothing (HTTP and gRPC alike)."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1,
                    env={"ESIMOTA_TRUSTED_PROXY_HEADER": "X-Forwarded-For",
                         "ESIMOTA_TRUSTED_PROXIES": "127.0.0.0/8, 10.9.0.0/16"})
    try:
        await pool.execute("UPDATE clients SET ip_whitelist = '{203.0.113.0/24}'")
        await r.platform.api.clients.reload()
        async with aiohttp.ClientSession() as http:
            assert await _token_status(r, http, "198.51.100.1, 203.0.113.9") == 200
            assert await _token_status(r, http, "203.0.113.9, 10.9.1.1") == 200  # a trusted hop is skipped
            assert await _token_status(r, http, "203.0.113.9, 198.51.100.1") == 403  # spoofed on the left
            assert await _token_status(r, http, None) == 403  # the proxy itself is not whitelisted
        async with r.channel() as ch:
            res = await auth_pb2_grpc.AuthServiceStub(ch).GetToken(
                auth_pb2.GetTokenRequest(client_id=r.fleet.client_id, client_secret=r.fleet.client_secret),
                metadata=(("x-forwarded-for", "203.0.113.9"),))
            assert res.token
    finally:
        await stop(r)


async def test_request_id_is_returned_and_kept_in_the_call_log(running, pool):
    """Issue 17: every call has a request id, the caller's X-Request-Id when it is sane; it comes back as
    X-Request-Id and is stored with the call (and put on every log line written while it runs)."""
    async with aiohttp.ClientSession() as http:
        async with http.get(running.base_url + "/api/v1/write/provinces",
                            headers={"X-Request-Id": "partner-7f3a-0001"}, ssl=running.ssl) as r:
            assert r.status == 401 and r.headers["X-Request-Id"] == "partner-7f3a-0001"
        async with http.get(running.base_url + "/api/v1/write/provinces", ssl=running.ssl,
                            headers={"X-Request-Id": "x"}) as r:  # too short: replaced, never trusted
            fresh = r.headers["X-Request-Id"]
            assert fresh != "x" and len(fresh) == 24
    await running.platform.api.call_log.flush()
    rows = await pool.fetch("SELECT request_id, code FROM api_calls ORDER BY id")
    assert [(r["request_id"], r["code"]) for r in rows] == [("partner-7f3a-0001", 401), (fresh, 401)]
