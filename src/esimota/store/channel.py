"""The BIP channel's repository (DESIGN §5.4, §5.5): what one group commit reads and writes, in bulk.

Every write takes arrays (`unnest`), one statement per kind of change for the whole group: the hot
path's round trips do not grow with the number of cards in a group. States are domain/lifecycle's,
passed in by the service (DESIGN §3).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

#: ChipRow: an asyncpg Record with the columns below — the chip (id, eid, state, remaining_flow_bytes,
#: chip_model, owner_client_id, imei), its batch (batch, master_key_enc), counters (card_counter,
#: cntr_reserved), its latest task (task_pk, task_id, client_id, script_acked, script_total,
#: script_done, number_id, task_result, task_diagnostic), its client's public id (client_ref) and that task's number (iccid, msisdn,
#: imsi_enc, keys_enc, province_code); task and number columns are NULL for a chip without a task.
CHIPS_FOR_UPDATE = """
SELECT c.id, c.eid, c.state, c.remaining_flow_bytes, c.chip_model, c.owner_client_id, c.imei,
       b.name AS batch, b.master_key_enc,
       coalesce(cc.card_counter, -1) AS card_counter, coalesce(cc.cntr_reserved, 0) AS cntr_reserved,
       t.id AS task_pk, t.task_id, t.client_id, t.script_acked, t.script_total, t.script_done, t.number_id,
       t.result AS task_result, t.diagnostic AS task_diagnostic, cl.client_id AS client_ref,
       n.iccid, n.msisdn, n.imsi_enc, n.keys_enc, n.province_code
FROM chips c
JOIN chip_batches b ON b.id = c.batch_id
LEFT JOIN chip_counters cc ON cc.chip_id = c.id
LEFT JOIN LATERAL (SELECT * FROM tasks WHERE chip_id = c.id ORDER BY id DESC LIMIT 1) t ON true
LEFT JOIN clients cl ON cl.id = t.client_id
LEFT JOIN numbers n ON n.id = t.number_id
WHERE c.eid = ANY($1::text[])
ORDER BY c.id
FOR UPDATE OF c"""
UPSERT_COUNTERS = """
INSERT INTO chip_counters AS cc (chip_id, card_counter, cntr_reserved)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::bigint[])
ON CONFLICT (chip_id) DO UPDATE SET card_counter = greatest(cc.card_counter, excluded.card_counter),
    cntr_reserved = greatest(cc.cntr_reserved, excluded.cntr_reserved), updated_at = now()"""
START_WRITING = """
UPDATE chips c SET state = $2, state_changed_at = now() FROM unnest($1::bigint[]) AS u(id)
WHERE c.id = u.id AND c.state = $3"""
START_TASKS = """
UPDATE tasks t SET state = $3, started_at = coalesce(t.started_at, now()), progress_at = now(),
                   script_total = u.total
FROM unnest($1::bigint[], $2::int[]) AS u(id, total) WHERE t.id = u.id"""
EVENTS = """
INSERT INTO task_events (chip_id, task_id, operation, from_state, to_state, actor, reason)
SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::smallint[], $5::smallint[], $6::text[], $7::text[])"""
ATTEMPTS = """
INSERT INTO bip_attempts (eid, chip_id, frame_type, close_reason, detail)
SELECT * FROM unnest($1::text[], $2::bigint[], $3::smallint[], $4::smallint[], $5::text[])"""
# A failed write has no write time (§7.2.2.3: 未完成则为空); finished_at says when it ended.
FAIL_TASK = """
UPDATE tasks SET state = $2::smallint, result = $3, diagnostic = $4, write_time = NULL, finished_at = $5
WHERE id = $1"""
FAIL_CHIP = "UPDATE chips SET state = $2, state_changed_at = now() WHERE id = $1"
SUCCEED_TASKS = """
UPDATE tasks t SET state = $4, result = 'success', diagnostic = u.diag, write_time = $3, finished_at = $3,
                   script_done = true, script_acked = greatest(t.script_acked, t.script_total)
FROM unnest($1::bigint[], $2::text[]) AS u(id, diag) WHERE t.id = u.id"""
SUCCEED_CHIPS = """
UPDATE chips c SET state = $3, state_changed_at = now(), active_iccid = u.iccid
FROM unnest($1::bigint[], $2::text[]) AS u(id, iccid) WHERE c.id = u.id"""
BIND_NUMBERS = """
UPDATE numbers n SET status = 'bound', chip_id = u.chip_id, opened_at = $3
FROM unnest($1::bigint[], $2::bigint[]) AS u(id, chip_id) WHERE n.id = u.id"""
CALLBACKS = """
INSERT INTO callback_outbox (event_id, client_id, task_id, payload)
SELECT e, c, t, p::jsonb FROM unnest($1::text[], $2::bigint[], $3::bigint[], $4::text[]) AS u(e, c, t, p)"""


async def chips_for_update(conn: Any, eids: list[str]) -> list[Any]:
    """The ChipRows of `eids`, locked in id order (one lock order for every group)."""
    return await conn.fetch(CHIPS_FOR_UPDATE, eids)


async def chip_for_update(conn: Any, eid: str) -> Any:
    """One ChipRow, locked; None if there is no such chip."""
    return await conn.fetchrow(CHIPS_FOR_UPDATE, [eid])


async def advance_counters(conn: Any, counters: dict[int, list[int]]) -> None:
    """{chip_id: [card_counter, cntr_reserved]}: both only ever grow (§5.4 step 1, DESIGN §5.3)."""
    ids = sorted(counters)
    await conn.execute(UPSERT_COUNTERS, ids, [counters[i][0] for i in ids], [counters[i][1] for i in ids])


async def start_writing(conn: Any, chip_ids: list[int], writing: int, from_state: int) -> None:
    """Chips in `from_state` move to `writing` (2 → 3 at power-on)."""
    await conn.execute(START_WRITING, sorted(chip_ids), writing, from_state)


async def start_tasks(conn: Any, tasks: list[tuple[int, int]], writing: int) -> None:
    """[(task_pk, script_total)]: the tasks are writing; started_at is kept from the first power-on."""
    tasks = sorted(tasks)
    await conn.execute(START_TASKS, [t[0] for t in tasks], [t[1] for t in tasks], writing)


async def add_events(conn: Any, rows: list[tuple]) -> None:
    """Task events (chip_id, task_pk, operation, from, to, actor, reason), in one statement (R1)."""
    await conn.execute(EVENTS, *[list(col) for col in zip(*rows)])


async def add_attempts(conn: Any, rows: list[tuple]) -> None:
    """Refused channels of known cards (eid, chip_id, frame_type, close_reason, detail) (DESIGN §5.4 step 1)."""
    await conn.execute(ATTEMPTS, *[list(col) for col in zip(*rows)])


async def fail(conn: Any, chip_id: int, task_pk: int, failed: int, result: str, diagnostic: str | None,
               finished_at: dt.datetime) -> None:
    """The task and the chip move to `failed` (3 → 5); the task keeps why."""
    await conn.execute(FAIL_TASK, task_pk, failed, result, diagnostic, finished_at)
    await conn.execute(FAIL_CHIP, chip_id, failed)


async def succeed(conn: Any, chips: list[Any], diagnostics: list[str | None], succeeded: int,
                  at: dt.datetime) -> None:
    """REPORT 00 of many ChipRows (sorted by id): tasks, chips (active ICCID) and numbers bound, in bulk."""
    ids = [c["id"] for c in chips]
    await conn.execute(SUCCEED_TASKS, [c["task_pk"] for c in chips], diagnostics, at, succeeded)
    await conn.execute(SUCCEED_CHIPS, ids, [c["iccid"] for c in chips], succeeded)
    await conn.execute(BIND_NUMBERS, [c["number_id"] for c in chips], ids, at)


async def queue_callbacks(conn: Any, event_ids: list[str], client_ids: list[int], task_pks: list[int],
                          payloads: list[str]) -> None:
    """§7.3 callbacks (JSON text payloads) into the outbox, in one statement."""
    await conn.execute(CALLBACKS, event_ids, client_ids, task_pks, payloads)
