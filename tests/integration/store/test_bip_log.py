"""The BIP channel log's retention (R26, R27): attempts and refusal counts older than 190 days are purged."""

import datetime as dt

from esimota.codec import bcp
from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from esimota.store import bip_log
from tests.support import cards
from tests.support.waiting import until_query


async def test_purge_deletes_only_what_is_past_retention(pool):
    now = dt.datetime.now(dt.timezone.utc)
    async with pool.acquire() as conn:
        await bip_log.count_refusals(conn, {("198.51.100.1", 1): 3, ("203.0.113.7", 1): 2})
        await bip_log.count_refusals(conn, {("198.51.100.1", 1): 4})  # same minute: one row, summed
    assert sorted(tuple(r) for r in await pool.fetch("SELECT source, frames FROM bip_refusals")) == [
        ("198.51.100.1", 7), ("203.0.113.7", 2)]
    # an attempt as the endpoint records it (DESIGN §5.4 step 1): a known card's HELLO with a bad MAC
    fleet = await fleetdata.generate(pool, 1, faults=lambda i: Faults(bad_mac=True))
    async with cards.endpoint(pool) as port:
        out = await Device(fleet.devices[0], "127.0.0.1", port, max_channels=1).run()
    assert out.close_reason == bcp.CLOSE_BAD_MAC, out
    await until_query(pool, "SELECT count(*) FROM bip_attempts WHERE detail = 'bad MAC'", 1)
    assert await bip_log.purge(pool, now=now) == 0  # nothing is 190 days old
    assert await bip_log.purge(pool, now=now + dt.timedelta(days=191)) == 3
    assert await pool.fetchval("SELECT count(*) FROM bip_attempts") == 0
    assert await pool.fetchval("SELECT count(*) FROM bip_refusals") == 0
