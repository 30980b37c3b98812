"""Staging of operator imports (DESIGN §7): temporary tables, COPY in chunks, the checks in SQL, the inserts.

Everything here runs inside the caller's one transaction: a rejected file rolls all of it back.
Problems are asyncpg Records (line, reason, detail).
"""

from __future__ import annotations

from typing import Any

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
TRUNCATE_NUMBER_CHUNK = "TRUNCATE number_chunk"


async def create_number_stage(conn: Any) -> None:
    await conn.execute(NUMBER_STAGE)


async def stage_and_insert_numbers(conn: Any, records: list[tuple]) -> int:
    """COPY a chunk (NUMBER_STAGE_COLS), keep it for the whole-file checks, and insert it at once: the
    server's work on chunk k overlaps the parsing of chunk k+1. Returns the numbers inserted."""
    await conn.copy_records_to_table("number_chunk", records=records, columns=NUMBER_STAGE_COLS)
    await conn.execute(NUMBER_CHUNK_TO_STAGE)
    inserted = int((await conn.execute(NUMBER_INSERT)).split()[-1])
    await conn.execute(TRUNCATE_NUMBER_CHUNK)
    return inserted


async def number_problems(conn: Any) -> list[Any]:
    """In-file duplicates and rows that disagree with the stored numbers."""
    return await conn.fetch(NUMBER_CHECKS)


async def staged_provinces(conn: Any) -> list[str]:
    return [r["province_code"] for r in await conn.fetch(STAGED_PROVINCES)]


async def create_chip_stage(conn: Any) -> None:
    await conn.execute(CHIP_STAGE)


async def stage_chips(conn: Any, records: list[tuple]) -> int:
    """COPY a chunk of chips (CHIP_STAGE_COLS) into the stage; nothing is inserted yet (0)."""
    await conn.copy_records_to_table("chip_stage", records=records, columns=CHIP_STAGE_COLS)
    return 0


async def chip_problems(conn: Any, batch_pk: int) -> list[Any]:
    """In-file duplicates and rows that disagree with the stored chips."""
    return await conn.fetch(CHIP_CHECKS, batch_pk)


async def insert_staged_chips(conn: Any, batch_pk: int) -> int:
    """The staged chips into the batch, with their counters; returns the chips inserted."""
    inserted = int((await conn.execute(CHIP_INSERT, batch_pk)).split()[-1])
    await conn.execute(COUNTERS_INSERT)
    return inserted
