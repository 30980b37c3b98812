"""Every rpc through a real gRPC channel over TLS: the same use cases and error codes as the bridge (§7)."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from esimota.sim import fleetdata
from esimota.v1 import (admin_pb2, admin_pb2_grpc, auth_pb2, auth_pb2_grpc, ingest_pb2, ingest_pb2_grpc,
                        queries_pb2, queries_pb2_grpc, writing_pb2, writing_pb2_grpc)

from tests.support import cards
from tests.support.waiting import until

from .test_api_harness import running  # noqa: F401  (fixture)


def bearer(token: str) -> tuple:
    return (("authorization", f"Bearer {token}"),)


async def fails(call, code: grpc.StatusCode, reason: str) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as err:
        await call
    assert err.value.code() == code, err.value.details()
    assert dict(err.value.trailing_metadata())["esimota-reason"] == reason


async def _token(ch, fleet) -> tuple:
    res = await auth_pb2_grpc.AuthServiceStub(ch).GetToken(
        auth_pb2.GetTokenRequest(client_id=fleet.client_id, client_secret=fleet.client_secret))
    assert res.expire_time == 86400
    return bearer(res.token)


async def test_auth_and_writing_rpcs(running, pool):
    """§7.2.1–§7.2.2.4 over gRPC, with UNAUTHENTICATED / INVALID_ARGUMENT / NOT_FOUND / ABORTED / PERMISSION_DENIED."""
    eids = [d.eid for d in running.fleet.devices]
    async with running.channel() as ch, running.admin_channel() as ach:
        auth = auth_pb2_grpc.AuthServiceStub(ch)
        await fails(auth.GetToken(auth_pb2.GetTokenRequest(client_id="x", client_secret="y")),
                    grpc.StatusCode.UNAUTHENTICATED, "BAD_CREDENTIALS")
        md = await _token(ch, running.fleet)
        w = writing_pb2_grpc.WritingServiceStub(ch)
        provinces = await w.ListProvinces(writing_pb2.ListProvincesRequest(), metadata=md)
        assert [p.province_code for p in provinces.provinces] == ["44"]  # where the fleet's numbers are
        await fails(w.ListProvinces(writing_pb2.ListProvincesRequest()), grpc.StatusCode.UNAUTHENTICATED,
                    "TOKEN_REQUIRED")
        res = await w.ApplyWrite(writing_pb2.ApplyWriteRequest(eid=eids[0], write_type=1, province_code="44"),
                                 metadata=md)
        assert (res.card_status, res.status_desc) == (2, "待开机上电")
        await fails(w.ApplyWrite(writing_pb2.ApplyWriteRequest(eid=eids[0], write_type=1, province_code="11"),
                                 metadata=md), grpc.StatusCode.ABORTED, "APPLY_CONFLICT")
        await fails(w.ApplyWrite(writing_pb2.ApplyWriteRequest(eid=eids[1]), metadata=md),
                    grpc.StatusCode.INVALID_ARGUMENT, "WRITE_TYPE_REQUIRED")
        st = await w.GetWriteStatus(writing_pb2.GetWriteStatusRequest(task_id=res.task_id), metadata=md)
        assert (st.card_status, st.progress, st.HasField("write_time")) == (2, 0, False)
        await fails(w.GetWriteStatus(writing_pb2.GetWriteStatusRequest(task_id="T0"), metadata=md),
                    grpc.StatusCode.NOT_FOUND, "TASK_NOT_FOUND")
        await cards.start_writing(running.fleet.devices[0], running.platform.ports["bip"])  # 2 → 3
        await fails(w.CancelWrite(writing_pb2.CancelWriteRequest(eid=eids[0]), metadata=md),
                    grpc.StatusCode.PERMISSION_DENIED, "STATE_NOT_ALLOWED")
        await w.ApplyWrite(writing_pb2.ApplyWriteRequest(eid=eids[1], write_type=1, province_code="44"), metadata=md)
        cancelled = await w.CancelWrite(writing_pb2.CancelWriteRequest(eid=eids[1]), metadata=md)
        assert cancelled.cancel_time.endswith("+08:00")


async def test_watch_and_bulk_streams(running, pool):
    """WatchWriteStatus streams each change until the write ends; BulkApplyWrite answers every item."""
    eids = [d.eid for d in running.fleet.devices]
    async with running.channel() as ch, running.admin_channel() as ach:
        md = await _token(ch, running.fleet)
        w = writing_pb2_grpc.WritingServiceStub(ch)
        reqs = [writing_pb2.ApplyWriteRequest(eid=e, write_type=1, province_code="44") for e in eids[:3]]
        reqs.append(writing_pb2.ApplyWriteRequest(eid="bad", write_type=1, province_code="44"))

        async def gen():
            for r in reqs:
                yield r
        out = [r async for r in w.BulkApplyWrite(gen(), metadata=md)]
        assert [(o.eid, o.status.code, o.status.error) for o in out] == \
            [(e, 200, "") for e in eids[:3]] + [("bad", 400, "EID_INVALID")]
        seen = []

        async def watch():
            async for st in w.WatchWriteStatus(writing_pb2.GetWriteStatusRequest(eid=eids[2]), metadata=md):
                seen.append((st.card_status, st.progress))
        watcher = asyncio.create_task(watch())
        await until(lambda: seen, "the stream's first answer (the status now)")
        dev = await cards.start_writing(running.fleet.devices[2], running.platform.ports["bip"])
        await until(lambda: (3, 0) in seen, "the stream's answer for 写卡中")
        await cards.finish(dev)
        await asyncio.wait_for(watcher, 5)
        assert seen[0] == (2, 0) and (3, 0) in seen and seen[-1] == (4, 100)
        assert seen == sorted(seen) and len(set(seen)) == len(seen)  # each change once, never backwards


async def test_query_and_ingest_rpcs(running, pool):
    """§7.2.3.1–§7.2.3.5 over gRPC; IngestUsage and IngestLocation client streams (on the operations
    listener) need a staff token whose roles may import resources."""
    dev = running.fleet.devices[0]
    admin_md = bearer(running.staff_token)
    async with running.channel() as ch, running.admin_channel() as ach:
        md = await _token(ch, running.fleet)
        q = queries_pb2_grpc.QueryServiceStub(ch)
        chip = await q.GetChip(queries_pb2.GetChipRequest(eid=dev.eid), metadata=md)
        assert (chip.temp_iccid, chip.card_status) == (dev.temp_iccid, 1)
        await fails(q.GetChip(queries_pb2.GetChipRequest(eid=fleetdata.make_eid(77)), metadata=md),
                    grpc.StatusCode.NOT_FOUND, "EID_NOT_FOUND")
        w = writing_pb2_grpc.WritingServiceStub(ch)
        await w.ApplyWrite(writing_pb2.ApplyWriteRequest(eid=dev.eid, write_type=1, province_code="44"), metadata=md)
        assert (await cards.write(dev, running.platform.ports["bip"])).ok
        msisdn = await pool.fetchval("SELECT msisdn FROM numbers WHERE status = 'bound'")
        ing = ingest_pb2_grpc.IngestServiceStub(ach)
        recs = [ingest_pb2.UsageRecord(record_id=f"u{i}", msisdn=msisdn, used_mb=1.5,
                                       recorded_at="2099-12-31T23:59:59+08:00" if i == 9 else "")
                for i in range(3)]
        recs[1].recorded_at = recs[2].recorded_at = __import__("datetime").datetime.now().isoformat()
        # refused before a record is read; sent with no record: a client stream the server ends while the
        # client still writes gets grpcio aio's INTERNAL "Failed execute_batch" in place of the server's
        # status, now and then (grpc/grpc#36066)
        await fails(ing.IngestUsage(iter(())), grpc.StatusCode.UNAUTHENTICATED, "STAFF_TOKEN_REQUIRED")
        summary = await ing.IngestUsage(iter(recs), metadata=admin_md)
        assert (summary.received, summary.stored, [r.error for r in summary.rejected]) == (3, 2, ["TIME_INVALID"])
        usage = await q.GetUsage(queries_pb2.NumberRequest(msisdn=msisdn), metadata=md)
        assert (usage.used_flow, usage.remaining_flow) == (3.0, 97.0)
        locs = [ingest_pb2.LocationRecord(msisdn=msisdn, city="广州", location_time="2026-01-01T08:00:00+08:00"),
                ingest_pb2.LocationRecord(msisdn=msisdn, city="佛山", location_time="2025-01-01T08:00:00+08:00")]
        summary = await ing.IngestLocation(iter(locs), metadata=admin_md)
        assert (summary.received, summary.stored) == (2, 1)  # the older location does not win (R21)
        loc = await q.GetLocation(queries_pb2.NumberRequest(msisdn=msisdn), metadata=md)
        assert (loc.city, loc.province) == ("广州", "广东")
        num = await q.GetNumber(queries_pb2.NumberRequest(msisdn=msisdn), metadata=md)
        assert (num.eid, num.card_status) == (dev.eid, 4)
        st = await q.GetOpenStatus(queries_pb2.GetOpenStatusRequest(eid=dev.eid), metadata=md)
        assert (st.msisdn, st.HasField("expire_time")) == (msisdn, False)
        await fails(q.GetNumber(queries_pb2.NumberRequest(), metadata=md), grpc.StatusCode.INVALID_ARGUMENT,
                    "NUMBER_REQUIRED")


async def test_admin_rpcs(running, pool):
    """Clients (R15), rotation revoking tokens (R17), whitelist, permissions, disable, 划拨, exceptions."""
    admin_md = bearer(running.staff_token)
    async with running.channel() as ch, running.admin_channel() as ach:
        a = admin_pb2_grpc.AdminServiceStub(ach)
        await fails(a.CreateClient(admin_pb2.CreateClientRequest(name="p"), metadata=bearer("adm.nope")),
                    grpc.StatusCode.UNAUTHENTICATED, "STAFF_TOKEN_REQUIRED")
        await fails(a.CreateClient(admin_pb2.CreateClientRequest(name="p", phone="13800000000",
                                                                 ip_whitelist=["x"], callback_url="https://p/cb"),
                                   metadata=admin_md), grpc.StatusCode.INVALID_ARGUMENT, "IP_INVALID")
        made = await a.CreateClient(admin_pb2.CreateClientRequest(
            name="partner", phone="13800000000", ip_whitelist=["127.0.0.1/32"], callback_url="https://p/cb",
            permissions=["chip"]), metadata=admin_md)
        assert made.client.permissions == ["chip"] and made.client_secret and made.callback_secret
        cid = made.client.client_id
        fleet = type("F", (), {"client_id": cid, "client_secret": made.client_secret})
        md = await _token(ch, fleet)
        rotated = await a.RotateClientSecret(admin_pb2.ClientRef(client_id=cid), metadata=admin_md)
        assert rotated.client_secret != made.client_secret
        q = queries_pb2_grpc.QueryServiceStub(ch)

        async def revoked() -> bool:  # an ordinary call, until the client cache's refresh brings the rotation
            try:
                await q.GetChip(queries_pb2.GetChipRequest(eid="1"), metadata=md)
            except grpc.aio.AioRpcError as err:
                return dict(err.trailing_metadata()).get("esimota-reason") == "TOKEN_REVOKED"
            return False
        await until(revoked, "the rotated secret revokes the token", every=0.2)
        await fails(q.GetChip(queries_pb2.GetChipRequest(eid="1"), metadata=md), grpc.StatusCode.UNAUTHENTICATED,
                    "TOKEN_REVOKED")
        info = await a.SetPermissions(admin_pb2.SetPermissionsRequest(client_id=cid, permissions=["chip", "number"]),
                                      metadata=admin_md)
        assert list(info.permissions) == ["chip", "number"]
        info = await a.SetWhitelist(admin_pb2.SetWhitelistRequest(client_id=cid, ip_whitelist=["10.0.0.0/8"]),
                                    metadata=admin_md)
        assert list(info.ip_whitelist) == ["10.0.0.0/8"]
        assert (await a.DisableClient(admin_pb2.ClientRef(client_id=cid), metadata=admin_md)).disabled
        await fails(a.DisableClient(admin_pb2.ClientRef(client_id="nobody"), metadata=admin_md),
                    grpc.StatusCode.NOT_FOUND, "CLIENT_NOT_FOUND")
        iccid = running.fleet.numbers[0]["iccid"]
        done = await a.AllocateNumbers(admin_pb2.AllocateNumbersRequest(client_id=running.fleet.client_id,
                                                                        iccids=[iccid]), metadata=admin_md)
        assert list(done.iccids) == [iccid]
        await pool.execute("INSERT INTO exceptions (class, severity, kind, deadline_at) "
                           "VALUES ('interface', 'general', 'X', now())")
        exc = await a.ListExceptions(admin_pb2.ListExceptionsRequest(category="interface"), metadata=admin_md)
        assert [(e.category, e.kind) for e in exc.exceptions] == [("interface", "X")]
        await fails(a.RepushCallback(admin_pb2.RepushCallbackRequest(event_id="E0"), metadata=admin_md),
                    grpc.StatusCode.NOT_FOUND, "EVENT_NOT_FOUND")


async def test_request_id_in_initial_metadata_and_the_call_log(running, pool):
    """Issue 17: x-request-id comes back as initial metadata (the caller's when sane), and is stored
    with the call; the gRPC calls are counted by method and code."""
    from esimota import metrics

    method = "/esimota.v1.WritingService/ListProvinces"
    before = metrics.GRPC_REQUESTS.labels(method, "UNAUTHENTICATED")._value.get()
    async with running.channel() as ch:
        call = writing_pb2_grpc.WritingServiceStub(ch).ListProvinces(
            writing_pb2.ListProvincesRequest(), metadata=(("x-request-id", "partner-grpc-0001"),))
        await fails(call, grpc.StatusCode.UNAUTHENTICATED, "TOKEN_REQUIRED")
        assert dict(await call.initial_metadata())["x-request-id"] == "partner-grpc-0001"
    await running.platform.api.call_log.flush()
    assert await pool.fetchval("SELECT request_id FROM api_calls WHERE route = $1", method) == "partner-grpc-0001"
    assert metrics.GRPC_REQUESTS.labels(method, "UNAUTHENTICATED")._value.get() == before + 1
