"""Operator imports of DESIGN §7: all-or-nothing, every bad row listed, re-imports add nothing.

Rows are validated and encrypted in Python, then COPYed in chunks into a temporary staging table
inside one transaction; cross-row and cross-database checks run in SQL on the staging table; any
problem rolls the whole transaction back (ImportRejected lists line, reason, detail).
"""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import decimal
import os
import re
from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Iterator

from ..domain import identifiers, lifetimes, provinces, services
from ..errors import DomainError, ImportRejected
from ..store import audit, chips as chip_store, crypto
from ..store import numbers as number_store
from ..store import staging
from .common import connection

NUMBER_COLUMNS = ["msisdn", "iccid", "imsi", "ki", "opc", "province_code", "services", "monthly_quota_mb"]
CHIP_COLUMNS = ["eid", "imei", "chip_model", "temp_iccid", "temp_msisdn", "network_type", "open_time",
                "test_flow_mb"]
CHUNK = 20000
# A well-formed `numbers import` row without quotes; anything else takes the field-by-field path.
_FAST_NUMBER = re.compile(r"^([0-9]{13}),(89[0-9A-Fa-f]{17}[0-9]),([0-9]{15}),([0-9A-Fa-f]{32}),"
                          r"([0-9A-Fa-f]{32}),([0-9]{2}),([a-z_+]+),([0-9]+(?:\.[0-9]+)?)\r?\n?$")
MB = 1024 * 1024
Progress = Callable[[int, int], None]

class RowProblems(DomainError):
    """Every problem of one row: (reason, detail) for each field that is wrong, not only the first."""

    reason = "ROW_INVALID"

    def __init__(self, problems: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{r}: {d}" for r, d in problems))
        self.problems = problems


class _Fields:
    """Validates field after field, keeping every DomainError; `done()` raises them all at once."""

    def __init__(self) -> None:
        self.problems: list[tuple[str, str]] = []

    def check(self, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except DomainError as exc:  # messages name the field, never its value when secret
            self.problems.append((exc.reason, exc.message))
            return None

    def done(self) -> None:
        if self.problems:
            raise RowProblems(self.problems)


def _iso_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise DomainError("open_time must be an ISO date (YYYY-MM-DD)", reason="OPEN_TIME_INVALID") from None


def _model(text: str) -> str:
    if not text:
        raise DomainError("chip_model is empty", reason="CHIP_MODEL_MISSING")
    return text


@dataclass(frozen=True)
class ImportResult:
    rows: int
    imported: int
    already_present: int


def _rows(path: str, columns: list[str], progress: Progress | None) -> Iterator[tuple[int, str]]:
    """(line number, raw line) of every data row; the header must be exactly the columns of DESIGN §7."""
    total, done = os.path.getsize(path), 0
    with open(path, newline="", encoding="utf-8-sig") as f:
        header = next(csv.reader([f.readline()]), [])
        if [h.strip() for h in header] != columns:
            raise ImportRejected([(1, "BAD_HEADER", "expected columns: " + ",".join(columns))], source=path)
        for number, line in enumerate(f, start=2):
            done += len(line)
            if progress is not None and number % CHUNK == 0:
                progress(done, total)
            if line.strip():
                yield number, line
    if progress is not None:
        progress(total, total)


def _fields(line: str) -> list[str]:
    return next(csv.reader([line]), [])


def _quota(text: str) -> decimal.Decimal:
    try:
        value = decimal.Decimal(text)
    except decimal.InvalidOperation:
        value = decimal.Decimal(-1)
    if not value.is_finite() or value < 0 or value >= 10 ** 9:
        raise DomainError("must be a non-negative number of MB", reason="QUOTA_INVALID")
    return value


class _NumberParser:
    """One row of `numbers import` → a staging record (secrets encrypted at once, never kept)."""

    def __init__(self, ring: crypto.KeyRing) -> None:
        self.ring = ring
        self.segments = identifiers.iot_segments()
        self.services: dict[str, list[str]] = {}
        self.imsis: set[int] = set()
        self.quotas: dict[str, decimal.Decimal] = {}

    def __call__(self, line: int, raw: str) -> tuple:
        m = _FAST_NUMBER.match(raw)
        if m is not None:  # the common, well-formed row: one regex, then the table look-ups
            msisdn, iccid, imsi, ki, opc, province, svc, quota = m.groups()
            svc_list, amount = self.services.get(svc), self.quotas.get(quota)
            if (svc_list is not None and amount is not None and msisdn.startswith(self.segments)
                    and province in provinces.PROVINCES and int(imsi) not in self.imsis):
                self.imsis.add(int(imsi))
                iccid = iccid.upper()
                imsi_enc, keys_enc = number_store.encrypt_secrets(self.ring, iccid, imsi, bytes.fromhex(ki),
                                                                  bytes.fromhex(opc))
                return (line, msisdn, iccid, imsi_enc, keys_enc, province, svc_list, amount,
                        number_store.imsi_tag(self.ring, imsi))
        return self._slow(line, _fields(raw))

    def _slow(self, line: int, f: list[str]) -> tuple:
        """Every rule, field by field, so that a bad row gets every precise reason (not only the first)."""
        if len(f) != len(NUMBER_COLUMNS):
            raise DomainError(f"{len(f)} fields, expected {len(NUMBER_COLUMNS)}", reason="BAD_FIELD_COUNT")
        f = [x.strip() for x in f]
        row = _Fields()
        msisdn = row.check(identifiers.validate_msisdn, f[0], self.segments)
        iccid = row.check(identifiers.validate_iccid, f[1])
        imsi = row.check(identifiers.validate_imsi, f[2])
        ki, opc = row.check(identifiers.parse_key16, f[3], "Ki"), row.check(identifiers.parse_key16, f[4], "OPc")
        province = row.check(provinces.validate_province, f[5])
        svc = self.services.get(f[6]) or row.check(lambda t: list(services.parse_services(t)), f[6])
        quota = row.check(_quota, f[7])
        if imsi is not None and int(imsi) in self.imsis:
            row.problems.append(("DUPLICATE_IMSI", "IMSI repeated in this file"))
        row.done()
        self.services[f[6]], self.quotas[f[7]] = svc, quota
        self.imsis.add(int(imsi))
        imsi_enc, keys_enc = number_store.encrypt_secrets(self.ring, iccid, imsi, ki, opc)
        return (line, msisdn, iccid, imsi_enc, keys_enc, province, svc, quota, number_store.imsi_tag(self.ring, imsi))


def _chip_row(line: int, raw: str, segments: tuple[str, ...]) -> tuple:
    """One row of `chips import` → a staging record."""
    f = _fields(raw)
    if len(f) != len(CHIP_COLUMNS):
        raise DomainError(f"{len(f)} fields, expected {len(CHIP_COLUMNS)}", reason="BAD_FIELD_COUNT")
    f = [x.strip() for x in f]
    row = _Fields()
    eid = row.check(identifiers.validate_eid, f[0])
    imei = row.check(identifiers.validate_imei, f[1]) if f[1] else ""
    model = row.check(_model, f[2])
    iccid = row.check(identifiers.validate_iccid, f[3])
    msisdn = row.check(identifiers.validate_msisdn, f[4], segments)
    network = row.check(lifetimes.validate_network_type, f[5])
    opened = row.check(_iso_date, f[6])
    flow = row.check(_quota, f[7])
    row.done()
    flow = int(flow * MB)
    return (line, eid, imei, model, iccid, msisdn, network, opened, lifetimes.expires_on(opened, network), flow)


def _parse_chunk(rows: Iterator[tuple[int, str]], parse: Callable[[int, str], tuple]) -> tuple[int, list, list]:
    """Up to CHUNK rows → (rows read, records, problems); runs in a worker thread."""
    records: list[tuple] = []
    problems: list[tuple[int, str, str]] = []
    count = 0
    for line, raw in rows:
        count += 1
        try:
            records.append(parse(line, raw))
        except RowProblems as exc:  # every problem of the row, each on its own
            problems.extend((line, reason, detail) for reason, detail in exc.problems)
        except DomainError as exc:  # messages name the field, never its value when secret
            problems.append((line, exc.reason, exc.message))
        if count >= CHUNK:
            break
    return count, records, problems


async def _stage(conn: Any, path: str, columns: list[str], parse: Callable[[int, str], tuple],
                 flush: Callable[[list[tuple]], Awaitable[int]], progress: Progress | None) -> tuple[int, int, list]:
    """Parse and validate chunk k+1 in a thread while chunk k is being written (the two cores of a
    small server both work); returns (rows read, rows flushed, problems found in Python)."""
    rows = _rows(path, columns, progress)
    count, flushed, problems = 0, 0, []
    writing: asyncio.Task | None = None
    while True:
        n, records, bad = await asyncio.to_thread(_parse_chunk, rows, parse)
        if writing is not None:
            flushed += await writing
        count, problems = count + n, problems + bad
        if not n:
            return count, flushed, problems
        writing = asyncio.ensure_future(flush(records)) if records else None


def _rejected(path: str, problems: list, db_problems: list) -> None:
    """Every problem of every bad row, by line; an in-file duplicate of a field is reported as such, not
    also as a conflict with a stored row (DUPLICATE_ICCID hides ICCID_EXISTS on the same line)."""
    found = sorted(set(problems + [(r["line"], r["reason"], r["detail"]) for r in db_problems]))
    duplicates = {(line, reason[len("DUPLICATE_"):]) for line, reason, _ in found if reason.startswith("DUPLICATE_")}
    kept = [p for p in found if not (p[1].endswith("_EXISTS") and (p[0], p[1][:-len("_EXISTS")]) in duplicates)]
    if kept:
        raise ImportRejected(kept, source=path)


async def import_numbers(db: Any, path: str, *, progress: Progress | None = None,
                         actor: str = "admin") -> ImportResult:
    """`esimota numbers import FILE.csv` (DESIGN §7, R30): all or nothing; the same file twice adds nothing."""
    async with connection(db) as conn:
        ring = await crypto.keyring(conn)
        async with conn.transaction():
            await number_store.tag_untagged(conn, ring)  # numbers stored before migration 0009
            await staging.create_number_stage(conn)
            count, inserted, problems = await _stage(conn, path, NUMBER_COLUMNS, _NumberParser(ring),
                                                     lambda records: staging.stage_and_insert_numbers(conn, records),
                                                     progress)
            _rejected(path, problems, await staging.number_problems(conn))
            staged = await staging.staged_provinces(conn)
            await number_store.replenished(conn, staged, "numbers imported")  # table 3: 无可用省份资源 closes
            await audit.record(conn, actor, "numbers.import", os.path.basename(path), rows=count, imported=inserted)
    return ImportResult(count, inserted, count - inserted)


async def import_chips(db: Any, path: str, batch: str, *, progress: Progress | None = None,
                       actor: str = "admin") -> ImportResult:
    """`esimota chips import FILE.csv --batch NAME` (DESIGN §7): seed chips in 待写卡 with counters."""
    segments = identifiers.iot_segments()
    async with connection(db) as conn, conn.transaction():
        batch_id = await chip_store.batch_id(conn, batch)
        await staging.create_chip_stage(conn)
        count, _, problems = await _stage(conn, path, CHIP_COLUMNS, lambda line, f: _chip_row(line, f, segments),
                                          lambda records: staging.stage_chips(conn, records), progress)
        _rejected(path, problems, await staging.chip_problems(conn, batch_id))
        inserted = await staging.insert_staged_chips(conn, batch_id)
        await audit.record(conn, actor, "chips.import", os.path.basename(path), batch=batch, rows=count,
                           imported=inserted)
    return ImportResult(count, inserted, count - inserted)
