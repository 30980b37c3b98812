"""Reports of §8.3.2 and §10.3 (R24, R29, R33, R34): exception review, quality indicators, service report, subscribers."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from ..domain import exceptions as catalogue
from ..errors import InvalidArgument
from ..store import reports as report_store
from .common import CST, connection

SECURITY_EXCEPTIONS = ("CHANNEL_AUTH_FAILED", "TOKEN_FAILURES", "NOT_WHITELISTED")
SECURITY_ALERTS = ("CARD_DEVICE_SEPARATION", "BLACKLISTED", "HIGH_RISK_AREA", "REGION_VIOLATION")
SUBSCRIBER_COLUMNS = ("msisdn", "iccid", "eid", "imei", "province_code", "services", "client_id", "client_name",
                      "project", "application_field", "chip_model", "opened_at")


def month_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """`YYYY-MM` → [first day 00:00, next month's first day 00:00) in China Standard Time."""
    m = re.fullmatch(r"(\d{4})-(\d{2})", text or "")
    if not m or not 1 <= int(m.group(2)) <= 12:
        raise InvalidArgument("month must be YYYY-MM", reason="MONTH_INVALID")
    start = dt.datetime(int(m.group(1)), int(m.group(2)), 1, tzinfo=CST)
    return start, (start + dt.timedelta(days=32)).replace(day=1)


def half_range(text: str) -> tuple[dt.datetime, dt.datetime]:
    """`YYYY-H1` / `YYYY-H2` → the half-year in China Standard Time (R33)."""
    m = re.fullmatch(r"(\d{4})-H([12])", text or "")
    if not m:
        raise InvalidArgument("half-year must be YYYY-H1 or YYYY-H2", reason="HALF_INVALID")
    year, half = int(m.group(1)), int(m.group(2))
    start = dt.datetime(year, 1 if half == 1 else 7, 1, tzinfo=CST)
    return start, dt.datetime(year + 1, 1, 1, tzinfo=CST) if half == 2 else dt.datetime(year, 7, 1, tzinfo=CST)


def day(text: str, name: str) -> dt.datetime:
    """An ISO date (CST midnight) or date-time for --from / --to."""
    try:
        value = dt.datetime.fromisoformat(text)
    except (TypeError, ValueError):
        raise InvalidArgument(f"{name} must be an ISO date or date-time", reason="DATE_INVALID") from None
    return value if value.tzinfo else value.replace(tzinfo=CST)


def _ratio(a: int, b: int) -> float | None:
    return round(a / b, 4) if b else None


def _summarise(rows: list) -> dict:
    """Per class (§8.1): count, share handled in time, severe reporting within 1 h / report within 24 h."""
    out = {c: {"class_zh": catalogue.CLASS_ZH[c], "count": 0, "in_time": 0, "due": 0, "open": 0, "severe": 0,
               "severe_reported_1h": 0, "severe_report_24h": 0} for c in catalogue.CLASSES}
    for r in rows:
        c = out[r["class"]]
        c["count"] += r["n"]
        c["in_time"] += r["in_time"]
        c["due"] += r["due"]
        c["open"] += r["still_open"]
        if r["severity"] == "severe":
            c["severe"] += r["n"]
            c["severe_reported_1h"] += r["reported_1h"]
            c["severe_report_24h"] += r["report_24h"]
    for c in out.values():
        c["handled_in_time"] = _ratio(c["in_time"], c["due"])
    return out


async def exception_review(db: Any, start: dt.datetime, end: dt.datetime, *, at: dt.datetime | None = None) -> dict:
    """§8.3.2 / R24: rate of each class (per 1,000 applies) and the share handled in time; frequent kinds."""
    at = min(at or dt.datetime.now(CST), end)
    async with connection(db) as conn:
        rows = await report_store.exception_stats(conn, start, end, at)
        applies = await report_store.applies(conn, start, end)
    classes = _summarise(rows)
    total = sum(c["count"] for c in classes.values())
    for c in classes.values():
        c["per_1000_applies"] = round(1000 * c["count"] / applies, 3) if applies else None
        c["share_of_exceptions"] = _ratio(c["count"], total)
    kinds: dict[str, int] = {}
    for r in rows:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + r["n"]
    frequent = sorted(kinds.items(), key=lambda kv: -kv[1])[:5]
    return {"from": start.isoformat(), "to": end.isoformat(), "applies": applies, "exceptions": total,
            "handled_in_time": _ratio(sum(c["in_time"] for c in classes.values()),
                                      sum(c["due"] for c in classes.values())),
            "classes": classes, "frequent": [{"kind": k, "count": n, "phenomenon": _zh(k)} for k, n in frequent]}


def _zh(kind: str) -> str:
    try:
        return catalogue.lookup(kind).phenomenon
    except InvalidArgument:
        return ""


async def quality(db: Any, start: dt.datetime, end: dt.datetime) -> dict:
    """§10.3.1 / R29: write success rate, interface call success rate, exceptions handled in time."""
    if end <= start:
        raise InvalidArgument("--to must be after --from", reason="PERIOD_INVALID")
    async with connection(db) as conn:
        writes = await report_store.writes(conn, start, end)
        calls = await report_store.calls(conn, start, end)
    review = await exception_review(db, start, end)
    return {"from": start.isoformat(), "to": end.isoformat(),
            "writes": {"succeeded": writes["ok"], "finished": writes["total"],
                       "write_success_rate": _ratio(writes["ok"], writes["total"])},
            "interface": {**dict(calls), "call_success_rate": _ratio(calls["ok"], calls["total"]),
                          "availability": None if not calls["total"] else
                          round(1 - calls["server_errors"] / calls["total"], 4)},
            "exceptions": {"count": review["exceptions"], "handled_in_time": review["handled_in_time"]}}


async def service_report(db: Any, half: str) -> dict:
    """R33: user scale by province and application field, new writes, security, open problems."""
    start, end = half_range(half)
    async with connection(db) as conn:
        provinces = [dict(r) for r in await report_store.by_province(conn, end)]
        fields = [dict(r) for r in await report_store.by_field(conn, end)]
        writes = [dict(r) for r in await report_store.new_writes(conn, start, end)]
        incidents = [dict(r) for r in await report_store.incidents(conn, start, end, list(SECURITY_EXCEPTIONS),
                                                                   list(SECURITY_ALERTS))]
        problems = [dict(r) for r in await report_store.open_problems(conn, end)]
    return {"period": half, "from": start.isoformat(), "to": end.isoformat(),
            "users": {"total": sum(p["users"] for p in provinces), "by_province": provinces,
                      "by_application_field": fields},
            "new_writes": {"total": sum(w["writes"] for w in writes), "by_month": writes},
            "security": {"incidents": incidents, "total": sum(i["n"] for i in incidents)},
            "exceptions": await exception_review(db, start, end),
            "quality": await quality(db, start, end),
            "open_problems": problems}


async def subscribers(db: Any, month: str) -> tuple[dt.datetime, list]:
    """R34: every subscriber as of the month's last day 24:00 (CST) — no IMSI, Ki or OPc."""
    _, cutoff = month_range(month)
    async with connection(db) as conn:
        return cutoff, await report_store.subscribers(conn, cutoff)
