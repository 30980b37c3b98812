"""Adapters of the internal AdminService (R15, R17, R28, R31): clients, allocation, exceptions, callbacks."""

from __future__ import annotations

from typing import Any, Callable

from ..errors import InvalidArgument
from ..service import admin, callbacks, ops
from ..store import ops as ops_store
from ..v1 import admin_pb2

def client_info(c: Any) -> admin_pb2.ClientInfo:
    return admin_pb2.ClientInfo(client_id=c.client_id, name=c.name, ip_whitelist=list(c.ip_whitelist),
                                permissions=list(c.permissions), callback_url=c.callback_url,
                                rate_limit_per_min=c.rate_limit_per_min, disabled=c.disabled)


def _exception_info(r: Any, iso: Callable) -> admin_pb2.ExceptionInfo:
    return admin_pb2.ExceptionInfo(id=r["id"], category=r["class"], severity=r["severity"], kind=r["kind"],
                                   eid=r["eid"] or "", task_id=r["task_id"] or "", client_id=r["client_id"] or "",
                                   detail=r["detail"] or "", opened_at=iso(r["opened_at"]),
                                   deadline_at=iso(r["deadline_at"]), closed_at=iso(r["closed_at"]) or "")


def _required(value: str, name: str) -> str:
    if not value:
        raise InvalidArgument(f"{name} is required", reason="PARAM_INVALID")
    return value


def register(rpc: Callable, iso: Callable) -> None:
    """Add the admin handlers to the handler table (`rpc` is handlers.rpc)."""

    @rpc
    async def create_client(call, req):
        new = await admin.create_client(call.pool, name=req.name, phone=req.phone, ip=list(req.ip_whitelist),
                                        callback_url=req.callback_url,
                                        permissions=list(req.permissions) or "write,chip,number",
                                        rate_limit_per_min=req.rate_limit_per_min or 600, actor=call.actor)
        return admin_pb2.CreateClientResponse(client=client_info(new.client), client_secret=new.client_secret,
                                              callback_secret=new.callback_secret)

    @rpc
    async def rotate_client_secret(call, req):
        client, secret = await admin.rotate_secret(call.pool, _required(req.client_id, "client_id"),
                                                   actor=call.actor)
        return admin_pb2.RotateClientSecretResponse(client=client_info(client), client_secret=secret)

    @rpc
    async def set_whitelist(call, req):
        return client_info(await admin.set_whitelist(call.pool, _required(req.client_id, "client_id"),
                                                     list(req.ip_whitelist), actor=call.actor))

    @rpc
    async def set_permissions(call, req):
        return client_info(await admin.set_permissions(call.pool, _required(req.client_id, "client_id"),
                                                       list(req.permissions), actor=call.actor))

    @rpc
    async def update_client(call, req):
        rate = req.rate_limit_per_min if req.HasField("rate_limit_per_min") else None
        return client_info(await admin.update_client(call.pool, _required(req.client_id, "client_id"),
                                                     rate_limit_per_min=rate, ip=list(req.ip_whitelist) or None,
                                                     actor=call.actor))

    @rpc
    async def disable_client(call, req):
        return client_info(await admin.disable_client(call.pool, _required(req.client_id, "client_id"),
                                                      actor=call.actor))

    @rpc
    async def allocate_numbers(call, req):
        done = await admin.allocate_numbers(call.pool, _required(req.client_id, "client_id"), list(req.iccids),
                                            actor=call.actor)
        return admin_pb2.AllocateNumbersResponse(iccids=done)

    @rpc
    async def allocate_chips(call, req):
        done = await admin.allocate_chips(call.pool, _required(req.client_id, "client_id"), list(req.eids),
                                          batch=req.batch or None, actor=call.actor)
        return admin_pb2.AllocateChipsResponse(eids=done)

    @rpc
    async def release_chips(call, req):
        done = await admin.release_chips(call.pool, _required(req.client_id, "client_id"), list(req.eids),
                                         batch=req.batch or None, actor=call.actor)
        return admin_pb2.AllocateChipsResponse(eids=done)

    @rpc
    async def list_exceptions(call, req):
        rows = await ops_store.list_exceptions(call.pool, req.include_closed, req.category or None,
                                               min(max(req.limit or 100, 1), 1000))
        return admin_pb2.ListExceptionsResponse(exceptions=[_exception_info(r, iso) for r in rows])

    @rpc
    async def close_exception(call, req):
        if req.id <= 0:
            raise InvalidArgument("id is required", reason="PARAM_INVALID")
        await ops.close(call.pool, req.id, call.actor, req.resolution, req.report or None)
        return _exception_info(await ops_store.exception_info(call.pool, req.id), iso)

    @rpc
    async def list_callbacks(call, req):
        if not req.task_id and not req.event_id:
            raise InvalidArgument("task_id or event_id is required", reason="PARAM_INVALID")
        rows = await callbacks.list_callbacks(call.pool, task_id=req.task_id, event_id=req.event_id)
        return admin_pb2.ListCallbacksResponse(callbacks=[_callback_info(r, iso) for r in rows])

    @rpc
    async def repush_callback(call, req):
        return _callback_info(await callbacks.repush(call.pool, _required(req.event_id, "event_id")), iso)


def _callback_info(r: dict, iso: Callable) -> admin_pb2.CallbackInfo:
    info = admin_pb2.CallbackInfo(event_id=r["event_id"], task_id=r["task_id"], status=r["status"],
                                  attempts=r["attempts"], next_attempt_at=iso(r["next_attempt_at"]) or "",
                                  last_error=r["last_error"] or "")
    for a in r["history"]:
        info.history.add(at=iso(a["at"]), http_status=a["http_status"] or 0, outcome=a["outcome"],
                         detail=a["detail"] or "")
    return info
