"""`usage import FILE.csv` (§7.2.3.3): all rows or none, every bad row listed, a re-import adds nothing."""

from __future__ import annotations

import argparse
import datetime as dt

import pytest

from esimota import cli
from esimota.cli import api as api_cli
from esimota.errors import ImportRejected
from esimota.service import usage
from esimota.sim import fleetdata


async def test_usage_csv_import(pool, tmp_path):
    fleet = await fleetdata.generate(pool, 1)
    msisdn, now = fleet.numbers[0]["msisdn"], dt.datetime.now(usage.CST).isoformat()
    good = f"record_id,msisdn,iccid,used_mb,recorded_at\na1,{msisdn},,1.5,{now}\na2,{msisdn},,2,{now}\n"
    assert await usage.import_usage_csv(pool, good) == 2
    assert await usage.import_usage_csv(pool, good) == 0
    bad = f"record_id,msisdn,iccid,used_mb,recorded_at\nb1,{msisdn},,x,{now}\nb2,1440999999999,,1,{now}\n"
    with pytest.raises(ImportRejected) as err:
        await usage.import_usage_csv(pool, bad)
    assert [p[:2] for p in err.value.problems] == [(2, "RECORD_INVALID"), (3, "NUMBER_NOT_FOUND")]
    with pytest.raises(ImportRejected) as err:
        await usage.import_usage_csv(pool, bad.replace(",x,", ",1,"))
    assert [p[:2] for p in err.value.problems] == [(3, "NUMBER_NOT_FOUND")]
    # issue 17: every problem of every bad row, a row with four bad fields gets four
    with pytest.raises(ImportRejected) as err:
        await usage.import_usage_csv(pool, "record_id,msisdn,iccid,used_mb,recorded_at\n,,,-1,yesterday\n")
    assert [p[:2] for p in err.value.problems] == [(2, "RECORD_INVALID"), (2, "RECORD_INVALID"), (2, "TIME_INVALID"),
                                                   (2, "NUMBER_REQUIRED")]
    assert str(err.value) == "4 problem(s) in 1 bad row(s) of usage.csv; nothing imported"
    assert await pool.fetchval("SELECT used_flow_mb FROM numbers WHERE msisdn = $1", msisdn) == 3.5


def test_usage_command_is_registered():
    parser = argparse.ArgumentParser()
    api_cli.register(parser.add_subparsers())
    args = parser.parse_args(["api", "admin-token", "olga", "--json"])
    assert args.username == "olga" and args.json  # run against a platform in test_api_staff
    assert cli.EXIT_BAD_INPUT == 2
