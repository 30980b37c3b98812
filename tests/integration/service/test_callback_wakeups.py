"""The callback dispatcher is woken by work, not by itself (§7.3, R10; migration 0010).

Until 0010 every statement that set next_attempt_at sent a NOTIFY, rows or not, and the dispatcher's
own claim is such a statement: it woke itself at once, forever, and an idle platform spent about half a
core of worker 0 and of PostgreSQL on it.
"""

import asyncio

import asyncpg

from esimota.jobs.callbacks import Dispatcher
from esimota.service import callbacks, writing
from esimota.service.writing import ApplyRequest
from esimota.store import callback_outbox as outbox

from ..conftest import eid


async def _queue(pool, client, i: int) -> None:
    res = await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, province_code="44"))
    task_pk = await pool.fetchval("SELECT id FROM tasks WHERE task_id = $1", res.task_id)
    await pool.execute("INSERT INTO callback_outbox (event_id, client_id, task_id, payload) "
                       "VALUES ($1, $2, $3, '{}')", f"ev-{i}", client.id, task_pk)


async def test_only_due_callbacks_send_a_wake_up(db_url, pool, seeded):
    a, _ = seeded
    heard: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener("esimota_callbacks", lambda *args: heard.append(args[2]))

    async def wakes(statement, *args) -> int:
        heard.clear()
        await pool.execute(statement, *args)
        await listener.execute("SELECT 1")  # a round trip: a notification committed before it has arrived
        await asyncio.sleep(0.05)
        return len(heard)

    try:
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # empty outbox: nothing due
        heard.clear()
        await _queue(pool, a, 1)
        await listener.execute("SELECT 1")
        await asyncio.sleep(0.05)
        assert len(heard) == 1                                                    # a new callback is due now
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # claimed: a lease ahead
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # nothing left to claim
        assert await wakes("UPDATE callback_outbox SET next_attempt_at = now() + interval '30 seconds', "
                           "attempts = attempts + 1") == 0                        # a retry's backoff
        assert await wakes(outbox.REPUSH, "ev-1") == 1                         # an operator's re-push
        assert await wakes("UPDATE callback_outbox SET status = 'delivered'") == 0
    finally:
        await listener.close()


async def test_an_idle_dispatcher_waits_for_its_poll(db_url, pool, seeded):
    """With nothing to send the dispatcher claims once per poll (1 s), not in a loop."""
    a, _ = seeded
    rounds: list[int] = []

    class Counting(Dispatcher):
        async def tick(self) -> int:
            n = await super().tick()
            rounds.append(n)
            return n

    task = asyncio.ensure_future(Counting(pool, db_url).run())
    try:
        await asyncio.sleep(2.5)
        idle_rounds = len(rounds)
        assert 1 <= idle_rounds <= 4, rounds  # one claim at start, then one per 1 s poll
        assert await pool.fetchval("SELECT count(*) FROM callback_outbox") == 0
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
