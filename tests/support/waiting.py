"""Waiting for what a background part of the platform does: a condition polled until it holds.

The limit only ends a hang with a message; it is not a timing assertion (speed is measured in benchmarks/).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from typing import Any, Callable


async def until(check: Callable[[], Any], what: str = "the condition", limit: float = 60.0,
                every: float = 0.05) -> Any:
    """The first true value of `check()` (a plain function or one returning an awaitable), polled every
    `every` seconds; AssertionError naming `what` if it never comes within `limit` seconds."""
    deadline = time.monotonic() + limit
    while True:
        got = check()
        if inspect.isawaitable(got):
            got = await got
        if got:
            return got
        assert time.monotonic() < deadline, f"never happened: {what}"
        await asyncio.sleep(every)


async def until_query(pool: Any, sql: str, want: Any = True, limit: float = 60.0) -> None:
    """Until the query's single value is `want` (what a test reads back, never state it sets)."""
    async def check() -> bool:
        return await pool.fetchval(sql) == want
    await until(check, f"{sql} = {want!r}", limit, every=0.2)
