"""Write management use cases (§7.2.2, R5, R7, R8, R18, R20): apply, cancel, status."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from ..domain import identifiers, lifetimes, provinces
from ..domain.lifecycle import OPEN_STATES, CardState, Op, next_state, progress
from ..errors import Conflict, DomainError, InvalidArgument, NotFound, PermissionDenied
from ..store import chips as chip_store
from ..store import numbers as number_store
from ..store import tasks as task_store
from ..store.clients import Client
from .common import CST, check_owner, connection, now, require

DESIGNATED, AUTO = 0, 1


@dataclass(frozen=True)
class ApplyRequest:
    """§7.2.2.2 parameters: province_code for auto (1), iccid and msisdn for designated (0)."""

    eid: str
    write_type: int
    province_code: str | None = None
    iccid: str | None = None
    msisdn: str | None = None


@dataclass(frozen=True)
class ApplyResult:
    task_id: str
    card_status: int
    status_desc: str
    created: bool  # False when an identical apply was repeated (DESIGN §3 idempotence)


@dataclass(frozen=True)
class StatusResult:
    """§7.2.2.3 response fields."""

    eid: str
    task_id: str
    card_status: int
    status_desc: str
    progress: int
    write_time: dt.datetime | None


@dataclass(frozen=True)
class CancelResult:
    eid: str
    task_id: str
    cancel_time: dt.datetime


def _check_request(req: ApplyRequest) -> ApplyRequest:
    """The parameter checks of §6.2.2.2 and table 3 row 1; returns the request normalised."""
    if req.write_type == AUTO:
        if not req.province_code:
            raise InvalidArgument("province_code is required for auto-allocation", reason="PROVINCE_REQUIRED")
        return ApplyRequest(req.eid, AUTO, provinces.validate_province(req.province_code))
    if req.write_type == DESIGNATED:
        if not req.iccid or not req.msisdn:
            raise InvalidArgument("iccid and msisdn are required for a designated write", reason="NUMBER_REQUIRED")
        return ApplyRequest(req.eid, DESIGNATED, None, identifiers.validate_iccid(req.iccid),
                            identifiers.validate_msisdn(req.msisdn))
    raise InvalidArgument("write_type must be 0 (designated) or 1 (auto)", reason="WRITE_TYPE_INVALID")


def _same_apply(task: Any, number: Any, req: ApplyRequest) -> bool:
    if task["write_type"] != req.write_type:
        return False
    if req.write_type == AUTO:
        return task["province_code"] == req.province_code
    return number["iccid"] == req.iccid and number["msisdn"] == req.msisdn


async def _repeat(conn: Any, client: Client, chip: Any, req: ApplyRequest) -> ApplyResult:
    """A card in 2 or 3: the same client's same apply gets its task back (DESIGN §3, R18)."""
    task = await task_store.open_task(conn, chip["id"])
    number = await number_store.by_id(conn, task["number_id"])
    if task["client_id"] != client.id:
        raise Conflict("another client's write is in progress on this card", reason="APPLY_IN_PROGRESS")
    if not _same_apply(task, number, _check_request(req)):
        raise Conflict("a different apply is in progress on this card; cancel it first", reason="APPLY_CONFLICT")
    state = CardState(chip["state"])
    return ApplyResult(task["task_id"], int(state), state.zh, False)


async def _pick_number(conn: Any, client: Client, req: ApplyRequest) -> Any:
    """The number for this apply, locked: designated only if allocated to the caller (R5, DESIGN §6)."""
    if req.write_type == AUTO:
        number = await number_store.pick_free(conn, req.province_code, client.id)
        if number is None:
            raise PermissionDenied("no writable number left in this province", reason="NO_RESOURCE")
        return number
    number = await number_store.lock_by_iccid(conn, req.iccid)
    if number is None or number["client_id"] != client.id:
        raise PermissionDenied("the number is not allocated to this client", reason="NUMBER_NOT_ALLOCATED")
    if number["msisdn"] != req.msisdn:  # the ICCID and the MSISDN name two different numbers
        raise InvalidArgument("iccid and msisdn do not name the same number", reason="NUMBER_MISMATCH")
    if number["status"] != "available":
        raise Conflict("the number is already reserved or written", reason="NUMBER_IN_USE")
    return number


async def _validate(conn: Any, client: Client, chip: Any, req: ApplyRequest,
                    today: dt.date) -> tuple[Any, ApplyRequest]:
    """§6.2.2.2: parameters, blacklists (R32), temporary number lifetime (R12), then a number."""
    req = _check_request(req)
    hits = await chip_store.blacklisted(conn, chip["eid"], chip["imei"])
    if hits:
        raise PermissionDenied(f"the chip's {hits[0].upper()} is blacklisted", reason=f"{hits[0].upper()}_BLACKLISTED")
    lifetimes.check_not_expired(chip["open_time"], chip["network_type"], today)
    return await _pick_number(conn, client, req), req


# Exceptions a refused apply opens (§8.2.1 table 3, §8.2.2 table 4): class, severity, deadline.
_REJECTION_EXCEPTIONS = {
    "NO_RESOURCE": ("apply", "general", dt.timedelta(hours=2)),
    "TEMP_NUMBER_EXPIRED": ("write", "general", dt.timedelta(hours=24)),
}


async def _reject(conn: Any, client: Client, chip: Any, req: ApplyRequest, exc: DomainError) -> None:
    """Table 2 申请失败: the card moves to 6, the event says why, and an exception opens where §8 asks."""
    to = next_state(chip["state"], Op.APPLY_REJECTED)
    await chip_store.set_state(conn, chip["id"], int(to))
    await task_store.event(conn, chip["id"], None, Op.APPLY_REJECTED.value, chip["state"], int(to),
                           f"client:{client.client_id}", exc.reason)
    if exc.reason in _REJECTION_EXCEPTIONS:
        cls, severity, deadline = _REJECTION_EXCEPTIONS[exc.reason]
        per_chip = exc.reason != "NO_RESOURCE"  # no resource is a fact about a province, not a chip
        await task_store.open_exception(
            conn, cls, severity, exc.reason if per_chip else f"NO_RESOURCE:{req.province_code}", deadline,
            chip_id=chip["id"] if per_chip else None, client_id=client.id, detail=exc.message)


async def _create(conn: Any, client: Client, chip: Any, number: Any, req: ApplyRequest) -> ApplyResult:
    """A valid apply: task, number reserved, card 2, event (§6.2.2.2)."""
    to = next_state(chip["state"], Op.APPLY)
    task = await task_store.insert(conn, chip["id"], client.id, req.write_type, req.province_code, number["id"],
                                   int(to))
    await number_store.reserve(conn, number["id"])
    await chip_store.set_state(conn, chip["id"], int(to))
    await task_store.event(conn, chip["id"], task["id"], Op.APPLY.value, chip["state"], int(to),
                           f"client:{client.client_id}", "write_type=%d" % req.write_type)
    return ApplyResult(task["task_id"], int(to), to.zh, True)


async def apply_write(db: Any, client: Client, req: ApplyRequest, *, at: dt.datetime | None = None) -> ApplyResult:
    """§7.2.2.2 apply: idempotent per client (R18), safe under concurrency, refusals leave the card in 6.

    A chip not allocated to the caller is EID_NOT_FOUND, exactly as an unknown EID (DESIGN §6).
    Raises ALREADY_WRITTEN on a card in 4 (it stays 4), APPLY_IN_PROGRESS / APPLY_CONFLICT on a card
    in 2 or 3 with another client or other parameters, NO_RESOURCE, NUMBER_NOT_ALLOCATED, NUMBER_MISMATCH,
    TEMP_NUMBER_EXPIRED, EID_BLACKLISTED / IMEI_BLACKLISTED and the parameter reasons.
    """
    require(client, "write")
    identifiers.validate_eid(req.eid)
    at = at or now()
    async with connection(db) as conn:
        async with conn.transaction():
            # serialises every apply on this card; a chip not allocated to the caller is an unknown EID
            chip = await chip_store.own(conn, req.eid, client.id, lock=True)
            if chip["state"] in OPEN_STATES:
                return await _repeat(conn, client, chip, req)
            next_state(chip["state"], Op.APPLY)  # on 4: ALREADY_WRITTEN, nothing changes
            try:
                number, req = await _validate(conn, client, chip, req, at.astimezone(CST).date())
            except DomainError as exc:
                rejected = exc
                await _reject(conn, client, chip, req, exc)
            else:
                return await _create(conn, client, chip, number, req)
        raise rejected


async def _locate(conn: Any, client: Client, eid: str | None, task_id: str | None,
                  lock: bool) -> tuple[Any, Any]:
    """(chip, task) named by task_id or eid (§7.2.2.3/4: one of the two); unknown → 404."""
    if task_id:
        task = await task_store.by_task_id(conn, task_id)
        if task is None or task["client_id"] != client.id:
            raise NotFound("unknown task_id", reason="TASK_NOT_FOUND")
        return await chip_store.by_id(conn, task["chip_id"], lock=lock), task
    if not eid:
        raise InvalidArgument("eid or task_id is required", reason="EID_OR_TASK_REQUIRED")
    identifiers.validate_eid(eid)
    chip = await chip_store.own(conn, eid, client.id, lock=lock)
    task = await task_store.latest(conn, chip["id"])
    if task is not None and task["client_id"] != client.id:
        task = None
    return chip, task


async def cancel_write(db: Any, client: Client, *, eid: str | None = None, task_id: str | None = None,
                       at: dt.datetime | None = None) -> CancelResult:
    """§7.2.2.4 cancel, only in 待开机上电 (R20): the card returns to 1 and the number is released."""
    require(client, "write")
    at = at or now()
    async with connection(db) as conn, conn.transaction():
        chip, task = await _locate(conn, client, eid, task_id, lock=True)
        if task is None or task["state"] not in OPEN_STATES:
            # no open task: an old task (or a card without one) is judged by its own state
            next_state(task["state"] if task is not None else chip["state"], Op.CANCEL)
            raise PermissionDenied("no pending apply to cancel", reason="STATE_NOT_ALLOWED")
        to = next_state(chip["state"], Op.CANCEL)  # the table: only 2 → 1 (R20)
        await task_store.cancel(conn, task["id"], at, int(to))
        number = await number_store.by_id(conn, task["number_id"])
        await number_store.give_back(conn, number["id"], number["province_code"])  # DESIGN §3
        await chip_store.set_state(conn, chip["id"], int(to))
        await task_store.event(conn, chip["id"], task["id"], Op.CANCEL.value, chip["state"], int(to),
                               f"client:{client.client_id}", "cancelled by client")
        return CancelResult(chip["eid"], task["task_id"], at)


async def write_status(db: Any, client: Client, *, eid: str | None = None,
                       task_id: str | None = None) -> StatusResult:
    """§7.2.2.3 status with progress (R8): by task_id the task's own state, by eid the card's."""
    require(client, "write")
    if task_id:
        row = await task_store.status_by_task(db, task_id)  # from a pool: one query for the calls of this moment
        if row is None or row["client_id"] != client.id:
            raise NotFound("unknown task_id", reason="TASK_NOT_FOUND")
    else:
        if not eid:
            raise InvalidArgument("eid or task_id is required", reason="EID_OR_TASK_REQUIRED")
        identifiers.validate_eid(eid)
        row = await task_store.status_by_eid(db, eid)
        check_owner(client, row)  # unknown, or not allocated to the caller: the same 404
    if row["task_id"] is None or row["client_id"] != client.id:
        state = CardState(row["chip_state"])
        return StatusResult(row["eid"], "", int(state), state.zh, progress(state), None)
    state = CardState(row["state"] if task_id else row["chip_state"])
    pct = progress(state, row["script_acked"], row["script_total"], row["script_done"])
    return StatusResult(row["eid"], row["task_id"], int(state), state.zh, pct, row["write_time"])
