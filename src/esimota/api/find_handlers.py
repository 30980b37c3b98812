"""Adapters of the find-anything rpcs (issue 15): AdminService lists and history, the partner's records,
tasks and batch apply (DESIGN §6). Each calls one use case of service/ and maps its typed rows."""

from __future__ import annotations

from typing import Any, Callable

from ..domain.lifecycle import CardState, progress
from ..errors import DomainError, InvalidArgument, RateLimited
from ..service import history, lists, reports_export, temp_numbers, write_batch, writing
from ..v1 import admin_pb2, writing_pb2
from . import status

MB = 1024 * 1024


def _s(value: Any) -> str:
    return "" if value is None else str(value)


def _desc(state: int) -> str:
    return CardState(state).zh


def _progress(r: Any) -> int:
    return progress(CardState(r.state), r.script_acked, r.script_total, r.script_done)


def task_record(r: Any, iso: Callable) -> admin_pb2.TaskRecord:
    return admin_pb2.TaskRecord(
        task_id=r.task_id, eid=r.eid, client_id=r.client_id, client_name=r.client_name, write_type=r.write_type,
        province_code=_s(r.province_code), iccid=r.iccid, msisdn=r.msisdn, state=r.state,
        status_desc=_desc(r.state), progress=_progress(r), batch=r.batch, project=_s(r.project),
        result=_s(r.result), created_at=iso(r.created_at), write_time=iso(r.write_time) or "",
        finished_at=iso(r.finished_at) or "")


def chip_record(r: Any, iso: Callable) -> admin_pb2.ChipRecord:
    return admin_pb2.ChipRecord(
        eid=r.eid, batch=r.batch, chip_model=r.chip_model, imei=_s(r.imei), temp_iccid=r.temp_iccid,
        temp_msisdn=r.temp_msisdn, network_type=r.network_type, open_time=r.open_time.isoformat(),
        temp_expires_on=r.temp_expires_on.isoformat(), state=r.state, status_desc=_desc(r.state),
        production_status=r.production_status, logistics_status=r.logistics_status, client_id=_s(r.client_id),
        project=_s(r.project), active_iccid=_s(r.active_iccid),
        remaining_flow_mb=round(r.remaining_flow_bytes / MB, 3))


def number_record(r: Any) -> admin_pb2.NumberRecord:
    return admin_pb2.NumberRecord(msisdn=r.msisdn, iccid=r.iccid, province_code=r.province_code, status=r.status,
                                  client_id=_s(r.client_id), eid=_s(r.eid), monthly_quota_mb=r.monthly_quota_mb,
                                  used_flow_mb=r.used_flow_mb, city=_s(r.city))


def client_record(r: Any, iso: Callable) -> admin_pb2.ClientRecord:
    return admin_pb2.ClientRecord(client_id=r.client_id, name=r.name, phone=r.phone, permissions=list(r.permissions),
                                  ip_whitelist=list(r.ip_whitelist), callback_url=r.callback_url,
                                  rate_limit_per_min=r.rate_limit_per_min, disabled=r.disabled,
                                  created_at=iso(r.created_at))


def exception_record(r: Any, iso: Callable) -> admin_pb2.ExceptionRecord:
    return admin_pb2.ExceptionRecord(
        id=r.id, category=r.category, severity=r.severity, kind=r.kind, eid=_s(r.eid), task_id=_s(r.task_id),
        client_id=_s(r.client_id), detail=_s(r.detail), opened_at=iso(r.opened_at), deadline_at=iso(r.deadline_at),
        reported_at=iso(r.reported_at) or "", closed_at=iso(r.closed_at) or "", closed_by=_s(r.closed_by),
        resolution=_s(r.resolution), overdue=r.overdue)


def alert_record(r: Any, iso: Callable) -> admin_pb2.AlertRecord:
    return admin_pb2.AlertRecord(id=r.id, kind=r.kind, severity=r.severity, subject=r.subject, eid=_s(r.eid),
                                 msisdn=_s(r.msisdn), detail=_s(r.detail), opened_at=iso(r.opened_at),
                                 closed_at=iso(r.closed_at) or "", notified_at=iso(r.notified_at) or "")


def callback_record(r: Any, iso: Callable) -> admin_pb2.CallbackRecordRow:
    return admin_pb2.CallbackRecordRow(
        event_id=r.event_id, task_id=r.task_id, eid=r.eid, client_id=r.client_id, status=r.status,
        attempts=r.attempts, next_attempt_at=iso(r.next_attempt_at), last_error=_s(r.last_error),
        created_at=iso(r.created_at), delivered_at=iso(r.delivered_at) or "")


def task_history(h: history.History, iso: Callable) -> admin_pb2.TaskHistory:
    t = h.task
    out = admin_pb2.TaskHistory(diagnostic=_s(t["diagnostic"]))
    out.task.CopyFrom(admin_pb2.TaskRecord(
        task_id=t["task_id"], eid=t["eid"], client_id=t["client_id"], write_type=t["write_type"],
        province_code=_s(t["province_code"]), iccid=t["iccid"], msisdn=t["msisdn"], state=t["state"],
        status_desc=_desc(t["state"]),
        progress=progress(CardState(t["state"]), t["script_acked"], t["script_total"], t["script_done"]),
        result=_s(t["result"]), created_at=iso(t["created_at"]), write_time=iso(t["write_time"]) or "",
        finished_at=iso(t["finished_at"]) or ""))
    for e in h.events:
        out.events.add(operation=e.operation, from_state=e.from_state, to_state=e.to_state, actor=e.actor,
                       reason=_s(e.reason), at=iso(e.at))
    for s in h.sessions:
        out.sessions.add(started_at=iso(s.started_at), ended_at=iso(s.ended_at) or "", end_event=_s(s.end_event),
                         close_reason=-1 if s.close_reason is None else s.close_reason, frames=s.frames,
                         bytes=s.bytes, resumed=s.resumed)
    for a in h.callback_attempts:
        out.callback_attempts.add(event_id=a.event_id, at=iso(a.at), http_status=a.http_status or 0,
                                  outcome=a.outcome, detail=_s(a.detail))
    return out


def _records(h: history.History, iso: Callable) -> writing_pb2.GetWriteRecordsResponse:
    """The partner's view of a history: §6 field names, card_status with its 中文 status_desc."""
    t = h.task
    out = writing_pb2.GetWriteRecordsResponse(eid=t["eid"], task_id=t["task_id"], card_status=t["state"],
                                              status_desc=_desc(t["state"]))
    for e in h.events:
        out.events.add(operation=e.operation, from_status=e.from_state, to_status=e.to_state, actor=e.actor,
                       reason=_s(e.reason), at=iso(e.at))
    for s in h.sessions:
        item = out.sessions.add(start_time=iso(s.started_at), end_event=_s(s.end_event), frames=s.frames,
                                bytes=s.bytes, resumed=s.resumed)
        if s.ended_at is not None:
            item.end_time = iso(s.ended_at)
        if s.close_reason is not None:
            item.close_reason = s.close_reason
    for a in h.callback_attempts:
        out.callbacks.add(event_id=a.event_id, at=iso(a.at), http_status=a.http_status or 0, outcome=a.outcome,
                          detail=_s(a.detail))
    return out


def _summary(r: Any, iso: Callable) -> writing_pb2.WriteTaskSummary:
    out = writing_pb2.WriteTaskSummary(task_id=r.task_id, eid=r.eid, card_status=r.state, status_desc=_desc(r.state),
                                       progress=_progress(r), write_type=r.write_type,
                                       province_code=_s(r.province_code), iccid=r.iccid, msisdn=r.msisdn,
                                       apply_time=iso(r.created_at))
    if r.write_time is not None:
        out.write_time = iso(r.write_time)
    return out


def export_record(r: dict, iso: Callable) -> admin_pb2.ExportRecord:
    return admin_pb2.ExportRecord(id=r["id"], kind=r["kind"], period=r["period"], path=r["path"],
                                  manifest_sha256=r["sha256"], rows=r["rows"], created_by=r["created_by"],
                                  created_at=iso(r["created_at"]), expires_at=iso(r["expires_at"]),
                                  node=_s(r["node"]), deleted_at=iso(r["deleted_at"]) or "")


def _batch_item(req: writing_pb2.ApplyWriteRequest) -> writing.ApplyRequest | DomainError:
    if not req.HasField("write_type"):
        return InvalidArgument("write_type is required (0 designated, 1 auto)", reason="WRITE_TYPE_REQUIRED")
    return writing.ApplyRequest(req.eid, req.write_type, req.province_code or None, req.iccid or None,
                                req.msisdn or None)


def _opt_bool(req: Any, name: str) -> bool | None:
    return getattr(req, name) if req.HasField(name) else None


def _page(req: Any) -> dict[str, Any]:
    """An AdminService list request's keyset page, as the list use cases of service.lists take it."""
    return {"page_token": req.page_token, "page_size_": req.page_size}


def _answer(response: Callable, field: str, records: list, page: lists.PageResult) -> Any:
    """A list's answer: its records under `field`, the next page's token and the total (the same two
    fields on every list, the partner's ListWriteTasks too)."""
    return response(**{field: records}, next_page_token=page.next_page_token, total=page.total)


def register(rpc: Callable, iso: Callable) -> None:
    """Add the find-anything handlers to the handler table (`rpc` is handlers.rpc)."""

    @rpc
    async def get_write_records(call, req):
        return _records(await history.write_records(call.pool, call.client, eid=req.eid, task_id=req.task_id), iso)

    @rpc
    async def list_write_tasks(call, req):
        page = await history.list_write_tasks(
            call.pool, call.client, card_status=req.card_status if req.HasField("card_status") else None,
            since=req.since, until=req.until, page_size=req.page_size, page_token=req.page_token)
        return _answer(writing_pb2.ListWriteTasksResponse, "tasks", [_summary(r, iso) for r in page.rows], page)

    @rpc
    async def apply_write_batch(call, req):
        items = [_batch_item(i) for i in req.items]
        if call.charge is not None and len(items) <= write_batch.MAX_ITEMS:
            # R17: every item counts as one call, as on BulkApplyWrite (the call itself paid for the first);
            # an item beyond the client's limit is answered 429 RATE_LIMITED and applies nothing
            for k in range(1, len(items)):
                try:
                    call.charge()
                except RateLimited as exc:
                    items[k] = exc
        results = await write_batch.apply_batch(call.pool, call.client, items)
        out = writing_pb2.ApplyWriteBatchResponse()
        for item, res in zip(req.items, results):
            if isinstance(res, DomainError):
                o = status.outcome(res)
                out.items.add(eid=item.eid, code=o.http, message=o.message, error=o.reason)
            else:
                out.items.add(eid=item.eid, code=200, message="success", task_id=res.task_id,
                              card_status=res.card_status, status_desc=res.status_desc)
        return out

    @rpc
    async def list_tasks(call, req):
        page = await lists.list_tasks(call.pool, state_=req.state, client=req.client, province=req.province_code,
                                      batch=req.batch, project=req.project, since=req.since, until=req.until,
                                      eid=req.eid, **_page(req))
        return _answer(admin_pb2.ListTasksResponse, "tasks", [task_record(r, iso) for r in page.rows], page)

    @rpc
    async def show_task(call, req):
        if not req.ref:
            raise InvalidArgument("ref (task_id or EID) is required", reason="PARAM_INVALID")
        return task_history(await history.task_history(call.pool, req.ref), iso)

    @rpc
    async def list_chips(call, req):
        page = await lists.list_chips(call.pool, state_=req.state, batch=req.batch, client=req.client,
                                      project=req.project, production_status=req.production_status,
                                      logistics_status=req.logistics_status, expiring_before=req.expiring_before,
                                      **_page(req))
        return _answer(admin_pb2.ListChipsResponse, "chips", [chip_record(r, iso) for r in page.rows], page)

    @rpc
    async def list_numbers(call, req):
        page = await lists.list_numbers(call.pool, province=req.province_code, status=req.status, client=req.client,
                                        **_page(req))
        return _answer(admin_pb2.ListNumbersResponse, "numbers", [number_record(r) for r in page.rows], page)

    @rpc
    async def list_clients(call, req):
        page = await lists.list_clients(call.pool, disabled=_opt_bool(req, "disabled"), name=req.name, **_page(req))
        return _answer(admin_pb2.ListClientsResponse, "clients", [client_record(r, iso) for r in page.rows], page)

    @rpc
    async def search_exceptions(call, req):
        page = await lists.list_exceptions(call.pool, open_=_opt_bool(req, "open"), category=req.category,
                                           severity=req.severity, overdue=_opt_bool(req, "overdue"),
                                           **_page(req))
        return _answer(admin_pb2.SearchExceptionsResponse, "exceptions",
                       [exception_record(r, iso) for r in page.rows], page)

    @rpc
    async def show_exception(call, req):
        if req.id <= 0:
            raise InvalidArgument("id is required", reason="PARAM_INVALID")
        return exception_record(await lists.get_exception(call.pool, req.id), iso)

    @rpc
    async def list_alerts(call, req):
        page = await lists.list_alerts(call.pool, kind=req.kind, open_=_opt_bool(req, "open"), **_page(req))
        return _answer(admin_pb2.ListAlertsResponse, "alerts", [alert_record(r, iso) for r in page.rows], page)

    @rpc
    async def search_callbacks(call, req):
        page = await lists.list_callbacks(call.pool, status=req.status, client=req.client, **_page(req))
        return _answer(admin_pb2.SearchCallbacksResponse, "callbacks",
                       [callback_record(r, iso) for r in page.rows], page)

    @rpc
    async def list_exports(call, req):
        rows = await reports_export.list_exports(call.pool, call.actor, kind=req.kind or None,
                                                 period=req.period or None)
        return admin_pb2.ListExportsResponse(exports=[export_record(r, iso) for r in rows])

    @rpc
    async def open_export(call, req):
        if req.id <= 0:
            raise InvalidArgument("id is required", reason="PARAM_INVALID")
        return export_record(await reports_export.open_export(call.pool, req.id, call.actor), iso)

    @rpc
    async def reprovision_chip(call, req):
        row = await temp_numbers.reprovision(call.pool, req.eid, temp_iccid=req.temp_iccid,
                                             temp_msisdn=req.temp_msisdn, open_time=req.open_time,
                                             actor=call.actor)
        return chip_record(row, iso)
