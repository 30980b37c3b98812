"""The file formats the `esimota` commands read, shown in each command's --help (and in docs/operations.md).

Each has an example under docs/examples/ that imports as it is (tests/integration/cli/test_formats.py).
"""

from __future__ import annotations

CHIPS = """\
CSV format (UTF-8, header line required, one chip per line; docs/examples/chips.csv):
  eid,imei,chip_model,temp_iccid,temp_msisdn,network_type,open_time,test_flow_mb
  89049032000000000000000000900129,860000000090018,EM-1,89860000000000090010,1440000009001,4G,2026-11-20,5

  eid           32 digits, starts 89, SGP.29 check digits (mod 97 = 1)
  imei          15 digits with its Luhn digit, or empty
  chip_model    the chip model's name (not empty)
  temp_iccid    the temporary number's ICCID: 20 characters starting 89
  temp_msisdn   the temporary number: 13 digits in a configured IoT segment (ESIMOTA_IOT_SEGMENTS)
  network_type  4G (lives 270 days) or NB-IoT (180 days) from open_time
  open_time     the day the temporary number opened, YYYY-MM-DD
  test_flow_mb  test traffic for writing, in MB (decimals allowed)
Any bad row imports nothing; every problem of every bad row is listed with its line (exit 2).
Importing the same file again adds nothing."""

NUMBERS = """\
CSV format (UTF-8, header line required, one number per line; docs/examples/numbers.csv):
  msisdn,iccid,imsi,ki,opc,province_code,services,monthly_quota_mb
  1064000009001,89860100000000090011,460000000009001,<32 hex>,<32 hex>,44,data+directed_sms,100

  msisdn            13 digits in a configured IoT segment (ESIMOTA_IOT_SEGMENTS); 11-digit numbers refused
  iccid             20 characters starting 89 (the issuer part may hold A-F)
  imsi              15 digits, each IMSI once
  ki, opc           16 bytes each as 32 hex digits (stored encrypted, never shown again)
  province_code     GB/T 2260 two digits (11 北京 … 65 新疆)
  services          + joined from data, directed_voice, directed_sms (anything else refused, R30)
  monthly_quota_mb  the month's data quota in MB
Any bad row imports nothing; every problem of every bad row is listed with its line (exit 2).
Importing the same file again adds nothing."""

ICCID_LIST = """\
File format (--file; docs/examples/iccids.txt): one ICCID per line; a first line `iccid` is skipped."""

EID_LIST = """\
File format (--file; docs/examples/eids.txt): one EID per line."""

USAGE = """\
CSV format (UTF-8, header line required; docs/examples/usage.csv):
  record_id,msisdn,iccid,used_mb,recorded_at
  R-2026-12-000001,1064000009001,,12.5,2026-12-01T08:00:00+08:00

  record_id    the charging system's id of the record (≤ 128 characters; a repeated id adds nothing)
  msisdn/iccid the number, by either (one of the two is enough)
  used_mb      data used, in MB (≥ 0)
  recorded_at  ISO 8601 time with its offset
Any bad row imports nothing; every problem of every bad row is listed with its line (exit 2)."""
