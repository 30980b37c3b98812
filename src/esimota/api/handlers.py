"""Thin adapters: one function per rpc, protobuf request → use case of service/ → protobuf response (STYLE 9)."""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from dataclasses import dataclass
from typing import Any, AsyncIterator, Callable

from ..domain.lifecycle import CardState
from ..errors import EsimotaError, InvalidArgument
from ..service import auth, queries, usage, writing
from ..service.common import CST
from ..v1 import auth_pb2, common_pb2, ingest_pb2, queries_pb2, writing_pb2
from . import status

WATCH_POLL_S = 0.5
FINAL_STATES = {CardState.PENDING_WRITE, CardState.WRITE_SUCCEEDED, CardState.WRITE_FAILED, CardState.APPLY_FAILED}
HANDLERS: dict[str, Callable] = {}


@dataclass
class Call:
    """One authorised call: the pool, the signer, the client (None for public, feed and staff calls), its address.

    `actor` names the caller in the audit log: `client:ID`, `staff:USER` (AdminService) or `admin-api` (feeds).
    """

    pool: Any
    signer: auth.TokenSigner
    client: Any
    source_ip: str
    actor: str
    # one more call against the client's rate limit (R17): every item of a stream pays like a call
    charge: Callable[[], Any] | None = None
    # a server stream ends at this time.monotonic() (its lifetime, ESIMOTA_WATCH_LIFETIME)
    until: float | None = None


def rpc(fn: Callable) -> Callable:
    """Register `fn` as the handler of the rpc of the same name (ApplyWrite ← apply_write)."""
    HANDLERS["".join(p.capitalize() for p in fn.__name__.split("_"))] = fn
    return fn


def iso(value: dt.datetime | dt.date | None) -> str | None:
    """DESIGN §6: ISO 8601 with +08:00; a date is its midnight in China Standard Time."""
    if value is None:
        return None
    if not isinstance(value, dt.datetime):
        value = dt.datetime.combine(value, dt.time(), CST)
    return value.astimezone(CST).isoformat(timespec="seconds")


def _opt(msg: Any, **fields: Any) -> Any:
    """Set the fields that have a value; None leaves an optional field unset (JSON null)."""
    for name, value in fields.items():
        if value is not None:
            setattr(msg, name, value)
    return msg


@rpc
async def get_token(call: Call, req: auth_pb2.GetTokenRequest) -> auth_pb2.GetTokenResponse:
    token, ttl = await auth.get_token(call.pool, call.signer, req.client_id, req.client_secret, call.source_ip)
    return auth_pb2.GetTokenResponse(token=token, expire_time=ttl)


@rpc
async def list_provinces(call: Call, req: writing_pb2.ListProvincesRequest) -> writing_pb2.ListProvincesResponse:
    rows = await queries.list_provinces(call.pool, call.client)
    return writing_pb2.ListProvincesResponse(
        provinces=[common_pb2.Province(province_code=c, province_name=n) for c, n in rows])


def _apply_request(req: writing_pb2.ApplyWriteRequest) -> writing.ApplyRequest:
    if not req.HasField("write_type"):
        raise InvalidArgument("write_type is required (0 designated, 1 auto)", reason="WRITE_TYPE_REQUIRED")
    return writing.ApplyRequest(req.eid, req.write_type, req.province_code or None, req.iccid or None,
                                req.msisdn or None)


@rpc
async def apply_write(call: Call, req: writing_pb2.ApplyWriteRequest) -> writing_pb2.ApplyWriteResponse:
    res = await writing.apply_write(call.pool, call.client, _apply_request(req))
    return writing_pb2.ApplyWriteResponse(task_id=res.task_id, card_status=res.card_status,
                                          status_desc=res.status_desc)


def _status(res: writing.StatusResult) -> writing_pb2.GetWriteStatusResponse:
    msg = writing_pb2.GetWriteStatusResponse(eid=res.eid, task_id=res.task_id, card_status=res.card_status,
                                             status_desc=res.status_desc, progress=res.progress)
    return _opt(msg, write_time=iso(res.write_time))


@rpc
async def get_write_status(call: Call, req: writing_pb2.GetWriteStatusRequest) -> writing_pb2.GetWriteStatusResponse:
    return _status(await writing.write_status(call.pool, call.client, eid=req.eid or None,
                                              task_id=req.task_id or None))


@rpc
async def cancel_write(call: Call, req: writing_pb2.CancelWriteRequest) -> writing_pb2.CancelWriteResponse:
    res = await writing.cancel_write(call.pool, call.client, eid=req.eid or None, task_id=req.task_id or None)
    return writing_pb2.CancelWriteResponse(cancel_time=iso(res.cancel_time))


@rpc
async def watch_write_status(call: Call, req: writing_pb2.GetWriteStatusRequest) -> AsyncIterator[Any]:
    """Internal stream: the status now, then every change, until the write ends, the caller leaves or
    the stream's lifetime is over (then it ends as a finished stream does; the caller may watch again)."""
    last = None
    while call.until is None or time.monotonic() < call.until:
        res = await writing.write_status(call.pool, call.client, eid=req.eid or None, task_id=req.task_id or None)
        seen = (res.task_id, res.card_status, res.progress, res.write_time)
        if seen != last:
            last = seen
            yield _status(res)
        if res.card_status in FINAL_STATES:
            return
        await asyncio.sleep(WATCH_POLL_S)


@rpc
async def bulk_apply_write(call: Call, requests: AsyncIterator[Any]) -> AsyncIterator[Any]:
    """Internal stream: one answer per apply, in order; a refused apply does not end the stream.

    Every item counts against the client's rate limit as one call (R17): beyond it, an item is answered
    429 RATE_LIMITED without being applied, so a stream cannot do more than the same calls one by one."""
    async for req in requests:
        out = writing_pb2.BulkApplyWriteResponse(eid=req.eid)
        try:
            if call.charge is not None:
                call.charge()
            out.result.CopyFrom(await apply_write(call, req))
            out.status.CopyFrom(common_pb2.ItemStatus(code=200, message="success"))
        except EsimotaError as exc:
            o = status.outcome(exc)
            out.status.CopyFrom(common_pb2.ItemStatus(code=o.http, message=o.message, error=o.reason))
        yield out


@rpc
async def get_chip(call: Call, req: queries_pb2.GetChipRequest) -> queries_pb2.GetChipResponse:
    c = await queries.get_chip(call.pool, call.client, req.eid)
    msg = queries_pb2.GetChipResponse(eid=c.eid, chip_model=c.chip_model, temp_msisdn=c.temp_msisdn,
                                      temp_iccid=c.temp_iccid, card_status=c.card_status,
                                      status_desc=c.status_desc, remaining_flow=c.remaining_flow)
    return _opt(msg, imei=c.imei)


async def _number(call: Call, req: Any) -> queries.NumberInfo:
    return await queries.get_number(call.pool, call.client, msisdn=req.msisdn or None, iccid=req.iccid or None)


@rpc
async def get_number(call: Call, req: queries_pb2.NumberRequest) -> queries_pb2.GetNumberResponse:
    n = await _number(call, req)
    msg = queries_pb2.GetNumberResponse(msisdn=n.msisdn, iccid=n.iccid, province=n.province,
                                        card_status=n.card_status, status_desc=n.status_desc)
    return _opt(msg, eid=n.eid or None, open_time=iso(n.open_time))


@rpc
async def get_usage(call: Call, req: queries_pb2.NumberRequest) -> queries_pb2.GetUsageResponse:
    u = await usage.month_usage(call.pool, call.client, msisdn=req.msisdn or None, iccid=req.iccid or None)
    msg = queries_pb2.GetUsageResponse(msisdn=u.msisdn, iccid=u.iccid, total_flow=u.total_flow,
                                       used_flow=u.used_flow, remaining_flow=u.remaining_flow)
    return _opt(msg, update_time=iso(u.update_time))


@rpc
async def get_open_status(call: Call, req: queries_pb2.GetOpenStatusRequest) -> queries_pb2.GetOpenStatusResponse:
    """§7.2.3.4: a written number's open time; before that the temporary number's, with its expiry."""
    info = await queries.open_status(call.pool, call.client, eid=req.eid or None, msisdn=req.msisdn or None)
    msg = queries_pb2.GetOpenStatusResponse(card_status=info.card_status, status_desc=info.status_desc)
    expiry = info.temp_expire_date if info.card_status != CardState.WRITE_SUCCEEDED else None
    if isinstance(info, queries.ChipInfo):
        return _opt(msg, eid=info.eid, msisdn=info.temp_msisdn, open_time=iso(info.open_time),
                    expire_time=iso(expiry))
    return _opt(msg, eid=info.eid or None, msisdn=info.msisdn, open_time=iso(info.open_time),
                expire_time=iso(expiry))


@rpc
async def get_location(call: Call, req: queries_pb2.NumberRequest) -> queries_pb2.GetLocationResponse:
    n = await _number(call, req)
    msg = queries_pb2.GetLocationResponse(msisdn=n.msisdn, province=n.province)
    return _opt(msg, city=n.city, location_time=iso(n.location_time))


def _summary(received: int, stored: int, rejected: list) -> ingest_pb2.IngestSummary:
    out = ingest_pb2.IngestSummary(received=received, stored=stored)
    for index, exc in rejected:
        o = status.outcome(exc)
        out.rejected.add(code=o.http, message=f"record {index}: {o.message}", error=o.reason)
    return out


async def _chunks(requests: AsyncIterator[Any], size: int = 500) -> AsyncIterator[list]:
    chunk: list = []
    async for req in requests:
        chunk.append(req)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


@rpc
async def ingest_usage(call: Call, requests: AsyncIterator[Any]) -> ingest_pb2.IngestSummary:
    received, stored, rejected = 0, 0, []
    async for chunk in _chunks(requests):
        rows = [(r.record_id, r.msisdn, r.iccid, r.used_mb, r.recorded_at, r.imei) for r in chunk]
        done, bad = await usage.ingest_usage(call.pool, rows)
        rejected += [(received + i, e) for i, e in bad]
        received, stored = received + len(chunk), stored + done
    return _summary(received, stored, rejected)


@rpc
async def ingest_location(call: Call, requests: AsyncIterator[Any]) -> ingest_pb2.IngestSummary:
    received, stored, rejected = 0, 0, []
    async for chunk in _chunks(requests):
        done, bad = await usage.ingest_locations(call.pool, [(r.msisdn, r.iccid, r.city, r.location_time, r.imei)
                                                             for r in chunk])
        rejected += [(received + i, e) for i, e in bad]
        received, stored = received + len(chunk), stored + done
    return _summary(received, stored, rejected)


from .admin_handlers import register as _register_admin  # noqa: E402  (admin rpcs live beside)

_register_admin(rpc, iso)

from .find_handlers import register as _register_find  # noqa: E402  (issue 15: lists, history, batch apply)

_register_find(rpc, iso)
