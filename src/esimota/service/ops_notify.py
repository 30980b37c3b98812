"""The operator's notification outbox (§8.3.1, R24): severe exceptions and alerts posted to a webhook within 1 h."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import time
from typing import Any

from ..store import alerts as alert_store
from ..store import ops as ops_store
from .common import connection

logger = logging.getLogger("esimota.notify")
PER_CLAIM = 50  # notifications claimed and posted together
CLAIM_S = 600.0  # a claim (50 posts, 10 s timeout each) is posted before it is due again


def webhook() -> tuple[str | None, bytes | None]:
    """ESIMOTA_NOTIFY_URL and the optional ESIMOTA_NOTIFY_SECRET that signs each post (never logged)."""
    secret = os.environ.get("ESIMOTA_NOTIFY_SECRET") or None
    return os.environ.get("ESIMOTA_NOTIFY_URL") or None, secret.encode() if secret else None


def signed(payload: dict, secret: bytes | None, at: int) -> tuple[bytes, dict]:
    """The body and headers: X-Esimota-Signature = hex HMAC-SHA256(secret, timestamp + '.' + body)."""
    body = json.dumps(dict(payload, timestamp=at), ensure_ascii=False, sort_keys=True, default=str).encode()
    headers = {"Content-Type": "application/json", "X-Esimota-Timestamp": str(at)}
    if secret:
        headers["X-Esimota-Signature"] = hmac.new(secret, str(at).encode() + b"." + body, hashlib.sha256).hexdigest()
    return body, headers


async def queue(db: Any) -> int:
    """Queue every open severe exception not yet reported, and the new alerts (idempotent)."""
    async with connection(db) as conn, conn.transaction():
        severe = await ops_store.queue_severe(conn)
    return severe + await queue_alerts(db)


async def queue_alerts(db: Any) -> int:
    """Every alert not notified yet, general or severe (R12 expiry warnings, R32), in one notification per
    call — the monitoring job calls it after each detector run, so a run is one post, not one per chip."""
    queued = 0
    async with connection(db) as conn:
        while True:
            async with conn.transaction():
                done = await alert_store.queue_digest(conn, alert_store.DIGEST_MAX)
            queued += done
            if not done:
                return queued


async def _post(session: Any, url: str, body: bytes, headers: dict) -> str | None:
    """None when the receiver answered 2xx, else why not (no secret in it)."""
    try:
        async with session.post(url, data=body, headers=headers) as resp:
            return None if 200 <= resp.status < 300 else f"HTTP {resp.status}"
    except Exception as exc:  # connection refused, timeout, bad URL: retried with growing delays
        return type(exc).__name__


async def _record(db: Any, row: Any, error: str | None) -> None:
    """One post's outcome in one short transaction: delivered (and the exception marked reported), or retried."""
    async with connection(db) as conn, conn.transaction():
        if error is None:
            await ops_store.notified(conn, row["id"])
            if row["source"] == "exception":
                await ops_store.mark_reported(conn, row["ref_id"])
        else:
            await ops_store.notify_retry(conn, row["id"], error)


async def deliver(db: Any, session: Any) -> int:
    """Post due notifications; a delivered exception notification marks the exception reported.

    No post is made inside a transaction or under a row lock: the rows are claimed by one statement
    (moved CLAIM_S ahead), posted, and each outcome recorded afterwards."""
    url, secret = webhook()
    if url is None:
        return 0
    async with connection(db) as conn:
        rows = await ops_store.claim_notifications(conn, PER_CLAIM, CLAIM_S)
    sent = 0
    for row in rows:
        body, headers = signed(json.loads(row["payload"]), secret, int(time.time()))
        error = await _post(session, url, body, headers)
        await _record(db, row, error)
        if error is None:
            sent += 1
        else:
            logger.warning("notification not delivered", extra={"notification": row["id"], "error": error})
    return sent
