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

NUMBER_STAGE = """
CREATE TEMP TABLE number_stage (line int, msisdn text, iccid text, imsi_enc bytea, keys_enc bytea,
    province_code text, services text[], monthly_quota_mb numeric, imsi_tag bytea) ON COMMIT DROP;
CREATE TEMP TABLE number_chunk (LIKE number_stage) ON COMMIT DROP"""
NUMBER_CHUNK_TO_STAGE = "INSERT INTO number_stage SELECT * FROM number_chunk"
NUMBER_STAGE_COLS = ["line", "msisdn", "iccid", "imsi_enc", "keys_enc", "province_code", "services",
                     "monthly_quota_mb", "imsi_tag"]
# In-file duplicates, then rows that disagree with what is stored (the same file again agrees). IMSIs
# are compared by their blind-index tags (the IMSIs themselves are stored encrypted); the detail of
# IMSI_EXISTS names the number that holds it, never the IMSI.
NUMBER_CHECKS = """
SELECT line, 'DUPLICATE_ICCID' AS reason, iccid AS detail FROM (
  SELECT line, iccid, row_number() OVER (PARTITION BY iccid ORDER BY line) AS n FROM number_stage) d WHERE n > 1
UNION ALL
SELECT line, 'DUPLICATE_MSISDN', msisdn FROM (
  SELECT line, msisdn, row_number() OVER (PARTITION BY msisdn ORDER BY line) AS n FROM number_stage) d WHERE n > 1
UNION ALL
SELECT s.line, 'ICCID_EXISTS', s.iccid FROM number_stage s JOIN numbers n ON n.iccid = s.iccid
  WHERE n.msisdn <> s.msisdn OR n.province_code <> s.province_code OR n.imsi_tag <> s.imsi_tag
UNION ALL
SELECT s.line, 'MSISDN_EXISTS', s.msisdn FROM number_stage s JOIN numbers n ON n.msisdn = s.msisdn
  WHERE n.iccid <> s.iccid
UNION ALL
SELECT s.line, 'IMSI_EXISTS', 'IMSI already held by ICCID ' || n.iccid FROM number_stage s
  JOIN numbers n ON n.imsi_tag = s.imsi_tag WHERE n.iccid <> s.iccid"""
STAGED_PROVINCES = "SELECT DISTINCT province_code FROM number_stage"
NUMBER_INSERT = """
INSERT INTO numbers (msisdn, iccid, imsi_enc, keys_enc, province_code, services, monthly_quota_mb, imsi_tag)
SELECT msisdn, iccid, imsi_enc, keys_enc, province_code, services, monthly_quota_mb, imsi_tag FROM number_chunk
ON CONFLICT DO NOTHING"""

CHIP_STAGE = """
CREATE TEMP TABLE chip_stage (line int, eid text, imei text, chip_model text, temp_iccid text,
    temp_msisdn text, network_type text, open_time date, temp_expires_on date, test_flow_bytes bigint)
    ON COMMIT DROP"""
CHIP_STAGE_COLS = ["line", "eid", "imei", "chip_model", "temp_iccid", "temp_msisdn", "network_type", "open_time",
                   "temp_expires_on", "test_flow_bytes"]
# An EID already stored with any other value is a conflict (re-importing the same file adds nothing; a
# new temporary number is `chips reprovision`, R12), like ICCID_EXISTS of numbers import.
CHIP_CHECKS = """
SELECT line, 'DUPLICATE_EID' AS reason, eid AS detail FROM (
  SELECT line, eid, row_number() OVER (PARTITION BY eid ORDER BY line) AS n FROM chip_stage) d WHERE n > 1
UNION ALL
SELECT line, 'DUPLICATE_ICCID', temp_iccid FROM (
  SELECT line, temp_iccid, row_number() OVER (PARTITION BY temp_iccid ORDER BY line) AS n FROM chip_stage) d
  WHERE n > 1
UNION ALL
SELECT line, 'DUPLICATE_MSISDN', temp_msisdn FROM (
  SELECT line, temp_msisdn, row_number() OVER (PARTITION BY temp_msisdn ORDER BY line) AS n FROM chip_stage) d
  WHERE n > 1
UNION ALL
SELECT s.line, 'EID_EXISTS', s.eid || ' is stored with other values: ' || concat_ws(', ',
    CASE WHEN c.batch_id <> $1 THEN 'batch' END, CASE WHEN coalesce(c.imei, '') <> s.imei THEN 'imei' END,
    CASE WHEN c.chip_model <> s.chip_model THEN 'chip_model' END,
    CASE WHEN c.temp_iccid <> s.temp_iccid THEN 'temp_iccid' END,
    CASE WHEN c.temp_msisdn <> s.temp_msisdn THEN 'temp_msisdn' END,
    CASE WHEN c.network_type <> s.network_type THEN 'network_type' END,
    CASE WHEN c.open_time <> s.open_time THEN 'open_time' END,
    CASE WHEN c.test_flow_bytes <> s.test_flow_bytes THEN 'test_flow_mb' END)
FROM chip_stage s JOIN chips c ON c.eid = s.eid
  WHERE c.batch_id <> $1 OR coalesce(c.imei, '') <> s.imei OR c.chip_model <> s.chip_model
     OR c.temp_iccid <> s.temp_iccid OR c.temp_msisdn <> s.temp_msisdn OR c.network_type <> s.network_type
     OR c.open_time <> s.open_time OR c.test_flow_bytes <> s.test_flow_bytes
UNION ALL
SELECT s.line, 'ICCID_EXISTS', s.temp_iccid FROM chip_stage s JOIN chips c ON c.temp_iccid = s.temp_iccid
  WHERE c.eid <> s.eid
UNION ALL
SELECT s.line, 'MSISDN_EXISTS', s.temp_msisdn FROM chip_stage s JOIN chips c ON c.temp_msisdn = s.temp_msisdn
  WHERE c.eid <> s.eid"""
CHIP_INSERT = """
INSERT INTO chips (eid, batch_id, chip_model, imei, temp_iccid, temp_msisdn, network_type, open_time,
                   temp_expires_on, test_flow_bytes, remaining_flow_bytes)
SELECT eid, $1, chip_model, nullif(imei, ''), temp_iccid, temp_msisdn, network_type, open_time,
       temp_expires_on, test_flow_bytes, test_flow_bytes FROM chip_stage
ORDER BY line ON CONFLICT DO NOTHING"""
COUNTERS_INSERT = """
INSERT INTO chip_counters (chip_id) SELECT c.id FROM chip_stage s JOIN chips c ON c.eid = s.eid
ON CONFLICT DO NOTHING"""


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
        """Every rule, field by field, so that a bad row gets its precise reason."""
        if len(f) != len(NUMBER_COLUMNS):
            raise DomainError(f"{len(f)} fields, expected {len(NUMBER_COLUMNS)}", reason="BAD_FIELD_COUNT")
        msisdn = identifiers.validate_msisdn(f[0].strip(), self.segments)
        iccid = identifiers.validate_iccid(f[1].strip())
        imsi = identifiers.validate_imsi(f[2].strip())
        ki, opc = identifiers.parse_key16(f[3].strip(), "Ki"), identifiers.parse_key16(f[4].strip(), "OPc")
        province = provinces.validate_province(f[5].strip())
        svc = self.services.get(f[6].strip())
        if svc is None:
            svc = self.services[f[6].strip()] = list(services.parse_services(f[6].strip()))
        quota = self.quotas[f[7].strip()] = _quota(f[7].strip())
        if int(imsi) in self.imsis:
            raise DomainError("IMSI repeated in this file", reason="DUPLICATE_IMSI")
        self.imsis.add(int(imsi))
        imsi_enc, keys_enc = number_store.encrypt_secrets(self.ring, iccid, imsi, ki, opc)
        return (line, msisdn, iccid, imsi_enc, keys_enc, province, svc, quota, number_store.imsi_tag(self.ring, imsi))


def _chip_row(line: int, raw: str, segments: tuple[str, ...]) -> tuple:
    """One row of `chips import` → a staging record."""
    f = _fields(raw)
    if len(f) != len(CHIP_COLUMNS):
        raise DomainError(f"{len(f)} fields, expected {len(CHIP_COLUMNS)}", reason="BAD_FIELD_COUNT")
    eid = identifiers.validate_eid(f[0].strip())
    imei = identifiers.validate_imei(f[1].strip()) if f[1].strip() else ""
    model = f[2].strip()
    if not model:
        raise DomainError("chip_model is empty", reason="CHIP_MODEL_MISSING")
    iccid = identifiers.validate_iccid(f[3].strip())
    msisdn = identifiers.validate_msisdn(f[4].strip(), segments)
    network = lifetimes.validate_network_type(f[5].strip())
    try:
        opened = dt.date.fromisoformat(f[6].strip())
    except ValueError:
        raise DomainError("open_time must be an ISO date (YYYY-MM-DD)", reason="OPEN_TIME_INVALID") from None
    flow = int(_quota(f[7].strip()) * MB)
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
    """Every bad row once, by line; an in-file duplicate is reported as such, not also as a conflict."""
    found = sorted(problems + [(r["line"], r["reason"], r["detail"]) for r in db_problems])
    first = {}
    for line, reason, detail in found:
        if line not in first or (reason.startswith("DUPLICATE_") and not first[line][1].startswith("DUPLICATE_")):
            first[line] = (line, reason, detail)
    if first:
        raise ImportRejected(sorted(first.values()), source=path)


def _copy(conn: Any, table: str, cols: list[str]) -> Callable[[list[tuple]], Awaitable[int]]:
    async def flush(records: list[tuple]) -> int:
        await conn.copy_records_to_table(table, records=records, columns=cols)
        return 0
    return flush


def _copy_and_insert_numbers(conn: Any) -> Callable[[list[tuple]], Awaitable[int]]:
    """COPY a chunk, keep it for the whole-file checks, and insert it at once: the server's work on
    chunk k overlaps the parsing of chunk k+1. A rejected file rolls all of it back."""
    async def flush(records: list[tuple]) -> int:
        await conn.copy_records_to_table("number_chunk", records=records, columns=NUMBER_STAGE_COLS)
        await conn.execute(NUMBER_CHUNK_TO_STAGE)
        inserted = int((await conn.execute(NUMBER_INSERT)).split()[-1])
        await conn.execute("TRUNCATE number_chunk")
        return inserted
    return flush


async def import_numbers(db: Any, path: str, *, progress: Progress | None = None,
                         actor: str = "admin") -> ImportResult:
    """`esimota numbers import FILE.csv` (DESIGN §7, R30): all or nothing; the same file twice adds nothing."""
    async with connection(db) as conn:
        ring = await crypto.keyring(conn)
        async with conn.transaction():
            await number_store.tag_untagged(conn, ring)  # numbers stored before migration 0009
            await conn.execute(NUMBER_STAGE)
            count, inserted, problems = await _stage(conn, path, NUMBER_COLUMNS, _NumberParser(ring),
                                                     _copy_and_insert_numbers(conn), progress)
            _rejected(path, problems, await conn.fetch(NUMBER_CHECKS))
            staged = [r["province_code"] for r in await conn.fetch(STAGED_PROVINCES)]
            await number_store.replenished(conn, staged, "numbers imported")  # table 3: 无可用省份资源 closes
            await audit.record(conn, actor, "numbers.import", os.path.basename(path), rows=count, imported=inserted)
    return ImportResult(count, inserted, count - inserted)


async def import_chips(db: Any, path: str, batch: str, *, progress: Progress | None = None,
                       actor: str = "admin") -> ImportResult:
    """`esimota chips import FILE.csv --batch NAME` (DESIGN §7): seed chips in 待写卡 with counters."""
    segments = identifiers.iot_segments()
    async with connection(db) as conn, conn.transaction():
        batch_id = await chip_store.batch_id(conn, batch)
        await conn.execute(CHIP_STAGE)
        count, _, problems = await _stage(conn, path, CHIP_COLUMNS, lambda line, f: _chip_row(line, f, segments),
                                          _copy(conn, "chip_stage", CHIP_STAGE_COLS), progress)
        _rejected(path, problems, await conn.fetch(CHIP_CHECKS, batch_id))
        inserted = int((await conn.execute(CHIP_INSERT, batch_id)).split()[-1])
        await conn.execute(COUNTERS_INSERT)
        await audit.record(conn, actor, "chips.import", os.path.basename(path), batch=batch, rows=count,
                           imported=inserted)
    return ImportResult(count, inserted, count - inserted)
