"""What the BIP channel layer (DESIGN §5.4) asks of the database: small, documented, transactional.

Every function takes a pool or a connection. Pass a connection inside your own transaction to group
several cards' transitions in one commit (DESIGN §5.5); each function then runs in a savepoint.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any, Sequence

from ..domain.lifecycle import CardState, Op, next_state
from ..store import chips as chip_store
from ..store import numbers as number_store
from ..store import tasks as task_store
from .common import connection, now

# CLOSE reasons of DESIGN §5.1 the database decides; 0 means go on (HELLO) or done (REPORT).
CLOSE_OK, CLOSE_UNKNOWN_CARD, CLOSE_REPLAYED, CLOSE_STATE, CLOSE_NO_TRAFFIC = 0, 1, 3, 4, 5
# REPORT results (DESIGN §5.1 'C6') and what they mean (§6.2.4.1, table 4).
RESULT_SUCCESS, RESULT_NO_SERVICE, RESULT_CHIP_FAULT, RESULT_DATA_ERROR = 0, 1, 2, 3
_RESULT_NAMES = {RESULT_CHIP_FAULT: "chip_fault", RESULT_DATA_ERROR: "data_error"}
# §8.2.2 table 4: class, severity and handling deadline of what a write can run into.
_EXCEPTIONS = {
    "NUMBER_NOT_COMMUNICATING": ("write", "general", dt.timedelta(hours=1)),
    "CHIP_FAULT": ("write", "general", dt.timedelta(hours=24)),
    "DATA_ERROR": ("write", "general", dt.timedelta(hours=1)),
}
CHIP_FOR_KEYS = """
SELECT c.id, c.eid, c.state, c.chip_model, c.remaining_flow_bytes, b.name AS batch, b.master_key_enc,
       k.card_counter
FROM chips c JOIN chip_batches b ON b.id = c.batch_id JOIN chip_counters k ON k.chip_id = c.id
WHERE c.eid = $1"""
CLOSE_NOT_COMMUNICATING = """
UPDATE exceptions SET closed_at = now(), resolution = 'write succeeded'
WHERE chip_id = $1 AND kind = 'NUMBER_NOT_COMMUNICATING' AND closed_at IS NULL"""


@dataclass(frozen=True)
class ChipKeys:
    """A chip as HELLO/REPORT verification needs it: the batch master key for the KDF of §5.2."""

    chip_id: int
    eid: str
    state: int
    chip_model: str
    remaining_flow_bytes: int
    card_counter: int  # last verified card counter, -1 if none yet
    master_key: bytes  # AES-128 batch master key, in memory only


@dataclass(frozen=True)
class WriteJob:
    """What the script builder needs for one card (DESIGN §5.4 step 2). Secrets stay in memory."""

    task_pk: int
    task_id: str
    chip_id: int
    eid: str
    resumed: bool
    iccid: str
    msisdn: str
    imsi: str
    ki: bytes
    opc: bytes
    script_acked: int
    script_total: int
    remaining_flow_bytes: int

    def __repr__(self) -> str:  # never print Ki/OPc/IMSI (DESIGN §2)
        return f"WriteJob(task_id={self.task_id!r}, eid={self.eid!r}, resumed={self.resumed})"


@dataclass(frozen=True)
class Outcome:
    close_reason: int  # CLOSE_OK or the reason to CLOSE with
    state: int
    job: WriteJob | None = None
    duplicate: bool = False  # a REPORT the platform had already made durable


@dataclass(frozen=True)
class ProgressUpdate:
    """Acknowledged C-APDUs of a task and bytes the session used since the last update (§5.4 step 3)."""

    task_pk: int
    chip_id: int
    acked: int
    total: int
    done: bool = False
    flow_bytes: int = 0


async def load_chip(db: Any, eid: str) -> ChipKeys | None:
    """The chip with its decrypted batch master key, or None if unknown (→ CLOSE 01)."""
    row = await db.fetchrow(CHIP_FOR_KEYS, eid)
    if row is None:
        return None
    key = await chip_store.batch_master_key(db, row["batch"], row["master_key_enc"])
    return ChipKeys(row["id"], row["eid"], row["state"], row["chip_model"], row["remaining_flow_bytes"],
                    row["card_counter"], key)


async def _lock_and_count(conn: Any, eid: str, card_counter: int) -> tuple[Any, bool]:
    """Lock the chip, then advance the stored card counter if this one is newer (§5.3, §5.4 step 1)."""
    chip = await chip_store.lock(conn, eid)
    advanced = await conn.execute(chip_store.ADVANCE_CARD_COUNTER, chip["id"], card_counter)
    return chip, advanced.endswith(" 1")


async def _job(conn: Any, chip: Any, task: Any, resumed: bool) -> WriteJob:
    number = await conn.fetchrow(number_store.SELECT_BY_ID, task["number_id"])
    imsi, ki, opc = await number_store.decrypt_secrets(conn, number)
    return WriteJob(task["id"], task["task_id"], chip["id"], chip["eid"], resumed, number["iccid"],
                    number["msisdn"], imsi, ki, opc, task["script_acked"], task["script_total"],
                    chip["remaining_flow_bytes"])


async def begin_write(db: Any, eid: str, card_counter: int, *, at: dt.datetime | None = None) -> Outcome:
    """A HELLO whose MAC verified: counter (03), state 2 or 3 (04), test traffic (05), then 2 → 3.

    One transaction: the counter advances whatever the outcome; the task event says power-on or resume.
    """
    at = at or now()
    async with connection(db) as conn, conn.transaction():
        chip, fresh = await _lock_and_count(conn, eid, card_counter)
        state = chip["state"]
        if not fresh:
            return Outcome(CLOSE_REPLAYED, state)
        if state not in (CardState.AWAITING_POWER_ON, CardState.WRITING):
            return Outcome(CLOSE_STATE, state)
        if chip["remaining_flow_bytes"] <= 0:  # §5.2.1.2: used-up test traffic is not restored (R3)
            return Outcome(CLOSE_NO_TRAFFIC, state)
        to = next_state(state, Op.POWER_ON)
        task = await conn.fetchrow(task_store.OPEN_TASK, chip["id"])
        await conn.execute(chip_store.SET_STATE, chip["id"], int(to))
        await conn.execute(task_store.START_TASK, task["id"], at)
        resumed = state == CardState.WRITING
        await task_store.event(conn, chip["id"], task["id"], Op.POWER_ON.value, state, int(to), "card",
                               "resume" if resumed else "power-on")
        return Outcome(CLOSE_OK, int(to), await _job(conn, chip, task, resumed))


async def record_progress(db: Any, updates: Sequence[ProgressUpdate], *, at: dt.datetime | None = None) -> None:
    """Write progress behind, many tasks per statement (DESIGN §5.5); test traffic charged (§5.4 step 3)."""
    if not updates:
        return
    async with connection(db) as conn, conn.transaction():
        await conn.execute(task_store.PROGRESS, [u.task_pk for u in updates], [u.acked for u in updates],
                           [u.total for u in updates], [u.done for u in updates], at or now())
        charged = [u for u in updates if u.flow_bytes]
        if charged:
            await conn.execute(chip_store.CHARGE_FLOW, [u.chip_id for u in charged], [u.flow_bytes for u in charged])


def _callback(chip: Any, task: Any, number: Any, state: CardState, at: dt.datetime) -> dict:
    """The §7.3 payload without timestamp and sign, which the dispatcher adds per attempt."""
    return {"eid": chip["eid"], "task_id": task["task_id"], "card_status": int(state),
            "write_result": "success" if state is CardState.WRITE_SUCCEEDED else "failure",
            "write_time": at.isoformat(timespec="seconds"), "iccid": number["iccid"], "msisdn": number["msisdn"],
            "status_desc": state.zh}


async def _exception(conn: Any, kind: str, chip: Any, task: Any, detail: str | None) -> None:
    cls, severity, deadline = _EXCEPTIONS[kind]
    await task_store.open_exception(conn, cls, severity, kind, deadline, chip_id=chip["id"], task_id=task["id"],
                                    client_id=task["client_id"], detail=detail)


async def _finish(conn: Any, chip: Any, task: Any, result: int, diagnostic: str | None, actor: str,
                  at: dt.datetime) -> CardState:
    """3 → 4 (number bound to the EID) or 3 → 5 (number released); callback queued; one event."""
    op = Op.SUCCEED if result == RESULT_SUCCESS else Op.FAIL
    to = next_state(chip["state"], op)
    name = "success" if op is Op.SUCCEED else _RESULT_NAMES[result]
    number = await conn.fetchrow(number_store.SELECT_BY_ID, task["number_id"])
    await conn.execute(chip_store.SET_STATE, chip["id"], int(to))
    await conn.execute(task_store.FINISH_TASK, task["id"], int(to), name, diagnostic, at)
    if op is Op.SUCCEED:
        await conn.execute(number_store.BIND, number["id"], chip["id"], at)
        await conn.execute(chip_store.SET_ACTIVE_ICCID, chip["id"], number["iccid"])
        await conn.execute(CLOSE_NOT_COMMUNICATING, chip["id"])
    else:
        await conn.execute(number_store.RELEASE, number["id"])
        await _exception(conn, name.upper(), chip, task, diagnostic)
    await task_store.event(conn, chip["id"], task["id"], op.value, chip["state"], int(to), actor, name)
    await task_store.queue_callback(conn, task["client_id"], task["id"], _callback(chip, task, number, to, at))
    return to


async def _report_repeated(conn: Any, chip: Any, result: int) -> bool:
    """A card that got no answer repeats its REPORT (§5.4 step 5): already durable → answer OK again."""
    if chip["state"] == CardState.WRITE_SUCCEEDED:
        return result == RESULT_SUCCESS
    if chip["state"] == CardState.WRITE_FAILED:
        task = await conn.fetchrow(task_store.LATEST_TASK, chip["id"])
        return task is not None and task["result"] == _RESULT_NAMES.get(result)
    return False


async def record_report(db: Any, eid: str, card_counter: int, result: int, active_iccid: str | None = None,
                        diagnostic: str | None = None, *, at: dt.datetime | None = None) -> Outcome:
    """A REPORT whose MAC verified, made durable in one transaction before CLOSE(00) (§5.4 step 5).

    00 → 4, number bound, callback queued; 01 → stays 3 with an exception (§6.2.4.1, R9);
    02/03 → 5 with an exception and a callback. A success naming another ICCID is a data error.
    """
    at = at or now()
    async with connection(db) as conn, conn.transaction():
        chip, fresh = await _lock_and_count(conn, eid, card_counter)
        if not fresh:
            return Outcome(CLOSE_REPLAYED, chip["state"])
        if chip["state"] != CardState.WRITING:
            repeated = await _report_repeated(conn, chip, result)
            return Outcome(CLOSE_OK if repeated else CLOSE_STATE, chip["state"], duplicate=repeated)
        task = await conn.fetchrow(task_store.OPEN_TASK, chip["id"])
        if result == RESULT_NO_SERVICE:
            await task_store.event(conn, chip["id"], task["id"], Op.NOT_COMMUNICATING.value, chip["state"],
                                   int(next_state(chip["state"], Op.NOT_COMMUNICATING)), "card", diagnostic)
            await _exception(conn, "NUMBER_NOT_COMMUNICATING", chip, task, diagnostic)
            return Outcome(CLOSE_OK, chip["state"])
        if result == RESULT_SUCCESS and active_iccid is not None:
            target = await conn.fetchval("SELECT iccid FROM numbers WHERE id = $1", task["number_id"])
            if active_iccid.upper() != target:
                result, diagnostic = RESULT_DATA_ERROR, "active ICCID differs from the written one"
        to = await _finish(conn, chip, task, result if result in (0, 2, 3) else RESULT_DATA_ERROR,
                           diagnostic, "card", at)
        return Outcome(CLOSE_OK, int(to))


async def fail_write(db: Any, eid: str, result: int, diagnostic: str | None = None, *,
                     at: dt.datetime | None = None) -> Outcome:
    """The platform gives up on a write (§5.4 step 3: SW error after a retry → chip fault; read-back
    mismatch → data error): 3 → 5, number released, exception and callback."""
    at = at or now()
    async with connection(db) as conn, conn.transaction():
        chip = await chip_store.lock(conn, eid)
        if chip["state"] != CardState.WRITING:
            return Outcome(CLOSE_STATE, chip["state"])
        task = await conn.fetchrow(task_store.OPEN_TASK, chip["id"])
        return Outcome(CLOSE_OK, int(await _finish(conn, chip, task, result, diagnostic, "platform", at)))


async def reserve_cntr(db: Any, eid: str, count: int = 256) -> tuple[int, int]:
    """Reserve platform CNTR values (first, last) for a session; never reused after a restart (§5.3)."""
    return await chip_store.reserve_cntr(db, eid, count)
