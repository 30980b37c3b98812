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

from tests.support.waiting import until

from ..conftest import eid


async def _queue(pool, client, i: int) -> None:
    res = await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, province_code="44"))
    task_pk = await pool.fetchval("SELECT id FROM tasks WHERE task_id = $1", res.task_id)
    await pool.execute("INSERT INTO callback_outbox (event_id, client_id, task_id, payload) "
                       "VALUES ($1, $2, $3, '{}')", f"ev-{i}", client.id, task_pk)


MARK = "esimota_test_mark"  # a notification sent after a statement: it arrives after the statement's own


async def test_only_due_callbacks_send_a_wake_up(db_url, pool, seeded):
    a, _ = seeded
    heard: list[str] = []
    marks: list[str] = []
    listener = await asyncpg.connect(db_url)
    await listener.add_listener("esimota_callbacks", lambda *args: heard.append(args[2]))
    await listener.add_listener(MARK, lambda *args: marks.append(args[3]))

    async def wakes(statement, *args) -> int:
        """Wake-ups sent by `statement` (SQL, or a coroutine function): PostgreSQL delivers notifications in
        commit order, so every one of the statement's has been heard once the mark sent after it is."""
        heard.clear()
        await (statement() if callable(statement) else pool.execute(statement, *args))
        mark = str(len(marks))
        await pool.execute("SELECT pg_notify($1, $2)", MARK, mark)
        await until(lambda: mark in marks, f"the mark after {statement!r:.60}")
        return len(heard)

    try:
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # empty outbox: nothing due
        assert await wakes(lambda: _queue(pool, a, 1)) == 1                       # a new callback is due now
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # claimed: a lease ahead
        assert await wakes(outbox.CLAIM, 64, callbacks.LEASE_S) == 0          # nothing left to claim
        assert await wakes("UPDATE callback_outbox SET next_attempt_at = now() + interval '30 seconds', "
                           "attempts = attempts + 1") == 0                        # a retry's backoff
        assert await wakes(outbox.REPUSH, "ev-1") == 1                         # an operator's re-push
        assert await wakes("UPDATE callback_outbox SET status = 'delivered'") == 0
    finally:
        await listener.close()


async def test_an_idle_dispatcher_waits_for_its_poll(db_url, pool, seeded):
    """With nothing to send the dispatcher claims once, then waits for a wake-up or its poll (1 s; an hour
    here, so that every claim after the first is one a wake-up caused): its own claims wake nothing, and
    each callback that comes due wakes it once."""
    a, _ = seeded
    rounds: list[int] = []

    class Counting(Dispatcher):
        poll_s = 3600.0

        async def tick(self) -> int:
            n = await super().tick()
            rounds.append(n)
            return n

    task = asyncio.ensure_future(Counting(pool, db_url).run())
    try:
        await until(lambda: rounds, "the dispatcher's first claim")
        await _queue(pool, a, 1)
        await until(lambda: 1 in rounds, "the claim of the first due callback")
        await _queue(pool, a, 2)
        await until(lambda: rounds.count(1) == 2, "the claim of the second due callback")
        assert rounds == [0, 1, 1]  # a self-woken dispatcher claims again and again in between (0, 0, ...)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
