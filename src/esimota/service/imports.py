"""Operator imports of DESIGN §7: all-or-nothing, every bad row listed, re-imports add nothing.

Rows are validated and encrypted in Python, then COPYed in chunks into a temporary staging table
inside one transaction; cross-row and cross-database checks run in SQL on the staging table; any
problem rolls the whole transaction back (ImportRejected lists line, reason, detail).
"""

from __future__ import annotations

import csv
import datetime as dt
import decimal
import os
from dataclasses import dataclass
from typing import Any, Callable, Iterator

from ..domain import identifiers, lifetimes, provinces, services
from ..errors import DomainError, ImportRejected
from ..store import audit, chips as chip_store, crypto
from ..store import numbers as number_store
from .common import connection

NUMBER_COLUMNS = ["msisdn", "iccid", "imsi", "ki", "opc", "province_code", "services", "monthly_quota_mb"]
CHIP_COLUMNS = ["eid", "imei", "chip_model", "temp_iccid", "temp_msisdn", "network_type", "open_time",
                "test_flow_mb"]
CHUNK = 20000
MB = 1024 * 1024
Progress = Callable[[int, int], None]

NUMBER_STAGE = """
CREATE TEMP TABLE number_stage (line int, msisdn text, iccid text, imsi_enc bytea, keys_enc bytea,
    province_code text, services text[], monthly_quota_mb numeric) ON COMMIT DROP"""
NUMBER_STAGE_COLS = ["line", "msisdn", "iccid", "imsi_enc", "keys_enc", "province_code", "services",
                     "monthly_quota_mb"]
# In-file duplicates, then rows that disagree with what is stored (the same file again agrees).
NUMBER_CHECKS = """
SELECT line, 'DUPLICATE_ICCID' AS reason, iccid AS detail FROM (
  SELECT line, iccid, row_number() OVER (PARTITION BY iccid ORDER BY line) AS n FROM number_stage) d WHERE n > 1
UNION ALL
SELECT line, 'DUPLICATE_MSISDN', msisdn FROM (
  SELECT line, msisdn, row_number() OVER (PARTITION BY msisdn ORDER BY line) AS n FROM number_stage) d WHERE n > 1
UNION ALL
SELECT s.line, 'ICCID_EXISTS', s.iccid FROM number_stage s JOIN numbers n ON n.iccid = s.iccid
  WHERE n.msisdn <> s.msisdn OR n.province_code <> s.province_code
UNION ALL
SELECT s.line, 'MSISDN_EXISTS', s.msisdn FROM number_stage s JOIN numbers n ON n.msisdn = s.msisdn
  WHERE n.iccid <> s.iccid"""
NUMBER_INSERT = """
INSERT INTO numbers (msisdn, iccid, imsi_enc, keys_enc, province_code, services, monthly_quota_mb)
SELECT msisdn, iccid, imsi_enc, keys_enc, province_code, services, monthly_quota_mb FROM number_stage
ORDER BY line ON CONFLICT DO NOTHING"""

CHIP_STAGE = """
CREATE TEMP TABLE chip_stage (line int, eid text, imei text, chip_model text, temp_iccid text,
    temp_msisdn text, network_type text, open_time date, temp_expires_on date, test_flow_bytes bigint)
    ON COMMIT DROP"""
CHIP_STAGE_COLS = ["line", "eid", "imei", "chip_model", "temp_iccid", "temp_msisdn", "network_type", "open_time",
                   "temp_expires_on", "test_flow_bytes"]
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
SELECT s.line, 'EID_EXISTS', s.eid FROM chip_stage s JOIN chips c ON c.eid = s.eid
  WHERE c.temp_iccid <> s.temp_iccid OR c.temp_msisdn <> s.temp_msisdn OR c.batch_id <> $1
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


def _rows(path: str, columns: list[str], progress: Progress | None) -> Iterator[tuple[int, list[str]]]:
    """(line, fields) of every data row; the header must be exactly the columns of DESIGN §7."""
    total = os.path.getsize(path)
    with open(path, newline="", encoding="utf-8-sig") as f:
        reader = csv.reader(f)
        header = next(reader, None)
        if [h.strip() for h in header or []] != columns:
            raise ImportRejected([(1, "BAD_HEADER", "expected columns: " + ",".join(columns))], source=path)
        for fields in reader:
            if progress is not None and reader.line_num % CHUNK == 0:
                progress(f.tell(), total)
            if fields:
                yield reader.line_num, fields
        if progress is not None:
            progress(total, total)


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

    def __call__(self, line: int, f: list[str]) -> tuple:
        if len(f) != len(NUMBER_COLUMNS):
            raise DomainError(f"{len(f)} fields, expected {len(NUMBER_COLUMNS)}", reason="BAD_FIELD_COUNT")
        msisdn = identifiers.validate_msisdn(f[0].strip(), self.segments)
        iccid = identifiers.validate_iccid(f[1].strip())
        imsi = identifiers.validate_imsi(f[2].strip())
        ki, opc = identifiers.parse_key16(f[3].strip(), "Ki"), identifiers.parse_key16(f[4].strip(), "OPc")
        province = provinces.validate_province(f[5].strip())
        svc = self.services.get(f[6])
        if svc is None:
            svc = self.services[f[6]] = list(services.parse_services(f[6].strip()))
        quota = _quota(f[7].strip())
        if int(imsi) in self.imsis:
            raise DomainError("IMSI repeated in this file", reason="DUPLICATE_IMSI")
        self.imsis.add(int(imsi))
        imsi_enc, keys_enc = number_store.encrypt_secrets(self.ring, iccid, imsi, ki, opc)
        return (line, msisdn, iccid, imsi_enc, keys_enc, province, svc, quota)


def _chip_row(line: int, f: list[str], segments: tuple[str, ...]) -> tuple:
    """One row of `chips import` → a staging record."""
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


async def _stage(conn: Any, path: str, columns: list[str], table: str, cols: list[str],
                 parse: Callable[[int, list[str]], tuple], progress: Progress | None) -> tuple[int, list]:
    """Parse, validate and COPY every row; returns (rows read, problems found in Python)."""
    problems: list[tuple[int, str, str]] = []
    chunk: list[tuple] = []
    count = 0
    for line, fields in _rows(path, columns, progress):
        count += 1
        try:
            chunk.append(parse(line, fields))
        except DomainError as exc:  # messages name the field, never its value when secret
            problems.append((line, exc.reason, exc.message))
        if len(chunk) >= CHUNK:
            await conn.copy_records_to_table(table, records=chunk, columns=cols)
            chunk = []
    if chunk:
        await conn.copy_records_to_table(table, records=chunk, columns=cols)
    return count, problems


def _rejected(path: str, problems: list, db_problems: list) -> None:
    found = problems + [(r["line"], r["reason"], r["detail"]) for r in db_problems]
    if found:
        raise ImportRejected(sorted(found), source=path)


async def import_numbers(db: Any, path: str, *, progress: Progress | None = None,
                         actor: str = "admin") -> ImportResult:
    """`esimota numbers import FILE.csv` (DESIGN §7, R30): all or nothing; the same file twice adds nothing."""
    async with connection(db) as conn:
        ring = await crypto.keyring(conn)
        async with conn.transaction():
            await conn.execute(NUMBER_STAGE)
            count, problems = await _stage(conn, path, NUMBER_COLUMNS, "number_stage", NUMBER_STAGE_COLS,
                                           _NumberParser(ring), progress)
            _rejected(path, problems, await conn.fetch(NUMBER_CHECKS))
            inserted = int((await conn.execute(NUMBER_INSERT)).split()[-1])
            await audit.record(conn, actor, "numbers.import", os.path.basename(path), rows=count, imported=inserted)
    return ImportResult(count, inserted, count - inserted)


async def import_chips(db: Any, path: str, batch: str, *, progress: Progress | None = None,
                       actor: str = "admin") -> ImportResult:
    """`esimota chips import FILE.csv --batch NAME` (DESIGN §7): seed chips in 待写卡 with counters."""
    segments = identifiers.iot_segments()
    async with connection(db) as conn, conn.transaction():
        batch_id = await chip_store.batch_id(conn, batch)
        await conn.execute(CHIP_STAGE)
        count, problems = await _stage(conn, path, CHIP_COLUMNS, "chip_stage", CHIP_STAGE_COLS,
                                       lambda line, f: _chip_row(line, f, segments), progress)
        _rejected(path, problems, await conn.fetch(CHIP_CHECKS, batch_id))
        inserted = int((await conn.execute(CHIP_INSERT, batch_id)).split()[-1])
        await conn.execute(COUNTERS_INSERT)
        await audit.record(conn, actor, "chips.import", os.path.basename(path), batch=batch, rows=count,
                           imported=inserted)
    return ImportResult(count, inserted, count - inserted)
