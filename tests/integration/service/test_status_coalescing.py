"""Status queries that arrive together share one query (§7.2.2.3, R8) and answer exactly as alone."""

import asyncio

import asyncpg
import pytest

from esimota.errors import NotFound
from esimota.service import writing
from esimota.store import coalescing, tasks as task_store
from esimota.service.writing import ApplyRequest

from esimota.sim.device import Device, Faults
from tests.support import cards

from ..conftest import BATCH_KEY, eid


async def _partly_written(pool, card_eid: str) -> None:
    """The card powers on, two chunks of its script are acknowledged, then its channel drops: 写卡中."""
    async with cards.endpoint(pool) as port:
        spec = await cards.spec_for(pool, card_eid, bytes.fromhex(BATCH_KEY), buffer_size=160)
        spec.faults = Faults(drop_at_frame=3)
        await Device(spec, "127.0.0.1", port, max_channels=1).run()
        # progress is written behind (DESIGN §5.5), each acknowledgement in the group it arrived with: wait
        # until it is there and has stopped moving for longer than the driver's tick (0.5 s), so the
        # concurrent and the single calls below read the same progress
        last, still = None, 0
        for _ in range(400):
            acked = await pool.fetchval("SELECT script_acked FROM tasks t JOIN chips c ON c.id = t.chip_id "
                                        "WHERE c.eid = $1", card_eid)
            still = still + 1 if acked and acked == last else 0
            if still >= 30:
                return
            last = acked
            await asyncio.sleep(0.02)


def _fields(res: writing.StatusResult) -> tuple:
    return (res.eid, res.task_id, res.card_status, res.status_desc, res.progress, res.write_time)


async def test_concurrent_status_calls_share_queries_and_match_single_queries(pool, seeded):
    """R8: 40 concurrent calls (eids and task_ids, repeats included) → few queries, the same answers."""
    a, _ = seeded
    tasks = {}
    for i in range(1, 6):
        tasks[i] = (await writing.apply_write(pool, a, ApplyRequest(eid(i), 1, province_code="44"))).task_id
    await _partly_written(pool, eid(2))
    by_eid = task_store.STATUSES_BY_EID
    before = (coalescing.coalescer(pool, by_eid).queries, coalescing.coalescer(pool, by_eid).keys)
    asks = [dict(eid=eid(i)) for i in range(1, 16)] + [dict(eid=eid(i)) for i in range(1, 6)] \
        + [dict(task_id=t) for t in tasks.values()]
    together = await asyncio.gather(*(writing.write_status(pool, a, **ask) for ask in asks))
    async with pool.acquire() as conn:  # a connection: the one-statement path, no coalescing
        alone = [await writing.write_status(conn, a, **ask) for ask in asks]
    assert [_fields(r) for r in together] == [_fields(r) for r in alone]
    acked, total = await pool.fetchrow("SELECT script_acked, script_total FROM tasks WHERE task_id = $1", tasks[2])
    assert together[1].card_status == 3 and together[1].progress == 90 * acked // total > 0  # R8: acked/total × 90
    assert together[0].card_status == 2 and together[10].task_id == ""  # a chip without a task
    eid_coalescer = coalescing.coalescer(pool, by_eid)
    sent, keys = eid_coalescer.queries - before[0], eid_coalescer.keys - before[1]
    assert keys == 15  # the five repeats rode along with their first ask
    assert 1 <= sent < 15


async def test_batched_status_keeps_errors_per_caller(pool, seeded):
    """Unknown EIDs and other clients' chips fail alone; the other callers of the batch get answers."""
    a, b = seeded
    await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))  # chip 1 is allocated to A
    results = await asyncio.gather(
        writing.write_status(pool, a, eid=eid(1)),
        writing.write_status(pool, b, eid=eid(1)),
        writing.write_status(pool, a, eid=eid(999)),
        writing.write_status(pool, a, task_id="no-such-task"),
        writing.write_status(pool, a, eid=eid(3)),
        return_exceptions=True)
    assert results[0].card_status == 2
    # another client's chip is answered exactly as an unknown EID (DESIGN §6)
    assert isinstance(results[1], NotFound) and results[1].reason == "EID_NOT_FOUND"
    assert results[1].message == results[2].message
    assert isinstance(results[2], NotFound) and results[2].reason == "EID_NOT_FOUND"
    assert isinstance(results[3], NotFound) and results[3].reason == "TASK_NOT_FOUND"
    assert results[4].card_status == 1 and results[4].task_id == ""


async def test_a_failed_batch_query_reaches_every_waiter_and_the_next_batch_works(pool, seeded):
    """A database error is every waiter's error (→ 503 upstream); nobody hangs; later batches run."""
    broken = coalescing.Coalescer(pool, "SELECT no_such_column AS _key FROM chips WHERE eid = ANY($1::bpchar[])")
    results = await asyncio.gather(*(broken.get(eid(i)) for i in range(1, 4)), return_exceptions=True)
    assert all(isinstance(r, asyncpg.UndefinedColumnError) for r in results)
    assert broken.in_flight == 0 and not broken.pending
    good = coalescing.Coalescer(pool, "SELECT eid AS _key, state FROM chips WHERE eid = ANY($1::bpchar[])")
    assert (await good.get(eid(1)))["state"] == 1 and await good.get("0" * 32) is None


async def test_a_caller_that_leaves_does_not_disturb_its_batch(pool, seeded):
    """A cancelled waiter (the partner hung up) is skipped; the others of its batch are answered."""
    rows = coalescing.Coalescer(pool, "SELECT eid AS _key, pg_sleep(0.05) IS NULL AS slept FROM chips "
                                  "WHERE eid = ANY($1::bpchar[])")
    leaving = asyncio.ensure_future(rows.get(eid(1)))
    staying = asyncio.ensure_future(rows.get(eid(2)))
    await asyncio.sleep(0.01)
    leaving.cancel()
    assert (await staying)["_key"] == eid(2)
    with pytest.raises(asyncio.CancelledError):
        await leaving
    assert rows.in_flight == 0


async def test_batches_are_bounded(pool, seeded):
    """No query carries more than max_keys keys; the rest go in the next ones."""
    rows = coalescing.Coalescer(pool, "SELECT eid AS _key FROM chips WHERE eid = ANY($1::bpchar[])", max_keys=4)
    found = await asyncio.gather(*(rows.get(eid(i)) for i in range(1, 21)))
    assert [r["_key"] for r in found] == [eid(i) for i in range(1, 21)]
    assert rows.queries >= 5 and rows.keys == 20
