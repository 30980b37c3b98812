"""Apply under concurrency (DESIGN §3, R5, R18): no number given twice, no retried apply creates a second task."""

import asyncio

import asyncpg
import pytest

from esimota.errors import PermissionDenied
from esimota.service import admin, imports, writing
from esimota.service.writing import ApplyRequest

from ..conftest import BATCH_KEY, eid, write_chips, write_numbers


@pytest.fixture
async def big_pool(db_url):
    p = await asyncpg.create_pool(db_url, min_size=4, max_size=20)
    yield p
    await p.close()


async def test_2000_auto_applies_over_1000_numbers(big_pool, tmp_path):
    """R5 auto-allocation with SKIP LOCKED: 2,000 concurrent applies for 2,000 chips over 1,000
    numbers → exactly 1,000 succeed, 1,000 fail NO_RESOURCE, and no number is bound twice."""
    pool = big_pool
    await admin.create_batch(pool, "B1", BATCH_KEY)
    await imports.import_chips(pool, str(write_chips(tmp_path / "c.csv", range(2000))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(1000), province="32")))
    client = (await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.1",
                                        callback_url="https://a.example/cb")).client
    await admin.allocate_chips(pool, client.client_id, batch="B1")

    async def one(i):
        try:
            return await writing.apply_write(pool, client, ApplyRequest(eid(i), 1, province_code="32"))
        except PermissionDenied as exc:
            return exc.reason

    results = await asyncio.gather(*(one(i) for i in range(2000)))
    ok = [r for r in results if isinstance(r, writing.ApplyResult)]
    assert len(ok) == 1000 and results.count("NO_RESOURCE") == 1000
    assert await pool.fetchval("SELECT count(DISTINCT number_id) FROM tasks WHERE state = 2") == 1000
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1000
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE status = 'reserved'") == 1000
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE state = 2") == 1000
    assert await pool.fetchval("SELECT count(*) FROM chips WHERE state = 6") == 1000
    assert await pool.fetchval("SELECT count(*) FROM exceptions WHERE kind = 'NO_RESOURCE:32'") == 1


async def test_50_concurrent_repeats_give_one_task(big_pool, tmp_path):
    """R18, DESIGN §3: 50 concurrent repeats of one apply give one task and one reserved number."""
    pool = big_pool
    await admin.create_batch(pool, "B1", BATCH_KEY)
    await imports.import_chips(pool, str(write_chips(tmp_path / "c.csv", [1])), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(5))))
    client = (await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.1",
                                        callback_url="https://a.example/cb")).client
    await admin.allocate_chips(pool, client.client_id, batch="B1")
    results = await asyncio.gather(*(writing.apply_write(pool, client, ApplyRequest(eid(1), 1, province_code="44"))
                                     for _ in range(50)))
    assert len({r.task_id for r in results}) == 1
    assert sum(r.created for r in results) == 1
    assert await pool.fetchval("SELECT count(*) FROM tasks") == 1
    assert await pool.fetchval("SELECT count(*) FROM numbers WHERE status = 'reserved'") == 1
    assert await pool.fetchval("SELECT count(*) FROM task_events") == 1
