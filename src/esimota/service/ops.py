"""Exception detectors and handling of §8 (R22–R24): open with the catalogue, escalate, resolve, close with a report."""

from __future__ import annotations

import datetime as dt
import os
from dataclasses import dataclass, field
from typing import Any

from ..codec import bcp
from ..domain import exceptions as catalogue
from ..errors import InvalidArgument, NotFound, PermissionDenied
from ..store import audit
from ..store import ops as ops_store
from ..store import tasks as task_store
from .common import connection

# Burst thresholds over a sliding window of the API call log (R27); tunable, never secret.
WINDOW = dt.timedelta(minutes=int(os.environ.get("ESIMOTA_BURST_WINDOW_MIN", "5") or 5))
TOKEN_BURST = int(os.environ.get("ESIMOTA_TOKEN_BURST", "20") or 20)
WHITELIST_BURST = int(os.environ.get("ESIMOTA_WHITELIST_BURST", "5") or 5)
ERROR_BURST = int(os.environ.get("ESIMOTA_ERROR_BURST", "10") or 10)
ERROR_BURST_SEVERE = 10 * ERROR_BURST
CALLBACK_FAILED_AFTER = 3  # failed attempts before 回调信息接收失败 is opened (the retries go on)
TOKEN_REASONS = ["TOKEN_INVALID", "TOKEN_EXPIRED", "TOKEN_REVOKED", "TOKEN_REQUIRED", "BAD_CREDENTIALS"]
APPLY_ROUTE = "%ApplyWrite"
STUCK_GENERAL = dt.timedelta(minutes=30)   # DESIGN §3, table 4 row 1
STUCK_SEVERE = dt.timedelta(hours=1)
# BCP/1 CLOSE reasons (DESIGN §5.1) that are terminal exceptions (table 6)
CLOSE_KINDS = {bcp.CLOSE_NO_TRAFFIC: "NO_TEST_FLOW", bcp.CLOSE_PROTOCOL: "CHANNEL_PROTOCOL_ERROR",
               bcp.CLOSE_BAD_MAC: "CHANNEL_AUTH_FAILED", bcp.CLOSE_REPLAYED: "CHANNEL_AUTH_FAILED"}


@dataclass
class ScanResult:
    """What one pass of the detectors did, by kind."""

    opened: dict = field(default_factory=dict)
    escalated: int = 0
    resolved: int = 0

    def count(self, kind: str, n: int = 1) -> None:
        self.opened[kind] = self.opened.get(kind, 0) + n


async def raise_exception(conn: Any, kind: str, *, subject: str | None = None, chip_id: int | None = None,
                          task_id: int | None = None, client_id: int | None = None,
                          detail: str | None = None) -> bool:
    """Open an exception of the catalogue (tables 3–6) through store/tasks.open_exception.

    Chip-less kinds carry a subject (`NO_RESOURCE:44`); 即时处理 kinds are closed as they open.
    This is the call other modules should use instead of spelling class/severity/deadline out.
    Returns False when the same exception is open already (nothing new).
    """
    spec = catalogue.lookup(kind)
    stored = catalogue.with_subject(spec.kind, subject) if chip_id is None else spec.kind
    if await ops_store.is_open(conn, stored, chip_id):
        return False
    await task_store.open_exception(conn, spec.cls, spec.severity, stored, spec.deadline, chip_id=chip_id,
                                    task_id=task_id, client_id=client_id, detail=detail and detail[:500])
    if spec.auto_close:
        await ops_store.close_auto(conn, stored, "即时处理: the reason was returned to the caller")
    return True


async def reconcile(conn: Any, res: ScanResult | None = None) -> int:
    """Give open rows written by other modules the catalogue's class, severity and deadline (R23)."""
    rows = list(catalogue.CATALOGUE.values())
    return await ops_store.reconcile(conn, [r.kind for r in rows], [r.cls for r in rows],
                                     [r.severity for r in rows], [r.deadline for r in rows])


async def detect_stuck(conn: Any, res: ScanResult) -> None:
    """Table 4 row 1: a card in 写卡中 without progress — general at 30 min, escalated to severe at 1 h."""
    for row in await ops_store.stuck(conn, STUCK_GENERAL):
        since = f"no progress since {row['since']:%Y-%m-%d %H:%M:%S%z}"
        if await raise_exception(conn, "STUCK_WRITING", chip_id=row["chip_id"], task_id=row["task_id"],
                                 client_id=row["client_id"], detail=since):
            res.count("STUCK_WRITING")
    res.escalated += len(await ops_store.escalate_stuck(conn, STUCK_SEVERE,
                                                   catalogue.lookup("STUCK_WRITING_SEVERE").deadline))
    ids = [r["id"] for r in await ops_store.unstuck(conn, STUCK_GENERAL)]
    res.resolved += await _close_general(conn, ids, ["STUCK_WRITING"], "the card left 写卡中 or progressed")


async def _close_general(conn: Any, ids: list[int], kinds: list[str], why: str) -> int:
    """Close general exceptions whose cause is gone; severe ones wait for a report (§8.3.1)."""
    if not ids:
        return 0
    return await ops_store.close_general(conn, ids, kinds, why)


async def detect_no_resource(conn: Any, res: ScanResult) -> None:
    """Table 3 row 3: several provinces without numbers at once is severe (4 h); replenished ones close."""
    open_rows = await ops_store.no_resource_open(conn)
    still = []
    for row in open_rows:
        province = row["kind"].split(":", 1)[1]
        if await ops_store.available_in(conn, province):
            res.resolved += await _close_general(conn, [row["id"]], [row["kind"]], "numbers replenished")
        else:
            still.append(province)
    if len(still) >= 2:
        if await raise_exception(conn, "NO_RESOURCE_MULTI", detail="no numbers in provinces " + ",".join(sorted(still))):
            res.count("NO_RESOURCE_MULTI")


async def detect_expired(conn: Any, res: ScanResult, today: dt.date) -> None:
    """Table 4 last row: a card waiting for power-on whose temporary number has expired cannot write."""
    for row in await ops_store.expired_waiting(conn, today):
        if await raise_exception(conn, "TEMP_NUMBER_EXPIRED", chip_id=row["chip_id"], task_id=row["task_id"],
                                 client_id=row["client_id"], detail=f"temporary number expired on {row['temp_expires_on']}"):
            res.count("TEMP_NUMBER_EXPIRED")


async def detect_callbacks(conn: Any, res: ScanResult) -> None:
    """Table 5 row 3: a callback failing again and again (≤ 1 h) — opened before the 24 h of retries end."""
    for row in await ops_store.callbacks_failing(conn, CALLBACK_FAILED_AFTER):
        if await raise_exception(conn, "CALLBACK_FAILED", chip_id=row["chip_id"], task_id=row["task_id"],
                                 client_id=row["client_id"],
                                 detail=f"event {row['event_id']}: {row['attempts']} failed attempts: {row['last_error']}"):
            res.count("CALLBACK_FAILED")
    ids = [r["id"] for r in await ops_store.callbacks_recovered(conn)]
    res.resolved += await _close_general(conn, ids, ["CALLBACK_FAILED"], "callback delivered")


async def _bursts(conn: Any, res: ScanResult, kind: str, codes: list[int], reasons: list[str] | None,
                  threshold: int, route: str | None = None) -> None:
    """One burst kind over the call-log window: one exception per client (or address) at a time."""
    for row in await ops_store.api_failures(conn, WINDOW, codes, reasons, route, threshold):
        stored = catalogue.with_subject(kind, row["subject"])
        if catalogue.lookup(kind).auto_close and await ops_store.opened_since(conn, stored, WINDOW):
            continue
        if await raise_exception(conn, kind, subject=row["subject"],
                                 detail=f"{row['n']} failed calls in {WINDOW} ({row['reasons']})"):
            res.count(kind)


async def detect_interface(conn: Any, res: ScanResult) -> None:
    """Tables 3 and 5 as the call log shows them: refused applies, token and whitelist bursts, server errors."""
    await _bursts(conn, res, "APPLY_INVALID", [400], None, 1, APPLY_ROUTE)
    await _bursts(conn, res, "ALREADY_WRITTEN", [403], ["ALREADY_WRITTEN"], 1, APPLY_ROUTE)
    await _bursts(conn, res, "TOKEN_FAILURES", [401], TOKEN_REASONS, TOKEN_BURST)
    await _bursts(conn, res, "NOT_WHITELISTED", [403], ["IP_NOT_WHITELISTED"], WHITELIST_BURST)
    await _bursts(conn, res, "INTERFACE_ERRORS", [500, 502, 503, 504], None, ERROR_BURST)
    for severe in await ops_store.api_failures(conn, WINDOW, [500, 502, 503, 504], None, None,
                                            ERROR_BURST_SEVERE):
        if await raise_exception(conn, "INTERFACE_ERRORS_SEVERE", subject=severe["subject"],
                                 detail=f"{severe['n']} server errors in {WINDOW}"):
            res.count("INTERFACE_ERRORS_SEVERE")
    for prefix, codes in (("NOT_WHITELISTED", [403]), ("INTERFACE_ERRORS", [500, 502, 503, 504])):
        ids = [r["id"] for r in await ops_store.quiet_subjects(conn, prefix, WINDOW, codes)]
        kinds = await ops_store.kinds_of(conn, ids)
        res.resolved += await _close_general(conn, ids, kinds, "no failures for a whole window")


async def detect_channel(conn: Any, res: ScanResult) -> None:
    """Table 6 from the BIP attempts (DESIGN §5.4): no test traffic, protocol errors, MAC/counter failures."""
    last = await ops_store.cursor(conn, "bip_attempts") or 0
    rows = await ops_store.bip_attempts(conn, last, list(CLOSE_KINDS))
    for row in rows:
        kind = CLOSE_KINDS[row["close_reason"]]
        subject = None if row["chip_id"] else "unknown-chip"
        if await raise_exception(conn, kind, chip_id=row["chip_id"], subject=subject, task_id=row["task_id"],
                                 client_id=row["client_id"], detail=f"{row['eid'] or '?'}: {row['detail']}"):
            res.count(kind)
    if rows:
        await ops_store.set_cursor(conn, "bip_attempts", rows[-1]["id"])


async def scan(db: Any, *, today: dt.date | None = None) -> ScanResult:
    """Every detector once, each in its own transaction (one failing does not stop the others)."""
    from .common import now
    res = ScanResult()
    today = today or now().date()
    steps = (reconcile, detect_stuck, detect_no_resource, detect_callbacks, detect_interface, detect_channel)
    async with connection(db) as conn:
        for step in steps:
            async with conn.transaction():
                await step(conn, res)
        async with conn.transaction():
            await detect_expired(conn, res, today)
    return res


async def mark_reported(db: Any, exception_id: int, actor: str) -> None:
    """§8.3.1: the operator reported a severe exception to the 规范管理部门 (the webhook does it too)."""
    async with connection(db) as conn, conn.transaction():
        if await ops_store.lock_exception(conn, exception_id) is None:
            raise NotFound(f"no exception {exception_id}", reason="EXCEPTION_NOT_FOUND")
        await ops_store.mark_reported(conn, exception_id)
        await audit.record(conn, actor, "exception.reported", str(exception_id))


async def close(db: Any, exception_id: int, actor: str, resolution: str, report: str | None = None) -> Any:
    """Close an exception; a severe one needs its handling report (§8.3.1: process, root cause, measures)."""
    if not resolution or not resolution.strip():
        raise InvalidArgument("a resolution is required", reason="RESOLUTION_REQUIRED")
    async with connection(db) as conn, conn.transaction():
        row = await ops_store.lock_exception(conn, exception_id)
        if row is None:
            raise NotFound(f"no exception {exception_id}", reason="EXCEPTION_NOT_FOUND")
        if row["closed_at"] is not None:
            raise PermissionDenied("the exception is already closed", reason="EXCEPTION_CLOSED")
        if row["severity"] == "severe" and not (report and report.strip()):
            raise InvalidArgument("a severe exception is closed only with its report (§8.3.1)",
                                  reason="REPORT_REQUIRED")
        await ops_store.close_one(conn, exception_id, resolution.strip(), report, actor)
        await audit.record(conn, actor, "exception.close", str(exception_id), kind=row["kind"],
                           severity=row["severity"])
        return await ops_store.exception(conn, exception_id)
