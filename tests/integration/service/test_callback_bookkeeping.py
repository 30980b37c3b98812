"""The dispatcher's bookkeeping of one round in one transaction (§7.3, R10, R27; DESIGN §6 retries)."""

from esimota.service import callbacks, writing
from esimota.service.writing import ApplyRequest
from esimota.store import callback_outbox as outbox

from ..conftest import eid


async def _outbox(pool, client, n: int) -> list:
    """n pending callbacks, one per task of client `client` (the claim query hands them out)."""
    for i in range(1, n + 1):
        res = await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, province_code="44"))
        task_pk = await pool.fetchval("SELECT id FROM tasks WHERE task_id = $1", res.task_id)
        await pool.execute("INSERT INTO callback_outbox (event_id, client_id, task_id, payload) "
                           "VALUES ($1, $2, $3, '{}')", f"ev-{i}", client.id, task_pk)
    return await pool.fetch(outbox.CLAIM, 64, callbacks.LEASE_S)


async def test_a_round_is_recorded_together_delivered_retried_and_exhausted(pool, seeded):
    """Every attempt is a row; the delivered ones are marked, a failure is rescheduled, the 17th is
    exhausted and opens the interface exception (§8.2.3 table 5) — all in one call."""
    a, _ = seeded
    rows = sorted(await _outbox(pool, a, 4), key=lambda r: r["id"])
    await pool.execute("UPDATE callback_outbox SET attempts = $2 WHERE id = $1", rows[3]["id"],
                       len(callbacks.SCHEDULE_S))
    last = dict(rows[3])
    last["attempts"] = len(callbacks.SCHEDULE_S)
    results = [(rows[0], 200, True, "HTTP 200"), (rows[1], 500, False, "HTTP 500: down"),
               (rows[2], 200, True, "HTTP 200"), (last, None, False, "ConnectError")]
    outcomes = await callbacks.record_results(pool, list(reversed(results)))
    assert outcomes == ["exhausted", "delivered", "retry", "delivered"]  # in the order given
    status = {r["id"]: (r["status"], r["attempts"]) for r in
              await pool.fetch("SELECT id, status, attempts FROM callback_outbox")}
    assert status == {rows[0]["id"]: ("delivered", 1), rows[1]["id"]: ("pending", 1),
                      rows[2]["id"]: ("delivered", 1), rows[3]["id"]: ("exhausted", len(callbacks.SCHEDULE_S) + 1)}
    attempts = await pool.fetch("SELECT outbox_id, http_status, outcome FROM callback_attempts ORDER BY outbox_id")
    assert [(r["outbox_id"], r["http_status"], r["outcome"]) for r in attempts] == [
        (rows[0]["id"], 200, "delivered"), (rows[1]["id"], 500, "failed"),
        (rows[2]["id"], 200, "delivered"), (rows[3]["id"], None, "failed")]
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE kind = 'CALLBACK_FAILED'") == 1
    assert await callbacks.record_results(pool, []) == []


async def test_a_round_that_cannot_be_recorded_changes_nothing(pool, seeded):
    """If the transaction fails, no attempt and no status is half-written; the lease brings them back."""
    a, _ = seeded
    rows = await _outbox(pool, a, 2)
    bad = dict(rows[1])
    bad["id"] = -1  # no such outbox row: the attempts insert violates its foreign key
    try:
        await callbacks.record_results(pool, [(rows[0], 200, True, "ok"), (bad, 200, True, "ok")])
    except Exception as exc:  # noqa: BLE001 — the type is PostgreSQL's; what matters is what stayed
        assert "foreign key" in str(exc)
    else:
        raise AssertionError("the bad round was recorded")
    assert await pool.fetchval("SELECT count(*) FROM callback_attempts") == 0
    assert await pool.fetchval("SELECT count(*) FROM callback_outbox WHERE status = 'pending'") == 2
