"""The BIP channel log's retention (R26, R27): attempts and refusal counts older than 190 days are purged."""

import datetime as dt

from esimota.store import bip_log


async def test_purge_deletes_only_what_is_past_retention(pool):
    now = dt.datetime.now(dt.timezone.utc)
    async with pool.acquire() as conn:
        await bip_log.count_refusals(conn, {("198.51.100.1", 1): 3, ("203.0.113.7", 1): 2})
        await bip_log.count_refusals(conn, {("198.51.100.1", 1): 4})  # same minute: one row, summed
    assert sorted(tuple(r) for r in await pool.fetch("SELECT source, frames FROM bip_refusals")) == [
        ("198.51.100.1", 7), ("203.0.113.7", 2)]
    await pool.execute("INSERT INTO bip_attempts (eid, frame_type, close_reason, detail) VALUES ('x', 1, 2, 'bad MAC')")
    assert await bip_log.purge(pool, now=now) == 0  # nothing is 190 days old
    assert await bip_log.purge(pool, now=now + dt.timedelta(days=191)) == 3
    assert await pool.fetchval("SELECT count(*) FROM bip_attempts") == 0
    assert await pool.fetchval("SELECT count(*) FROM bip_refusals") == 0
