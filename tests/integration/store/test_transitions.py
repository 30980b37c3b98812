"""One state machine (DESIGN §3, §6.3 table 2, R11; STYLE 15): the database refuses any edge the table lacks.

domain/lifecycle.TRANSITIONS is the one table; migration 0012 holds its edges in card_transitions and a
trigger on chips and tasks refuses any other change of state, whoever issues it.
"""

import re
from pathlib import Path

import asyncpg
import pytest

from esimota.domain import lifecycle
from esimota.service import writing
from esimota.service.writing import ApplyRequest

from ..conftest import eid


async def test_the_database_holds_the_lifecycle_table(pool):
    rows = await pool.fetch("SELECT from_state, to_state FROM card_transitions")
    assert {(r[0], r[1]) for r in rows} == lifecycle.EDGES


@pytest.mark.parametrize("table", ["chips", "tasks"])
async def test_an_illegal_update_is_refused(pool, seeded, table):
    """2 → 4 skips 写卡中 (no REPORT without a write): refused, and nothing changes."""
    a, _ = seeded
    applied = await writing.apply_write(pool, a, ApplyRequest(eid(1), 1, province_code="44"))
    where = ("eid = $1", eid(1)) if table == "chips" else ("task_id = $1", applied.task_id)
    with pytest.raises(asyncpg.CheckViolationError, match="not an edge of table 2"):
        await pool.execute(f"UPDATE {table} SET state = 4 WHERE {where[0]}", where[1])
    assert await pool.fetchval(f"SELECT state FROM {table} WHERE {where[0]}", where[1]) == 2
    with pytest.raises(asyncpg.CheckViolationError):  # 写卡成功 is final: queries only
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(f"UPDATE {table} SET state = 3 WHERE {where[0]}", where[1])
            await conn.execute(f"UPDATE {table} SET state = 1 WHERE {where[0]}", where[1])  # 3 → 1: no such edge
    assert await pool.fetchval(f"SELECT state FROM {table} WHERE {where[0]}", where[1]) == 2


# The modules that change card state: their SQL names no state number, it comes from domain/lifecycle.
WRITERS = ["service/bip.py", "service/writing.py", "store/tasks.py", "store/chips.py"]
LITERAL_STATE = re.compile(r"\bstate\s*(=|<>|IN\s*\(|BETWEEN)\s*\d", re.IGNORECASE)


def test_no_state_number_is_spelled_in_the_writers_sql():
    src = Path(lifecycle.__file__).resolve().parents[1]
    found = [(name, m.group(0)) for name in WRITERS
             for m in LITERAL_STATE.finditer((src / name).read_text(encoding="utf-8"))]
    assert not found
