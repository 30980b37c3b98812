"""R17 (issue 14): the stream cap's places in PostgreSQL, taken by several workers at once (api.limits.StreamPlaces)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import pytest

from esimota.api import status
from esimota.api.handlers import Call
from esimota.api.limits import StreamPlaces
from esimota.errors import RateLimited, Unavailable
from tests.support.platform import free_port


def _call() -> Call:
    return Call(pool=None, signer=None, client=None, source_ip="127.0.0.1", actor="client:c1",
                until=time.monotonic() + 3600)


async def test_concurrent_takers_on_many_workers_never_exceed_the_cap(db_url):
    """40 streams of one client opened at once through 4 workers (each its own holder and connections):
    exactly 5 get a place, the 35 others RESOURCE_EXHAUSTED TOO_MANY_STREAMS; another client is apart."""
    pools = [await asyncpg.create_pool(db_url, min_size=5, max_size=5) for _ in range(4)]
    try:
        workers = [StreamPlaces(p, 5, "node-a" if i < 2 else "node-b", i % 2, ttl=60) for i, p in enumerate(pools)]
        got = await asyncio.gather(*(workers[i % 4].enter(7, _call()) for i in range(40)), return_exceptions=True)
        taken = [g for g in got if not isinstance(g, BaseException)]
        refused = [g for g in got if isinstance(g, BaseException)]
        assert sorted(p.number for p in taken) == [0, 1, 2, 3, 4]
        assert len(refused) == 35 and all(isinstance(e, RateLimited) and e.reason == "TOO_MANY_STREAMS"
                                          for e in refused)
        assert status.outcome(refused[0]).grpc.name == "RESOURCE_EXHAUSTED"
        assert await pools[0].fetchval("SELECT count(*) FROM stream_places WHERE client_id = 7") == 5
        assert (await workers[3].enter(8, _call())).number == 0
    finally:
        for p in pools:
            await p.close()


async def test_leave_gives_the_place_to_another_worker(pool):
    a, b = StreamPlaces(pool, 1, "n", 0, ttl=60), StreamPlaces(pool, 1, "n", 1, ttl=60)
    held = await a.enter(7, _call())
    with pytest.raises(RateLimited):
        await b.enter(7, _call())
    a.leave(held)
    await a.stop()  # waits for the place being given back
    assert (await b.enter(7, _call())).number == 0
    assert await pool.fetchval("SELECT worker FROM stream_places WHERE client_id = 7") == 1


async def test_a_place_not_renewed_expires_and_its_stream_ends_once_taken_over(pool):
    """A worker whose renewal did not come in time (killed, or cut off longer than the ttl) loses its place:
    another takes it over, and the stream that held it is ended at the first renewal after."""
    a, b = StreamPlaces(pool, 1, "n", 0, ttl=1), StreamPlaces(pool, 1, "n", 1, ttl=60)
    call = _call()
    await a.enter(7, call)
    kept = _call()
    await a.enter(8, kept)
    await a.tick()
    assert call.until > time.monotonic()  # renewed: nothing lost
    while not await pool.fetchval("SELECT bool_and(expires_at <= now()) FROM stream_places"):
        await asyncio.sleep(0.1)
    await b.enter(7, _call())  # the expired place is taken over
    await a.tick()
    assert call.until == 0.0 and (7, 0) not in a.held
    assert kept.until > time.monotonic() and (8, 0) in a.held  # expired but nobody took it: renewed again
    assert await pool.fetchval("SELECT worker FROM stream_places WHERE client_id = 7") == 1


async def test_the_database_down_refuses_with_unavailable():
    """Decided in StreamPlaces: no local count instead; the stream is refused 503 / UNAVAILABLE."""
    dead = await asyncpg.create_pool(f"postgresql://nobody@127.0.0.1:{free_port()}/none", min_size=0, max_size=1)
    try:
        with pytest.raises(Unavailable) as err:
            await StreamPlaces(dead, 5, "n", 0, ttl=30, timeout=2).enter(7, _call())
        o = status.outcome(err.value)
        assert (o.http, o.grpc.name, o.reason, o.retry_after) == (503, "UNAVAILABLE", "UNAVAILABLE", 1.0)
    finally:
        await dead.close()
