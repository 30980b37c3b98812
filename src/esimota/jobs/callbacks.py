"""The §7.3 callback dispatcher (R10, R27): signs, POSTs, retries ≥ 24 h, records every attempt; at-least-once."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp
import asyncpg

from .. import config, metrics
from ..service import callbacks
from .callback_targets import GuardedResolver, RefusedTarget, TargetPolicy
from ..store import callback_outbox as outbox
from ..store import clients as client_store

logger = logging.getLogger("esimota.callbacks")
POLL_S = 1.0
PER_CLAIM = 64  # callbacks claimed, posted and recorded together
CONCURRENCY = 32
TIMEOUT_S = 10.0
SECRET_TTL_S = 5.0  # a rotated callback secret is used within this
ACK_MAX = 4096  # bytes of a response read to find its {"code": 200}; the rest is never read
DETAIL_MAX = 160


def _acknowledged(status: int, text: str) -> bool:
    """§7.3 d): the partner answers JSON with code 200; anything else is retried."""
    if status != 200:
        return False
    try:
        body = json.loads(text)
    except ValueError:
        return False
    return isinstance(body, dict) and str(body.get("code")) == "200"


class Dispatcher:
    """Claims due outbox rows (SKIP LOCKED, with a lease), delivers them concurrently, records each attempt."""

    def __init__(self, pool: Any, dsn: str | None = None, policy: TargetPolicy | None = None) -> None:
        self.pool, self.dsn = pool, dsn
        self.policy = policy or TargetPolicy()
        self.wake = asyncio.Event()
        self._secrets: dict[str, tuple[float, bytes]] = {}
        self._sem = asyncio.Semaphore(CONCURRENCY)
        self.session: aiohttp.ClientSession | None = None

    async def _secret(self, client_id: str) -> bytes:
        hit = self._secrets.get(client_id)
        if hit is None or time.monotonic() - hit[0] > SECRET_TTL_S:
            hit = (time.monotonic(), await client_store.callback_secret(self.pool, client_id))
            self._secrets[client_id] = hit
        return hit[1]

    async def _post(self, url: str, body: dict) -> tuple[int | None, bool, str]:
        """One POST, redirects never followed (a 3xx is a failed attempt). What is kept of the attempt is
        short and holds nothing the target sent back but its status (DESIGN §6)."""
        data = json.dumps(body, ensure_ascii=False).encode()
        try:
            self.policy.check_url(url)
            async with self.session.post(url, data=data, headers={"Content-Type": "application/json"},
                                         allow_redirects=False) as resp:
                if 300 <= resp.status < 400:
                    return resp.status, False, f"HTTP {resp.status}: redirect not followed"
                text = (await resp.content.read(ACK_MAX)).decode("utf-8", "replace")
                ok = _acknowledged(resp.status, text)
                return resp.status, ok, f"HTTP {resp.status}" + ("" if ok else ": not acknowledged")
        except RefusedTarget as exc:
            return None, False, f"refused: {exc}"[:DETAIL_MAX]
        except aiohttp.ClientConnectorError as exc:
            if isinstance(exc.os_error, RefusedTarget):
                return None, False, f"refused: {exc.os_error}"[:DETAIL_MAX]
            return None, False, f"{type(exc).__name__}: {exc.os_error.strerror or type(exc.os_error).__name__}"[:DETAIL_MAX]
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError, OSError) as exc:
            return None, False, type(exc).__name__

    async def attempt(self, row: Any) -> tuple[Any, int | None, bool, str] | None:
        """One POST: a fresh timestamp and sign over the stored payload (same event_id every time);
        None when it could not be sent (its lease expires and it is claimed again: at-least-once)."""
        async with self._sem:
            try:
                body = callbacks.signed_body(callbacks.payload_of(row), await self._secret(row["client_id"]),
                                             int(time.time()))
            except Exception as exc:
                metrics.CALLBACKS.labels("error").inc()
                logger.warning("callback not sent", extra={"event_id": row["event_id"], "error": type(exc).__name__})
                return None
            code, ok, detail = await self._post(row["callback_url"], body)
            return row, code, ok, detail

    async def deliver(self, row: Any) -> str:
        """One attempt, recorded on its own."""
        result = await self.attempt(row)
        return "error" if result is None else (await self._record([result]))[0]

    async def _record(self, results: list) -> list[str]:
        results = [r for r in results if r is not None]
        try:
            outcomes = await callbacks.record_results(self.pool, results)
        except Exception as exc:  # the leases expire and the rows are claimed again: at-least-once
            logger.warning("callback attempts not recorded", extra={"count": len(results),
                                                                    "error": type(exc).__name__})
            return ["error"] * len(results)
        for (row, code, _, detail), outcome in zip(results, outcomes):
            metrics.CALLBACKS.labels(outcome).inc()
            # every attempt is a callback_attempts row already; the log says each one that failed
            if outcome != "delivered":
                logger.info("callback attempt failed", extra={
                    "event_id": row["event_id"], "client": row["client_id"], "attempt": row["attempts"] + 1,
                    "outcome": outcome, "http_status": code, "detail": detail[:200]})
        return outcomes

    async def tick(self) -> int:
        """Claim up to PER_CLAIM, POST them concurrently, record every attempt of the claim in one transaction."""
        rows = await outbox.claim(self.pool, PER_CLAIM, callbacks.LEASE_S)
        await self._record(list(await asyncio.gather(*(self.attempt(r) for r in rows))))
        return len(rows)

    def open_session(self) -> aiohttp.ClientSession:
        """No proxy from the environment, every resolved address checked (callback_targets)."""
        connector = aiohttp.TCPConnector(resolver=GuardedResolver(self.policy))
        return aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=TIMEOUT_S), connector=connector,
                                     trust_env=False)

    async def _listen(self) -> Any:
        if not self.dsn:
            return None
        try:
            conn = await asyncpg.connect(self.dsn)
            await conn.add_listener("esimota_callbacks", lambda *_: self.wake.set())
            return conn
        except (OSError, asyncpg.PostgresError) as exc:
            logger.warning("callback wake-ups unavailable; polling", extra={"error": type(exc).__name__})
            return None

    async def _idle(self) -> None:
        """Until a NOTIFY or POLL_S; asyncio.wait, unlike 3.11's wait_for, never swallows a cancellation."""
        waiter = asyncio.ensure_future(self.wake.wait())
        try:
            await asyncio.wait([waiter], timeout=POLL_S)
        finally:
            waiter.cancel()

    async def run(self) -> None:
        conn = await self._listen()
        self.session = self.open_session()
        try:
            while True:
                self.wake.clear()
                try:
                    if await self.tick() == PER_CLAIM:
                        continue
                except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                    logger.warning("callback dispatch failed", extra={"error": type(exc).__name__})
                await self._idle()
        finally:
            await self.session.close()
            if conn is not None:
                await conn.close()


async def job(platform: Any, lease: Any) -> None:
    """Leased job: runs on the node holding the lease (the claims are SKIP LOCKED with a lease of their own,
    so a takeover redelivers at most the claim in flight, with the same event_id)."""
    policy = TargetPolicy(platform.settings.callback_allow, config.allow_http_callbacks())
    await Dispatcher(platform.pool, platform.settings.database_url, policy).run()
