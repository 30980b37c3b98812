"""The write over the BIP channel as use cases (DESIGN §5.4): HELLO checks, progress, failures, REPORT.

The driver hands over every event that arrived since the last call; they are made durable in ONE
transaction (group commit, DESIGN §5.5) and only then are the answers (StartWrite, Close) returned to
the driver, which applies them. Progress is written behind in the same commit groups; state
transitions are written before the card hears of them. Every statement is store/channel.py's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import secrets
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import asyncpg

from ..codec import bcp
from ..codec import keys as codec_keys
from ..domain.lifecycle import STATUS_DESC, CardState, Op, next_state
from ..ota import personalise, wire
from ..ota.mux import (CARD_EVENTS, ENDS, F_CHIP_FAULT, Acked, Close, Hello, ProtocolError, ScriptDone, Session,
                       StartWrite, WriteFailed, plan_chunks)
from ..store import bip_log
from ..store import channel as channel_store
from ..store import chips as chip_store
from ..store import crypto
from ..store import numbers as number_store
from ..store import tasks as task_store
from . import channel_records, monitoring, ops, telemetry
from .common import CST

log = logging.getLogger("esimota.bip")

CNTR_BLOCK = 64  # platform CNTR values reserved per session (DESIGN §5.3)
YIELD_EVERY = 64  # cards judged between two turns of the event loop

# Every state below comes from domain/lifecycle's table (DESIGN §3): the statements take it as a parameter.
S = CardState
POWER_ON_FROM, WRITING = S.AWAITING_POWER_ON, next_state(S.AWAITING_POWER_ON, Op.POWER_ON)
SUCCEEDED, FAILED = next_state(S.WRITING, Op.SUCCEED), next_state(S.WRITING, Op.FAIL)
# the failures REPORT results name (§5.4 step 5)
CHIP_FAULT, DATA_ERROR = "chip fault", "data error"
LIE = "REPORT 00 names ICCID"


class SessionRef(NamedTuple):
    """What the service hangs on a write session (Session.owner), carried to every event and to the channel's
    end: the chip row, and the task's public id for the session-end log line (api.bip.telemetry)."""

    chip_id: int
    task_id: str


@dataclass
class CommitGroup:
    """What one group commit writes; filled while the events are judged, written at once."""

    counters: dict = field(default_factory=dict)   # chip_id -> [card_counter, cntr_reserved]
    start_chips: list = field(default_factory=list)
    start_tasks: list = field(default_factory=list)  # (task_pk, total)
    events: list = field(default_factory=list)       # task event rows (store.channel.add_events)
    attempts: list = field(default_factory=list)     # attempt rows (store.channel.add_attempts)
    progress: dict = field(default_factory=dict)     # task_pk -> (acked, total, done)
    traffic: dict = field(default_factory=dict)      # chip_id -> bytes
    finals: list = field(default_factory=list)       # coroutines fn(conn) for single transitions
    successes: list = field(default_factory=list)    # (chip row, diagnostic) of REPORT 00, written in bulk
    answers: list = field(default_factory=list)      # StartWrite | Close, returned to the driver
    refusals: dict = field(default_factory=dict)     # (source, reason) -> frames of unknown cards, chip-less garbage
    source: Any = lambda cid: ""                     # a channel's source address (ota.guard.SourceGuard.source)


class ChannelService:
    """The service side of the BIP endpoint for one worker (called by api.bip.driver.Driver)."""

    def __init__(self, pool: Any, *, master_cache: int = 256, key_cache: int = 50_000,
                 actor: str = "card") -> None:
        self.pool = pool
        self.masters: OrderedDict = OrderedDict()
        self.master_cache = master_cache
        self.chip_keys: OrderedDict = OrderedDict()  # eid -> (kic, kid, dek); bounded, oldest out first
        self.key_cache = key_cache
        self.actor = actor
        self.guard, self.sessions = channel_records.HelloGuard(), channel_records.SessionLog()  # issue 15

    async def handle(self, events: list, source=None) -> list:
        """Judge a group of events, commit what they change in one transaction, then return the answers
        to the cards (StartWrite, Close) for the driver to apply. `source(cid)` names a channel's source
        address (the driver's SourceGuard.source), for the per-source count of unknown cards.

        Two workers' groups may lock the same chips in another order; PostgreSQL then aborts one of
        them, which is simply judged again (nothing was answered yet).
        """
        for attempt in range(4):
            try:
                group = await self._commit_group(events, source)
                break
            except (asyncpg.DeadlockDetectedError, asyncpg.SerializationError):
                if attempt == 3:
                    raise
                await asyncio.sleep(0.01 * (attempt + 1))
        telemetry.group_committed(events, group)
        return group.answers

    async def _commit_group(self, events: list, source=None) -> CommitGroup:
        telemetry.group_begin()
        group = CommitGroup(source=source or CommitGroup.source)
        cards = [ev for ev in events if type(ev) in CARD_EVENTS]
        async with self.pool.acquire() as conn, conn.transaction():
            if cards:
                rows = await channel_store.chips_for_update(conn, sorted({ev.fields["eid"] for ev in cards}))
                chips = {r["eid"]: r for r in rows}
                for i, ev in enumerate(cards, 1):
                    await self._judge_card(conn, ev, chips, group)
                    if i % YIELD_EVERY == 0:  # let the loop accept and read meanwhile (a group may
                        await asyncio.sleep(0)  # hold thousands of HELLOs; the listen queue is finite)
            for ev in events:
                self._note_session_event(ev, group)
            await self._write(conn, group)
        return group

    # -- HELLO and REPORT ---------------------------------------------------------------------
    async def _keys(self, conn, chip) -> tuple[bytes, bytes, bytes]:
        """K_IC, K_ID, K_DEK of a chip (DESIGN §5.2), kept for the chips seen lately (HELLO, then REPORT)."""
        keys = self.chip_keys.get(chip["eid"])
        if keys is not None:
            return keys
        master = self.masters.get(chip["batch"])
        if master is None:
            master = await crypto.decrypt(self.pool, chip["master_key_enc"],
                                          chip_store.BATCH_AAD + chip["batch"].encode())
            self.masters[chip["batch"]] = master
            if len(self.masters) > self.master_cache:
                self.masters.popitem(last=False)
        keys = codec_keys.derive_keys(master, bytes.fromhex(chip["eid"]))
        self.chip_keys[chip["eid"]] = keys
        if len(self.chip_keys) > self.key_cache:
            self.chip_keys.popitem(last=False)
        return keys

    async def _judge_card(self, conn, ev, chips, group: CommitGroup) -> None:
        cid, fields, frame = ev.cid, ev.fields, ev.frame
        hello = type(ev) is Hello
        ftype = bcp.HELLO if hello else bcp.REPORT
        chip = chips.get(fields["eid"])
        if chip is None:
            return self._refuse(group, cid, fields["eid"], None, ftype, bcp.CLOSE_UNKNOWN_CARD, "unknown chip")
        kic, kid, dek = await self._keys(conn, chip)
        if not wire.verify_mac(kid, frame):
            return self._refuse(group, cid, chip["eid"], chip["id"], ftype, bcp.CLOSE_BAD_MAC, "bad MAC")
        counters = group.counters.setdefault(chip["id"], [chip["card_counter"], chip["cntr_reserved"]])
        if fields["counter"] <= counters[0]:
            return self._refuse(group, cid, chip["eid"], chip["id"], ftype, bcp.CLOSE_REPLAYED, "replayed counter")
        counters[0] = fields["counter"]  # every verified frame advances the card counter (§5.4 step 1)
        if hello:
            await self._on_hello(conn, cid, fields, chip, (kic, kid, dek), counters, group)
        else:
            self._on_report(cid, fields, chip, group)

    @staticmethod
    def _count_refusal(group: CommitGroup, cid, reason: int) -> None:
        """No chip, no key: a count per source and minute (bip_refusals), not a row per frame."""
        key = (group.source(cid), reason)
        group.refusals[key] = group.refusals.get(key, 0) + 1

    def _refuse(self, group: CommitGroup, cid, eid, chip_id, ftype, reason, detail) -> None:
        if reason == bcp.CLOSE_UNKNOWN_CARD:
            self._count_refusal(group, cid, reason)
        else:
            group.attempts.append((eid, chip_id, ftype, reason, detail))
        group.answers.append(Close(cid, reason))

    async def _on_hello(self, conn, cid, fields, chip, keys, counters, group: CommitGroup) -> None:
        state = chip["state"]
        if state not in (POWER_ON_FROM, WRITING) or chip["task_pk"] is None:
            return self._refuse(group, cid, chip["eid"], chip["id"], bcp.HELLO, bcp.CLOSE_STATE,
                                f"state {state} does not allow a write")
        if await self.guard.refusal(conn, group, chip, fields.get("imei")):  # R32: blacklisted since the apply
            return self._refuse(group, cid, chip["eid"], chip["id"], bcp.HELLO, bcp.CLOSE_STATE, "blacklisted")
        if chip["remaining_flow_bytes"] <= 0:  # R3: test traffic is for writing only, never restored
            return self._refuse(group, cid, chip["eid"], chip["id"], bcp.HELLO, bcp.CLOSE_NO_TRAFFIC,
                                "no test traffic left")
        imsi, ki, opc = await number_store.decrypt_secrets(self.pool, chip)
        kic, kid, dek = keys
        script = personalise.build(personalise.Personalisation(chip["iccid"], imsi, chip["msisdn"], ki, opc), dek)
        session = Session(chip["eid"], chip["task_pk"], kic, kid, counters[1] + 1, counters[1] + CNTR_BLOCK + 1,
                          script.apdus, script.context, script.expect, chip["script_acked"],
                          owner=SessionRef(chip["id"], chip["task_id"]))
        try:  # §5.1: a frame is at most the card's buffer; a C-APDU is never split (§5.4 step 2)
            plan_chunks(session, fields["buffer_size"])
        except ValueError as exc:  # this card alone is refused; the rest of its group goes on
            self._refuse(group, cid, chip["eid"], chip["id"], bcp.HELLO, bcp.CLOSE_PROTOCOL, str(exc))
            group.finals.append(lambda conn, c=chip, d=f"declared buffer: {exc}": ops.raise_exception(
                conn, "CHANNEL_PROTOCOL_ERROR", chip_id=c["id"], task_id=c["task_pk"], client_id=c["client_id"],
                detail=d))
            return
        counters[1] += CNTR_BLOCK
        if state == POWER_ON_FROM:
            group.start_chips.append(chip["id"])
        group.start_tasks.append((chip["task_pk"], len(script.apdus)))
        if fields.get("imei") and chip["imei"] and fields["imei"] != chip["imei"]:  # R32 card–device separation
            group.finals.append(lambda conn, e=chip["eid"], i=fields["imei"]: monitoring.check_device(conn, e, i))
        reason = "power-on" if fields["reason"] == bcp.HELLO_POWER_ON else "resume after a drop"
        group.events.append((chip["id"], chip["task_pk"], Op.POWER_ON.value, state,
                             next_state(state, Op.POWER_ON), self.actor, reason))
        group.answers.append(StartWrite(cid, session, fields["buffer_size"]))
        self.sessions.started(group, session, chip, resumed=fields["reason"] != bcp.HELLO_POWER_ON)  # R1: its record

    def _on_report(self, cid, fields, chip, group: CommitGroup) -> None:
        state, result = chip["state"], fields["result"]
        if self._repeated(chip, result):  # the card did not hear our CLOSE(00): the result is durable already
            group.answers.append(Close(cid, bcp.CLOSE_DONE))
            return
        if state != WRITING or chip["task_pk"] is None:
            return self._refuse(group, cid, chip["eid"], chip["id"], bcp.REPORT, bcp.CLOSE_STATE,
                                f"REPORT in state {state}")
        if not chip["script_done"]:  # §5.4 step 5: judged only once every chunk was acknowledged
            self._refuse(group, cid, chip["eid"], chip["id"], bcp.REPORT, bcp.CLOSE_STATE,
                         f"REPORT before the script was acknowledged ({chip['script_acked']}/{chip['script_total']})")
            group.finals.append(lambda conn, c=chip: ops.raise_exception(
                conn, "EARLY_REPORT", chip_id=c["id"], task_id=c["task_pk"], client_id=c["client_id"],
                detail=f"REPORT {result:02X} with {c['script_acked']}/{c['script_total']} C-APDUs acknowledged"))
            return
        diagnostic = fields.get("diagnostic")
        if result == bcp.REPORT_SUCCESS and (fields.get("iccid") or "").upper() != chip["iccid"].upper():
            # the card says it works, but not with the number written: a data error (§5.4 step 5)
            result, diagnostic = bcp.REPORT_DATA_ERROR, f"{LIE} {fields.get('iccid') or '-'}, {chip['iccid']} was written"
        if result == bcp.REPORT_SUCCESS:  # the common case is written in bulk with the rest of the group
            group.successes.append((chip, diagnostic))
        else:
            group.finals.append(lambda conn, c=chip, r=result, d=diagnostic: self._report(conn, c, r, d))
        group.answers.append(Close(cid, bcp.CLOSE_DONE))

    @staticmethod
    def _repeated(chip, result: int) -> bool:
        """A REPORT the platform judged already (§5.4 step 5: a card that got no answer repeats it)."""
        if chip["state"] == SUCCEEDED:
            return result == bcp.REPORT_SUCCESS
        if chip["state"] == FAILED:
            judged = {CHIP_FAULT: bcp.REPORT_CHIP_FAULT, DATA_ERROR: bcp.REPORT_DATA_ERROR}.get(chip["task_result"])
            lied = (chip["task_diagnostic"] or "").startswith(LIE)  # a REPORT 00 naming another ICCID
            return result == judged or (result == bcp.REPORT_SUCCESS and lied)
        return False

    async def _report(self, conn, chip, result: int, diagnostic: str | None) -> None:
        """REPORT made durable (DESIGN §5.4 step 5): 01 → stays 3 + exception, 02/03 (or a lie) → 5."""
        if result == bcp.REPORT_NO_COMM:  # table 4: 运营号无法通信; the card reports again later (§6.2.4.1, R9)
            await ops.raise_exception(conn, "NUMBER_NOT_COMMUNICATING", chip_id=chip["id"], task_id=chip["task_pk"],
                                      client_id=chip["client_id"], detail=diagnostic)
            await task_store.event(conn, chip["id"], chip["task_pk"], Op.NOT_COMMUNICATING.value, chip["state"],
                                   next_state(chip["state"], Op.NOT_COMMUNICATING), self.actor,
                                   diagnostic or "REPORT 01")
            telemetry.write_outcome(chip, "not_communicating")
            return
        await self._fail(conn, chip, CHIP_FAULT if result == bcp.REPORT_CHIP_FAULT else DATA_ERROR, diagnostic)

    async def _fail(self, conn, chip, result: str, diagnostic) -> None:
        """3 → 5 in one transaction: task, chip, the number given back, exception, task event, callback."""
        now = dt.datetime.now(CST)
        telemetry.write_outcome(chip, result)
        to = next_state(chip["state"], Op.FAIL)
        await channel_store.fail(conn, chip["id"], chip["task_pk"], int(to), result, diagnostic, now)
        await number_store.give_back(conn, chip["number_id"], chip["province_code"])  # DESIGN §3
        await ops.raise_exception(conn, "CHIP_FAULT" if result == CHIP_FAULT else "DATA_ERROR", chip_id=chip["id"],
                                  task_id=chip["task_pk"], client_id=chip["client_id"], detail=diagnostic or result)
        await task_store.event(conn, chip["id"], chip["task_pk"], Op.FAIL.value, chip["state"], int(to),
                               self.actor, result if not diagnostic else f"{result}: {diagnostic}")
        await task_store.queue_callback(conn, chip["client_id"], chip["task_pk"], {
            "eid": chip["eid"], "task_id": chip["task_id"], "card_status": int(to), "write_result": "failure",
            "write_time": "", "iccid": chip["iccid"], "msisdn": chip["msisdn"], "status_desc": STATUS_DESC[to]})

    # -- events of a running session -----------------------------------------------------------
    def _note_session_event(self, ev, group: CommitGroup) -> None:
        kind = type(ev)
        if kind in CARD_EVENTS:
            return
        self.sessions.event(group, ev)  # R1: ends and sizes of channel sessions (before traffic is charged)
        session = ev.session
        if session is None:
            if kind is ProtocolError:  # before any HELLO verified: nobody's chip, bytes anyone can send
                self._count_refusal(group, ev.cid, bcp.CLOSE_PROTOCOL)
            return
        total = len(session.apdus)
        if kind is Acked:
            acked, _, done = group.progress.get(session.task_id, (0, total, False))
            group.progress[session.task_id] = (max(acked, ev.acked), total, done)
        elif kind is ScriptDone:  # progress 95 and the traffic are durable before the card refreshes
            group.progress[session.task_id] = (total, total, True)
            group.answers.append(Close(ev.cid, bcp.CLOSE_DONE))
        elif kind is WriteFailed:
            group.finals.append(lambda conn, s=session, f=ev.failure: self._session_failed(conn, s, f))
            group.answers.append(Close(ev.cid, bcp.CLOSE_DONE))
        if kind in ENDS:
            chip_id = session.owner.chip_id
            if chip_id is not None and session.traffic:
                group.traffic[chip_id] = group.traffic.get(chip_id, 0) + session.traffic
                session.traffic = 0

    async def _session_failed(self, conn, session, failure: int) -> None:
        """§5.4 step 3: an SW error after one retry is a chip fault, a read-back mismatch a data error."""
        row = await channel_store.chip_for_update(conn, session.eid)
        if row is None or row["state"] != WRITING or row["task_pk"] != session.task_id:
            return
        if failure == F_CHIP_FAULT:
            await self._fail(conn, row, CHIP_FAULT, "a C-APDU failed twice")
        else:
            await self._fail(conn, row, DATA_ERROR, "read-back differs from what was written")

    # -- the group's one transaction -------------------------------------------------------------
    async def _write(self, conn, b: CommitGroup) -> None:
        if b.counters:
            await channel_store.advance_counters(conn, b.counters)
        if b.start_chips:
            await channel_store.start_writing(conn, b.start_chips, int(WRITING), int(POWER_ON_FROM))
        if b.start_tasks:
            await channel_store.start_tasks(conn, b.start_tasks, int(WRITING))
        if b.events:
            await channel_store.add_events(conn, b.events)
        if b.attempts:
            await channel_store.add_attempts(conn, b.attempts)
        if b.refusals:
            await bip_log.count_refusals(conn, b.refusals)
        if b.progress:
            await task_store.write_progress(conn, b.progress, dt.datetime.now(dt.timezone.utc))
        if b.traffic:
            await chip_store.charge_flow(conn, b.traffic)
        if b.successes:
            await self._succeed_all(conn, b.successes)
        for final in b.finals:
            await final(conn)

    async def _succeed_all(self, conn, successes: list) -> None:
        """REPORT 00 of many cards (DESIGN §5.4 step 5): task, chip, number, event, callback — in bulk;
        the exceptions whose cause the success removes close themselves (docs/operations.md)."""
        now = dt.datetime.now(CST)
        successes.sort(key=lambda item: item[0]["id"])
        chips = [c for c, _ in successes]
        ids = [c["id"] for c in chips]
        await channel_store.succeed(conn, chips, [d for _, d in successes], int(SUCCEEDED), now)
        await channel_store.add_events(conn, [
            (c["id"], c["task_pk"], Op.SUCCEED.value, c["state"], int(SUCCEEDED), self.actor,
             "success" if not d else f"success: {d}") for c, d in successes])
        await task_store.close_resolved_by_success(conn, ids)
        when = now.isoformat(timespec="seconds")
        event_ids = ["E" + secrets.token_hex(12) for _ in chips]
        payloads = [json.dumps({"eid": c["eid"], "task_id": c["task_id"], "card_status": int(SUCCEEDED),
                                "write_result": "success", "write_time": when, "iccid": c["iccid"],
                                "msisdn": c["msisdn"], "status_desc": STATUS_DESC[SUCCEEDED], "event_id": e},
                               ensure_ascii=False) for c, e in zip(chips, event_ids)]
        await channel_store.queue_callbacks(conn, event_ids, [c["client_id"] for c in chips],
                                            [c["task_pk"] for c in chips], payloads)
