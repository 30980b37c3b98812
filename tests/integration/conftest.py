"""Fixtures for the resource and lifecycle tests: generated chips, numbers and clients on a real database."""

from __future__ import annotations

import csv
import datetime as dt
import os
from pathlib import Path

import pytest

from esimota.domain.identifiers import eid_check_digits, luhn_check_digit
from esimota.service import admin, imports

# A fixed at-rest master key for the test process and the CLI subprocesses it starts.
os.environ.setdefault("ESIMOTA_MASTER_KEY", "5a" * 32)
BATCH_KEY = "000102030405060708090a0b0c0d0e0f"


def eid(i: int) -> str:
    prefix = f"8904903200000000000000{i:08d}"
    return prefix + eid_check_digits(prefix)


def imei(i: int) -> str:
    body = f"86{i:012d}"
    return body + luhn_check_digit(body)


def temp_iccid(i: int) -> str:
    return f"898600{i:013d}0"


def temp_msisdn(i: int) -> str:
    return f"1440{i:09d}"


def iccid(i: int) -> str:
    return f"898601{i:013d}1"


def msisdn(i: int) -> str:
    return f"1064{i:09d}"


def imsi(i: int) -> str:
    return f"460{i:012d}"


def ki(i: int) -> str:
    return f"{i:08x}" + "a1" * 12


def opc(i: int) -> str:
    return f"{i:08x}" + "b2" * 12


def write_chips(path: Path, ids, *, open_time: dt.date | None = None, network: str = "4G") -> Path:
    opened = (open_time or dt.date.today()).isoformat()
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(imports.CHIP_COLUMNS)
        for i in ids:
            w.writerow([eid(i), imei(i), "EM-1", temp_iccid(i), temp_msisdn(i), network, opened, "5"])
    return path


def write_numbers(path: Path, ids, province: str = "44", services: str = "data+directed_sms") -> Path:
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(imports.NUMBER_COLUMNS)
        for i in ids:
            w.writerow([msisdn(i), iccid(i), imsi(i), ki(i), opc(i), province, services, "100"])
    return path


@pytest.fixture
async def seeded(pool, tmp_path):
    """A batch, two clients, chips 1–20 in 待写卡 allocated to A (§6.2.1.1), numbers 1–10 in province 44 (广东).

    A test that has B apply for a chip hands it over first: `await reallocate(pool, b, i)`.
    """
    await admin.create_batch(pool, "B1", BATCH_KEY)
    await imports.import_chips(pool, str(write_chips(tmp_path / "chips.csv", range(1, 21))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "numbers.csv", range(1, 11))))
    a = await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.0/8",
                                  callback_url="https://a.example/cb")
    b = await admin.create_client(pool, name="B", phone="13800000002", ip="192.168.1.1",
                                  callback_url="https://b.example/cb")
    await admin.allocate_chips(pool, a.client.client_id, batch="B1")
    return a.client, b.client


async def reallocate(pool, client, *ids: int) -> None:
    """Chips `ids` released by the client that holds them and allocated to `client`, as an operator would."""
    eids = [eid(i) for i in ids]
    held = await pool.fetch("SELECT c.eid, cl.client_id FROM chips c JOIN clients cl ON cl.id = c.owner_client_id "
                            "WHERE c.eid = ANY($1::text[])", eids)
    for holder in {r["client_id"] for r in held}:
        await admin.release_chips(pool, holder, [r["eid"] for r in held if r["client_id"] == holder])
    await admin.allocate_chips(pool, client.client_id, eids)
