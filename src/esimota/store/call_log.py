"""The API call log (R27, §9.2.2): every call, written behind in batches, kept ≥ 6 months, then purged."""

from __future__ import annotations

import datetime as dt
import functools
import ipaddress
import json
import logging
from typing import Any

import asyncpg

from ..background import Periodic
from ..log import secret_name

logger = logging.getLogger("esimota.call_log")  # "audit" names only the staff audit log (store/audit.py)

FLUSH_S = 0.2
MAX_PENDING = 50_000  # beyond this (database down for long) the oldest entries are dropped, and counted
RETENTION_DAYS = 190  # R27: at least 6 months
# arrays in, PostgreSQL parses the addresses (COPY would have the client parse every one in Python)
INSERT = """
INSERT INTO api_calls (at, client_id, transport, route, params, code, reason, latency_ms, source_ip, request_id)
SELECT at, client_id, transport, route, params::jsonb, code, reason, latency_ms, source_ip::inet, request_id
FROM unnest($1::timestamptz[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[],
            $8::real[], $9::text[], $10::text[])
     AS r(at, client_id, transport, route, params, code, reason, latency_ms, source_ip, request_id)"""
PURGE = "DELETE FROM api_calls WHERE id IN (SELECT id FROM api_calls WHERE at < $1 LIMIT 10000)"


def clean_params(params: dict[str, Any]) -> str:
    """The parameters as JSON with every secret (client_secret, token, sign…) left out (R25)."""
    kept = {k: v for k, v in params.items() if not secret_name(str(k))}
    text = json.dumps(kept, ensure_ascii=False, default=str)
    # jsonb refuses NUL; such a parameter was refused with 400 anyway, the log keeps a stand-in
    return text.replace("\\u0000", "\\ufffd") if len(text) <= 4000 else json.dumps({"truncated": text[:4000]})


@functools.lru_cache(maxsize=4096)
def _inet(source_ip: str | None) -> str | None:
    """The caller's address as text for the inet column (checked once per address), None if not one."""
    try:
        return str(ipaddress.ip_address(source_ip)) if source_ip else None
    except ValueError:
        return None


def _columns(rows: list[tuple]) -> list[list]:
    return [list(col) for col in zip(*rows)]


class CallLog(Periodic):
    """A per-worker buffer written every FLUSH_S in one statement; the hot path only appends a tuple."""

    every = FLUSH_S
    chore = "call log flush"

    def __init__(self, pool: Any) -> None:
        self.pool = pool
        self.pending: list[tuple] = []
        self.dropped = 0

    def record(self, *, client_id: str | None, transport: str, route: str, params: dict, code: int,
               reason: str | None, latency_s: float, source_ip: str | None, request_id: str | None = None) -> None:
        if len(self.pending) >= MAX_PENDING:
            self.pending.pop(0)
            self.dropped += 1
        self.pending.append((dt.datetime.now(dt.timezone.utc), client_id, transport, route, clean_params(params),
                             code, reason, round(latency_s * 1000, 3), _inet(source_ip), request_id))

    async def flush(self) -> int:
        batch, self.pending = self.pending, []
        if not batch:
            return 0
        try:
            await self.pool.execute(INSERT, *_columns(batch))
        except asyncpg.DataError:  # one unstorable row must not block the log: store the others
            return await self._one_by_one(batch)
        except Exception as exc:  # keep them for the next flush; the database may come back
            self.pending = batch + self.pending
            logger.warning("call log flush failed", extra={"error": type(exc).__name__, "pending": len(self.pending)})
            return 0
        return len(batch)

    async def _one_by_one(self, batch: list[tuple]) -> int:
        stored = 0
        for row in batch:
            try:
                await self.pool.execute(INSERT, *_columns([row]))
                stored += 1
            except asyncpg.DataError:
                self.dropped += 1
        return stored

    async def tick(self) -> None:
        await self.flush()

    async def stop(self) -> None:
        await super().stop()
        await self.flush()


async def purge(db: Any, *, days: int = RETENTION_DAYS, now: dt.datetime | None = None) -> int:
    """Delete call-log rows older than `days` (R26 retention then deletion), in small batches."""
    cutoff = (now or dt.datetime.now(dt.timezone.utc)) - dt.timedelta(days=days)
    total = 0
    while True:
        done = int((await db.execute(PURGE, cutoff)).split()[-1])
        total += done
        if done < 10000:
            return total
