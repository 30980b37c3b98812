"""Usage (§7.2.3.3) and location (§7.2.3.5, R21) feeds: ingestion, CSV import and the month's totals."""

from __future__ import annotations

import csv
import datetime as dt
import io
from dataclasses import dataclass
from typing import Any, Iterable

from ..domain import identifiers
from ..errors import DomainError, ImportRejected, InvalidArgument, NotFound
from ..store import usage as usage_store
from ..store.clients import Client
from . import monitoring, queries
from .common import CST, connection

@dataclass(frozen=True)
class Usage:
    """§7.2.3.3 response fields (MB)."""

    msisdn: str
    iccid: str
    total_flow: float
    used_flow: float
    remaining_flow: float
    update_time: dt.datetime | None


def month_of(at: dt.datetime) -> dt.date:
    """The billing month a record counts for, in China Standard Time."""
    return at.astimezone(CST).date().replace(day=1)


def parse_time(text: str, name: str) -> dt.datetime:
    """ISO 8601; a time without an offset is taken as +08:00."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise InvalidArgument(f"{name} must be an ISO 8601 time", reason="TIME_INVALID") from None
    return value if value.tzinfo else value.replace(tzinfo=CST)


async def _number_id(conn: Any, msisdn: str, iccid: str) -> int:
    if msisdn:
        msisdn = identifiers.validate_msisdn(msisdn)
    elif iccid:
        iccid = identifiers.validate_iccid(iccid)
    else:
        raise InvalidArgument("msisdn or iccid is required", reason="NUMBER_REQUIRED")
    number_id = await usage_store.number_id(conn, msisdn or None, iccid or None)
    if number_id is None:
        raise NotFound("unknown number", reason="NUMBER_NOT_FOUND")
    return number_id


async def ingest_usage(db: Any, records: Iterable[tuple]) -> tuple[int, list]:
    """(record_id, msisdn, iccid, used_mb, recorded_at[, imei]) rows → (stored, [(index, error)]); duplicates
    add nothing. An IMEI other than the chip's bound one raises card–device separation (R32)."""
    rows, rejected, devices = [], [], []
    async with connection(db) as conn:
        for i, (record_id, msisdn, iccid, used_mb, recorded_at, *rest) in enumerate(records):
            # every problem of the record is told, one (index, error) each (DESIGN §7: every problem of every row)
            problems: list[DomainError] = []
            if not record_id or len(record_id) > 128:
                problems.append(InvalidArgument("record_id is required (at most 128 characters)",
                                                reason="RECORD_INVALID"))
            if not used_mb >= 0:  # NaN (not a number) included
                problems.append(InvalidArgument("used_mb must be a non-negative number of MB", reason="RECORD_INVALID"))
            at = _checked(problems, parse_time, recorded_at, "recorded_at")
            imei = _checked(problems, _imei, rest[0] if rest else "")
            try:
                number_id = await _number_id(conn, msisdn, iccid)
            except DomainError as exc:
                problems.append(exc)
            if problems:
                rejected += [(i, exc) for exc in problems]
                continue
            rows.append((record_id, number_id, month_of(at), used_mb, at))
            if imei:
                devices.append((number_id, imei, "usage"))
        if not rows:
            return 0, rejected
        async with conn.transaction():
            # only the current month's figure is mirrored (quota alerts read it, R32): a late record for an
            # earlier month is kept for that month and never overwrites this month's total
            stored = await usage_store.add_usage(conn, rows, month_of(dt.datetime.now(CST)))
    await device_checks(db, devices)
    return len(stored), rejected


def _checked(problems: list, check, *args):
    """check(*args), or None with its DomainError added to `problems`."""
    try:
        return check(*args)
    except DomainError as exc:
        problems.append(exc)
        return None


async def ingest_locations(db: Any, records: Iterable[tuple]) -> tuple[int, list]:
    """(msisdn, iccid, city, location_time[, imei]) rows: a location older than the stored one changes nothing
    (R21); an IMEI other than the chip's bound one raises card–device separation (R32)."""
    stored, rejected, devices = 0, [], []
    async with connection(db) as conn:
        for i, (msisdn, iccid, city, location_time, *rest) in enumerate(records):
            try:
                if not city.strip() or len(city) > 64:
                    raise InvalidArgument("city is required (at most 64 characters)", reason="CITY_INVALID")
                at = parse_time(location_time, "location_time")
                number_id = await _number_id(conn, msisdn, iccid)
                imei = _imei(rest[0] if rest else "")
                stored += await usage_store.set_location(conn, number_id, city.strip(), at)
                if imei:
                    devices.append((number_id, imei, "location"))
            except DomainError as exc:
                rejected.append((i, exc))
    await device_checks(db, devices)
    return stored, rejected


def _imei(value: str) -> str:
    """The optional IMEI of a feed record (15 digits, R32); empty when the feed carries none."""
    value = (value or "").strip()
    return identifiers.validate_imei(value) if value else ""


async def device_checks(db: Any, devices: list[tuple[int, str, str]]) -> None:
    """R32 card–device separation for the (number, IMEI, feed) the records carried."""
    for number_id, imei, source in devices:
        await monitoring.check_number_device(db, number_id, imei, source=source)


async def month_usage(db: Any, client: Client, *, msisdn: str | None = None, iccid: str | None = None,
                      at: dt.datetime | None = None) -> Usage:
    """§7.2.3.3: this month's plan, use and rest of one of the caller's numbers."""
    info = await queries.get_number(db, client, msisdn=msisdn, iccid=iccid)
    row = await usage_store.month_total(db, info.msisdn, month_of(at or dt.datetime.now(CST)))
    used = float(row["used"])
    return Usage(info.msisdn, info.iccid, info.total_flow, used, max(0.0, round(info.total_flow - used, 3)),
                 row["last"])


def read_usage_csv(text: str, source: str = "usage.csv") -> list[tuple[str, str, str, float, str]]:
    """Columns record_id,msisdn,iccid,used_mb,recorded_at[,imei]; any bad row rejects the file (DESIGN §7)."""
    reader = csv.DictReader(io.StringIO(text))
    missing = {"record_id", "used_mb", "recorded_at"} - set(reader.fieldnames or [])
    if missing:
        raise ImportRejected([(1, "HEADER_INVALID", f"missing columns: {', '.join(sorted(missing))}")], source=source)
    rows, problems = [], []
    for line, rec in enumerate(reader, start=2):
        try:
            used = float(rec.get("used_mb") or "")
        except ValueError:
            used = float("nan")  # told by ingest_usage with the row's other problems
        rows.append(((rec.get("record_id") or "").strip(), (rec.get("msisdn") or "").strip(),
                     (rec.get("iccid") or "").strip(), used, rec.get("recorded_at") or "",
                     (rec.get("imei") or "").strip()))  # the optional imei column (R32)
    if problems:
        raise ImportRejected(problems, source=source)
    return rows


async def import_usage_csv(db: Any, text: str, source: str = "usage.csv") -> int:
    """`usage import FILE.csv`: all rows or nothing; importing the same file again adds nothing."""
    rows = read_usage_csv(text, source)
    async with connection(db) as conn, conn.transaction():
        stored, rejected = await ingest_usage(conn, rows)
        if rejected:
            raise ImportRejected([(i + 2, e.reason, e.message) for i, e in rejected], source=source)
    return stored
