"""Issue 14 over real sockets: partners confined to their chips, streams bounded, the bridge's answers and TLS.

Each test is one hole an attacker on loopback found in `esimota serve`, closed.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl

import aiohttp
import grpc
import pytest
from google.protobuf import descriptor_pb2

from esimota.service import admin
from esimota.sim import fleetdata
from esimota.v1 import auth_pb2, auth_pb2_grpc, writing_pb2, writing_pb2_grpc

from .test_api_harness import start, stop


async def _client(pool, r, name: str, rate: int = 600):
    """A partner as the operator creates it (https callback), its secret, and a token from the bridge."""
    made = await admin.create_client(pool, name=name, phone="13800000009", ip="127.0.0.1",
                                     callback_url=f"https://{name}.example/cb", rate_limit_per_min=rate)
    await r.platform.api.clients.reload()
    return made


async def test_a_chip_not_allocated_to_the_caller_answers_as_an_unknown_eid(tmp_path, monkeypatch, db_url, pool):
    """DESIGN §6: apply, cancel, status and chip info on another client's chip, on an unallocated chip and
    on an EID that does not exist give the same status and body (404 EID_NOT_FOUND); nothing changes."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=3)
    try:
        theirs, free, _ = (d.eid for d in r.fleet.devices)
        await admin.release_chips(pool, r.fleet.client_id, [free])
        unknown = fleetdata.make_eid(99_999_996)  # valid check digits, in no database
        b = await _client(pool, r, "intruder")
        async with aiohttp.ClientSession() as http:
            token = await r.token(http, b.client.client_id, b.client_secret)
            answers = {}
            for eid in (theirs, free, unknown):
                answers[eid] = [
                    await r.get(http, "/api/v1/write/apply", token=token, eid=eid, write_type=1, province_code="44"),
                    await r.get(http, "/api/v1/write/cancel", token=token, eid=eid),
                    await r.get(http, "/api/v1/write/status", token=token, eid=eid),
                    await r.get(http, "/api/v1/chip/info", token=token, eid=eid),
                    await r.get(http, "/api/v1/number/open-status", token=token, eid=eid)]
        bodies = {eid: [(code, body) for code, body, _ in calls] for eid, calls in answers.items()}
        assert bodies[theirs] == bodies[free] == bodies[unknown]
        assert {(code, body["error"], body["message"]) for code, body in bodies[theirs]} == \
            {(404, "EID_NOT_FOUND", "unknown EID")}
        assert await pool.fetchval("SELECT count(*) FROM tasks") == 0
        assert await pool.fetchval("SELECT array_agg(DISTINCT state) FROM chips") == [1]
    finally:
        await stop(r)


async def test_every_stream_item_counts_against_the_rate_limit(tmp_path, monkeypatch, db_url, pool):
    """R17: 300 applies on one BulkApplyWrite stream of a client limited to 5 calls a minute: the stream's
    opening and 4 items are judged, every other item is answered 429 RATE_LIMITED and touches nothing."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=300)
    try:
        b = await _client(pool, r, "bulk", rate=5)
        await admin.release_chips(pool, r.fleet.client_id, batch=r.fleet.batch)
        await admin.allocate_chips(pool, "bulk", batch=r.fleet.batch)
        async with r.channel() as ch:
            got = await auth_pb2_grpc.AuthServiceStub(ch).GetToken(
                auth_pb2.GetTokenRequest(client_id=b.client.client_id, client_secret=b.client_secret))
            md = (("authorization", f"Bearer {got.token}"),)

            async def items():
                for d in r.fleet.devices:
                    yield writing_pb2.ApplyWriteRequest(eid=d.eid, write_type=1, province_code="44")
            out = [o async for o in writing_pb2_grpc.WritingServiceStub(ch).BulkApplyWrite(items(), metadata=md)]
        codes = [o.status.code for o in out]  # the first 4 are judged (this client has no numbers: 403)
        assert len(out) == 300 and 429 not in codes[:4] and set(codes[4:]) == {429}
        assert {o.status.error for o in out[:4]} == {"NO_RESOURCE"}
        assert {o.status.error for o in out[4:]} == {"RATE_LIMITED"}
        assert await pool.fetchval("SELECT count(*) FROM task_events") == 4  # 296 items touched nothing
    finally:
        await stop(r)


async def test_every_item_of_an_apply_batch_counts_against_the_rate_limit(tmp_path, monkeypatch, db_url, pool):
    """R17, issue 14's attack run: one POST /api/v1/write/apply-batch of 100 items by a client limited to 5
    calls a minute applied all 100. Now each item is one call (the request itself pays for the first): 5
    items are judged, the other 95 are answered 429 RATE_LIMITED and touch nothing, as on BulkApplyWrite."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=100)
    try:
        b = await _client(pool, r, "batcher", rate=5)
        await admin.release_chips(pool, r.fleet.client_id, batch=r.fleet.batch)
        await admin.allocate_chips(pool, "batcher", batch=r.fleet.batch)
        items = [{"eid": d.eid, "write_type": 1, "province_code": "44"} for d in r.fleet.devices]
        async with aiohttp.ClientSession() as http:
            token = await r.token(http, b.client.client_id, b.client_secret)
            code, body, _ = await r.post(http, "/api/v1/write/apply-batch", {"items": items},
                                         headers={"Authorization": f"Bearer {token}"})
        assert code == 200 and len(body["items"]) == 100
        errors = [item["error"] for item in body["items"]]
        assert set(errors[:5]) == {"NO_RESOURCE"}  # judged: this client has no numbers
        assert set(errors[5:]) == {"RATE_LIMITED"} and {i["code"] for i in body["items"][5:]} == {429}
        assert await pool.fetchval("SELECT count(*) FROM task_events") == 5  # 95 items touched nothing
    finally:
        await stop(r)


async def test_watch_streams_are_capped_per_client_and_end_with_their_lifetime(tmp_path, monkeypatch, db_url, pool):
    """R17: WatchWriteStatus streams a client holds open are capped (RESOURCE_EXHAUSTED beyond), and a
    stream ends by itself once its lifetime is over, giving its place back."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1,
                    env={"ESIMOTA_WATCH_STREAMS": "2", "ESIMOTA_WATCH_LIFETIME": "2"})
    try:
        eid = r.fleet.devices[0].eid
        async with aiohttp.ClientSession() as http:
            token = await r.token(http)
            code, _, _ = await r.get(http, "/api/v1/write/apply", token=token, eid=eid, write_type=1,
                                     province_code="44")
            assert code == 200  # card 2: a watch of it does not end on its own
        async with r.channel() as ch:
            w = writing_pb2_grpc.WritingServiceStub(ch)
            md = (("authorization", f"Bearer {token}"),)
            watches = [w.WatchWriteStatus(writing_pb2.GetWriteStatusRequest(eid=eid), metadata=md) for _ in range(2)]
            for call in watches:
                assert (await call.read()).card_status == 2
            third = w.WatchWriteStatus(writing_pb2.GetWriteStatusRequest(eid=eid), metadata=md)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await third.read()
            assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            assert dict(err.value.trailing_metadata())["esimota-reason"] == "TOO_MANY_STREAMS"
            for call in watches:  # nothing changes on the card: only the lifetime can end them
                assert await asyncio.wait_for(call.read(), 30) is grpc.aio.EOF
                assert await call.code() == grpc.StatusCode.OK
            again = w.WatchWriteStatus(writing_pb2.GetWriteStatusRequest(eid=eid), metadata=md)
            assert (await again.read()).card_status == 2
            again.cancel()
    finally:
        await stop(r)


async def test_every_answer_of_the_bridge_is_the_json_envelope(tmp_path, monkeypatch, db_url, pool, caplog):
    """DESIGN §6: an unknown route and a wrong method answer the JSON envelope; HSTS, no version banner;
    an oversized request line gets a 4xx that does not echo it (it held a token) and no traceback."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1)
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(r.base_url + "/no/such/route", ssl=r.ssl) as resp:
                assert (resp.status, await resp.json()) == (
                    404, {"code": 404, "message": "no such route", "error": "ROUTE_NOT_FOUND"})
                assert resp.headers["Server"] == "esimota"
                assert resp.headers["Strict-Transport-Security"].startswith("max-age=")
            async with http.put(r.base_url + "/api/v1/write/apply", ssl=r.ssl) as resp:
                body = await resp.json()
                assert (resp.status, body["code"], body["error"]) == (405, 405, "METHOD_NOT_ALLOWED")
            code, _, headers = await r.get(http, "/healthz")
            assert code == 200 and headers["Server"] == "esimota" and "aiohttp" not in str(headers)
        secret = "tok" + "S" * 9000
        caplog.set_level(logging.DEBUG)
        raw = await _raw_https(r, f"GET /api/v1/write/status?token={secret} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        logged = [rec for rec in caplog.records if rec.exc_info or "tokSSS" in rec.getMessage()]
        assert logged == []  # one line naming the refusal, no traceback, nothing of the request
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.") and b" 400 " in head.split(b"\r\n")[0]
        assert b"tokSSS" not in raw and b"aiohttp" not in raw and b"Strict-Transport-Security" in head
        assert json.loads(body) == {"code": 400, "message": "the request line or a header is too long",
                                    "error": "REQUEST_TOO_LARGE"}
    finally:
        await stop(r)


async def _raw_https(r, request: bytes) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", r.platform.ports["http"], ssl=r.ssl)
    try:
        writer.write(request)
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


def _handshake(port: int, cert: bytes, version: ssl.TLSVersion, ciphers: str | None = None) -> str:
    """The cipher a client offering only `version` (and `ciphers`) gets, or raises ssl.SSLError."""
    ctx = ssl.create_default_context(cadata=cert.decode())
    ctx.minimum_version = ctx.maximum_version = version
    if ciphers:
        ctx.set_ciphers(ciphers + ":@SECLEVEL=0" if version < ssl.TLSVersion.TLSv1_2 else ciphers)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.cipher()[0]


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # TLS 1.1 is offered on purpose
async def test_tls_12_aead_only_and_13_old_versions_and_cbc_refused(tmp_path, monkeypatch, db_url, pool):
    """R25: the bridge speaks TLS 1.3 and TLS 1.2 with AEAD suites only: CBC suites and TLS 1.1 are refused."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1)
    try:
        port, cert = r.platform.ports["http"], r.cert
        loop = asyncio.get_running_loop()
        assert "GCM" in await loop.run_in_executor(None, _handshake, port, cert, ssl.TLSVersion.TLSv1_2)
        assert (await loop.run_in_executor(None, _handshake, port, cert, ssl.TLSVersion.TLSv1_3)).startswith("TLS_")
        for version, ciphers in ((ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA256:ECDHE-ECDSA-AES256-SHA384:"
                                  "ECDHE-ECDSA-AES128-SHA:ECDHE-RSA-AES128-SHA256:AES128-SHA256"),
                                 (ssl.TLSVersion.TLSv1_1, "ALL")):
            with pytest.raises((ssl.SSLError, ConnectionResetError)):
                await loop.run_in_executor(None, _handshake, port, cert, version, ciphers)
    finally:
        await stop(r)


async def _listed(channel) -> set[str]:
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    async for answer in stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])):
        return {s.name for s in answer.list_services_response.service}
    return set()


async def _described(channel, symbol: str) -> str:
    """What reflection answers to file_containing_symbol: the file's name, or the error code."""
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    ask = reflection_pb2.ServerReflectionRequest(file_containing_symbol=symbol)
    async for answer in stub.ServerReflectionInfo(iter([ask])):
        if answer.HasField("file_descriptor_response"):
            found = descriptor_pb2.FileDescriptorProto.FromString(answer.file_descriptor_response.file_descriptor_proto[0])
            return found.name
        return f"error {answer.error_response.error_code}"
    return ""


async def test_reflection_describes_only_the_listeners_own_services(tmp_path, monkeypatch, db_url, pool):
    """R28, issue 14's attack run: the partner port's reflection listed partner services only but still
    handed out admin.proto to file_containing_symbol (the process's whole descriptor pool); it now
    describes the partner files alone, and the operations listener its own."""
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1)
    try:
        async with r.channel() as ch, r.admin_channel() as ach:
            assert await _described(ch, "esimota.v1.WritingService") == "esimota/v1/writing.proto"
            for symbol in ("esimota.v1.AdminService", "esimota.v1.IngestService", "esimota.v1.AllocateChipsRequest"):
                assert await _described(ch, symbol) == f"error {grpc.StatusCode.NOT_FOUND.value[0]}"
            assert await _described(ach, "esimota.v1.AdminService") == "esimota/v1/admin.proto"
            assert (await _described(ach, "esimota.v1.WritingService")).startswith("error ")
    finally:
        await stop(r)


async def test_staff_services_and_metrics_only_on_the_operations_listener(tmp_path, monkeypatch, db_url, pool):
    """DESIGN §6: reflection on the partner port lists partner services only, AdminService and IngestService
    are not served there at all, and /metrics is not on the bridge; the operations listener has them."""
    from esimota.v1 import admin_pb2, admin_pb2_grpc

    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1)
    try:
        async with r.channel() as ch, r.admin_channel() as ach:
            partner, staff = await _listed(ch), await _listed(ach)
            assert {"esimota.v1.AuthService", "esimota.v1.WritingService"} <= partner
            assert not partner & {"esimota.v1.AdminService", "esimota.v1.IngestService"}
            assert {"esimota.v1.AdminService", "esimota.v1.IngestService"} <= staff
            assert "esimota.v1.WritingService" not in staff
            md = (("authorization", f"Bearer {r.staff_token}"),)
            with pytest.raises(grpc.aio.AioRpcError) as err:
                await admin_pb2_grpc.AdminServiceStub(ch).ListExceptions(admin_pb2.ListExceptionsRequest(), metadata=md)
            assert err.value.code() == grpc.StatusCode.UNIMPLEMENTED
            assert (await admin_pb2_grpc.AdminServiceStub(ach).ListExceptions(
                admin_pb2.ListExceptionsRequest(), metadata=md)) is not None
        async with aiohttp.ClientSession() as http:
            code, body, _ = await r.get(http, "/metrics")
            assert (code, body["error"]) == (404, "ROUTE_NOT_FOUND")
            async with http.get(f"https://127.0.0.1:{r.platform.ports['admin_http']}/metrics", ssl=r.ssl) as resp:
                assert resp.status == 200 and "esimota_http_requests_total" in await resp.text()
        assert r.platform.settings.admin_host == "127.0.0.1"  # loopback unless configured
    finally:
        await stop(r)


async def test_allocate_and_release_chips_over_the_admin_service(tmp_path, monkeypatch, db_url, pool):
    """AdminService AllocateChips / ReleaseChips (§6.2.1.1): by client name, audited under the staff member;
    the partner may apply once its chip is allocated, not before; a refusal lists the bad lines."""
    from esimota.v1 import admin_pb2, admin_pb2_grpc

    r = await start(tmp_path, monkeypatch, db_url, pool, chips=2)
    try:
        eid = r.fleet.devices[0].eid
        b = await _client(pool, r, "newco")
        await admin.release_chips(pool, r.fleet.client_id, [eid])
        md = (("authorization", f"Bearer {r.staff_token}"),)
        async with aiohttp.ClientSession() as http, r.admin_channel() as ach:
            token = await r.token(http, b.client.client_id, b.client_secret)
            apply = dict(token=token, eid=eid, write_type=1, province_code="44")
            assert (await r.get(http, "/api/v1/write/apply", **apply))[0] == 404
            a = admin_pb2_grpc.AdminServiceStub(ach)
            done = await a.AllocateChips(admin_pb2.AllocateChipsRequest(client_id="newco", eids=[eid]), metadata=md)
            assert list(done.eids) == [eid]
            with pytest.raises(grpc.aio.AioRpcError) as err:  # the other chip is the fleet client's
                await a.AllocateChips(admin_pb2.AllocateChipsRequest(client_id="newco", batch=r.fleet.batch),
                                      metadata=md)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            code, body, _ = await r.get(http, "/api/v1/write/apply", **apply)
            assert (code, body["error"]) == (403, "NO_RESOURCE")  # judged now: the chip is newco's (no numbers)
            released = await a.ReleaseChips(admin_pb2.AllocateChipsRequest(client_id=b.client.client_id,
                                                                           eids=[eid]), metadata=md)
            assert list(released.eids) == [eid]
            assert (await r.get(http, "/api/v1/write/apply", **apply))[0] == 404
        rows = await pool.fetch("SELECT actor, action, target FROM audit_log WHERE action LIKE 'chips.%' "
                                "AND actor LIKE 'staff:%' ORDER BY id")
        assert [tuple(x) for x in rows] == [("staff:root", "chips.allocate", b.client.client_id),
                                            ("staff:root", "chips.release", b.client.client_id)]
    finally:
        await stop(r)
