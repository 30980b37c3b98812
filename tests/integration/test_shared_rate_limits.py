"""Per-client limits (§7.1.2, R17) hold over all workers: their counts meet in the database."""

import pytest

from esimota.api.limits import RateLimiter, SharedWindows
from esimota.errors import RateLimited


async def test_two_workers_share_one_clients_window(pool):
    """A client with 10 calls a minute: 6 on one worker, 4 on the other, then both refuse the 11th."""
    clock = [600.0]
    a, b = RateLimiter(clock=lambda: clock[0]), RateLimiter(clock=lambda: clock[0])
    sa, sb = SharedWindows(pool, a), SharedWindows(pool, b)
    for _ in range(6):
        a.hit(7, 10)
    await sa.sync()
    await sb.sync()
    assert [b.hit(7, 10).remaining for _ in range(4)] == [3, 2, 1, 0]
    with pytest.raises(RateLimited):
        b.hit(7, 10)
    await sb.sync()
    await sa.sync()
    with pytest.raises(RateLimited) as err:
        a.hit(7, 10)
    assert err.value.quota.headers()["RateLimit-Remaining"] == "0"
    assert a.hit(8, 10).remaining == 9  # another client has a window of its own
    assert await pool.fetchval("SELECT calls FROM rate_windows WHERE client_id = 7 AND window_no = 10") == 10


async def test_calls_made_during_a_sync_are_not_lost_and_windows_roll_over(pool):
    """Hits between the read of the counts and their arrival stay counted; a new minute starts afresh,
    and the rows of windows gone by are deleted."""
    clock = [600.0]
    a = RateLimiter(clock=lambda: clock[0])
    shared = SharedWindows(pool, a)
    a.hit(7, 100)
    sent = a.unsynced(a.window())
    a.hit(7, 100)  # while the sync is on its way
    a.synced(a.window(), sent, {7: 1})
    assert a.unsynced(a.window()) == {7: 1}
    await shared.sync()
    assert await pool.fetchval("SELECT calls FROM rate_windows WHERE client_id = 7 AND window_no = 10") == 1
    clock[0] = 720.0  # two minutes on
    assert a.hit(7, 100).remaining == 99
    await shared.sync()
    assert await pool.fetchval("SELECT count(*) FROM rate_windows WHERE window_no < 11") == 0
    assert await pool.fetchval("SELECT calls FROM rate_windows WHERE window_no = 12") == 1


async def test_per_address_token_limits_stay_local(pool):
    """GetToken's per-IP keys are not clients: they never reach the table."""
    a = RateLimiter()
    a.hit(("ip", "10.0.0.1"), 120)
    await SharedWindows(pool, a).sync()
    assert await pool.fetchval("SELECT count(*) FROM rate_windows") == 0
