"""A worker's periodic chore (cache refreshes, the call log's flush, shared rate counts): one task each."""

from __future__ import annotations

import asyncio
import logging
import time

logger = logging.getLogger("esimota")


class Periodic:
    """Every `every` seconds, `await self.tick()`; a failure (the database down, say) is logged at most
    once per 30 s and the next tick tries again. `start()` and `stop()` follow the worker's life."""

    every = 1.0
    chore = "background chore"
    _task: asyncio.Task | None = None
    _failed_at = -1e9

    async def tick(self) -> None:
        raise NotImplementedError

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.every)
            try:
                await self.tick()
            except Exception as exc:
                if time.monotonic() - self._failed_at >= 30.0:
                    self._failed_at = time.monotonic()
                    logger.warning(f"{self.chore} failed; retrying", extra={"error": type(exc).__name__})

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
