"""§7.3 callbacks (R10, R27): the signature, delivery bookkeeping, exhaustion and admin re-push."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import json
import os
from typing import Any

from ..errors import NotFound
from ..store import callback_outbox as outbox
from ..store import tasks as task_store
from .common import connection

# Growing delays between attempts (DESIGN §6: at least 24 h in all; they add up to 25 h 8 min).
SCHEDULE_S = (10, 30, 60, 120, 300, 600, 1200, 1800, 3600, 3600, 7200, 7200, 14400, 14400, 14400, 21600)
LEASE_S = 60  # a claimed callback is not picked again for this long (another dispatcher, a crash)



def _text(value: Any) -> str:
    """Numbers in decimal, strings as they are, null as empty (DESIGN §6)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def canonical(fields: dict[str, Any]) -> str:
    """The signed text: `k=v` of every field but `sign`, sorted by key, joined by `&`."""
    return "&".join(f"{k}={_text(v)}" for k, v in sorted(fields.items()) if k != "sign")


def sign(fields: dict[str, Any], secret: bytes | str) -> str:
    """§7.3, R27: hex HMAC-SHA256 of the canonical text under the client's callback secret (UTF-8)."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, canonical(fields).encode(), hashlib.sha256).hexdigest()


def verify(body: dict[str, Any], secret: bytes | str) -> bool:
    return hmac.compare_digest(sign(body, secret), str(body.get("sign", "")))


def signed_body(payload: dict[str, Any], secret: bytes | str, timestamp: int) -> dict[str, Any]:
    """The POSTed JSON: the outbox payload (with its stable event_id), a fresh timestamp, and sign."""
    body = dict(payload, timestamp=timestamp)
    body["sign"] = sign(body, secret)
    return body


def delay_after(attempts: int) -> float | None:
    """Seconds until the next attempt after `attempts` failed ones; None once the schedule is spent.

    ESIMOTA_CALLBACK_DELAY_SCALE shrinks the schedule (tests); production keeps the 24 h of DESIGN §6.
    """
    if attempts > len(SCHEDULE_S):
        return None
    scale = float(os.environ.get("ESIMOTA_CALLBACK_DELAY_SCALE", "1") or 1)
    return SCHEDULE_S[attempts - 1] * scale


async def record_results(db: Any, results: list[tuple[Any, int | None, bool, str]]) -> list[str]:
    """The attempts of one dispatch round, (row, http_status, ok, detail) each, in one transaction:
    every attempt a row, the delivered ones marked together, the others rescheduled or exhausted."""
    if not results:
        return []
    ordered = sorted(results, key=lambda r: r[0]["id"])  # one lock order for concurrent dispatchers
    async with connection(db) as conn, conn.transaction():
        await outbox.record_attempts(conn, [r[0]["id"] for r in ordered], [r[1] for r in ordered],
                                     ["delivered" if r[2] else "failed" for r in ordered],
                                     [r[3][:500] for r in ordered])
        delivered = [r[0]["id"] for r in ordered if r[2]]
        if delivered:
            await outbox.delivered_all(conn, delivered)
        outcomes = {r[0]["id"]: "delivered" for r in ordered if r[2]}
        for row, _, ok, detail in ordered:
            if not ok:
                outcomes[row["id"]] = await _failed(conn, row, detail)
    return [outcomes[r[0]["id"]] for r in results]


async def record_result(db: Any, row: Any, http_status: int | None, ok: bool, detail: str) -> str:
    """One attempt recorded; the callback delivered, rescheduled or exhausted (→ interface exception)."""
    async with connection(db) as conn, conn.transaction():
        await outbox.record_attempt(conn, row["id"], http_status, "delivered" if ok else "failed", detail[:500])
        if ok:
            await outbox.delivered(conn, row["id"])
            return "delivered"
        return await _failed(conn, row, detail)


async def _failed(conn: Any, row: Any, detail: str) -> str:
    """A failed attempt: the next one scheduled, or the callback exhausted (→ interface exception)."""
    delay = delay_after(row["attempts"] + 1)
    if delay is not None:
        await outbox.retry(conn, row["id"], detail[:500], delay)
        return "retry"
    await outbox.exhausted(conn, row["id"], detail[:500])
    # §8.2.3 table 5: a callback that cannot be delivered is an interface exception (1 h to handle)
    await task_store.open_exception(conn, "interface", "general", "CALLBACK_FAILED", dt.timedelta(hours=1),
                                    chip_id=await outbox.chip_of_task(conn, row["task_id"]),
                                    task_id=row["task_id"], detail=f"event {row['event_id']}: {detail[:200]}")
    return "exhausted"


async def repush(db: Any, event_id: str) -> dict:
    """Admin re-push (DESIGN §6): the same event_id, a fresh schedule, delivered at least once more.
    Returns the callback as the re-push left it (read in the same transaction: the dispatcher, woken
    at its commit, may already be sending it by the time the caller looks again)."""
    async with connection(db) as conn, conn.transaction():
        if await outbox.repush(conn, event_id) is None:
            raise NotFound("unknown event_id", reason="EVENT_NOT_FOUND")
        return (await _listed(conn, None, event_id))[0]


async def list_callbacks(db: Any, *, task_id: str | None = None, event_id: str | None = None) -> list[dict]:
    """Callbacks of a task or one event, each with every attempt (R27)."""
    async with connection(db) as conn:
        return await _listed(conn, task_id, event_id)


async def _listed(conn: Any, task_id: str | None, event_id: str | None) -> list[dict]:
    found, attempts = await outbox.listed(conn, task_id or None, event_id or None)
    rows = [dict(r) for r in found]
    for r in rows:
        r["history"] = [dict(a) for a in attempts if a["outbox_id"] == r["id"]]
    return rows


def payload_of(row: Any) -> dict:
    value = row["payload"]
    return json.loads(value) if isinstance(value, str) else dict(value)
