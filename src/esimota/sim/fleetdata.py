"""Generated fleets for tests and benchmarks: a batch, its seed chips, operational numbers, a client.

One shared generator (STYLE 12): identifiers are valid by the platform's own rules (EID check
digits, 13-digit IoT MSISDNs, 15-digit IMSIs), secrets are random and stored the way the platform
stores them (encrypted at rest), and the devices' keys are derived from the batch master key exactly
as a chip vendor would personalise them (DESIGN §5.2).
"""

from __future__ import annotations

import datetime as dt
import os
import secrets
from dataclasses import dataclass

from ..codec import keys as codec_keys
from ..domain import identifiers
from ..errors import InvalidArgument
from ..service import admin
from ..store import chips as chip_store
from ..store import clients as client_store
from ..store import crypto
from ..store import numbers as number_store
from .device import DeviceSpec, Faults

CHIP_COLUMNS = ("eid", "batch_id", "chip_model", "imei", "temp_iccid", "temp_msisdn", "network_type",
                "open_time", "temp_expires_on", "test_flow_bytes", "remaining_flow_bytes")
NUMBER_COLUMNS = ("msisdn", "iccid", "imsi_enc", "keys_enc", "province_code", "services", "monthly_quota_mb",
                  "client_id", "allocated_at", "imsi_tag")


@dataclass
class Fleet:
    """What was generated: the client (with its plain secrets, for the test's own use), the devices."""

    client_id: str
    client_pk: int
    client_secret: str
    callback_secret: str
    batch: str
    master_key: bytes
    devices: list[DeviceSpec]
    numbers: list[dict]


def make_eid(serial: int, prefix: str = "8904903200") -> str:
    first30 = (prefix + f"{serial:020d}")[:30]
    return first30 + identifiers.eid_check_digits(first30)


def make_imei(serial: int) -> str:
    first14 = f"86{serial:012d}"[-14:]
    return first14 + identifiers.luhn_check_digit(first14)


async def create_client(db, name: str = "fleet", callback_url: str = "http://127.0.0.1:9/cb",
                        permissions=("write", "chip", "number"), whitelist=("127.0.0.0/8",)) -> tuple:
    """A partner account as an administrator would create it; returns (client_id, pk, secret, callback secret)."""
    client_id = "c" + secrets.token_hex(8)
    secret, cb_secret = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
    row = await client_store.insert(db, client_id, name, "13800000000", client_store.hash_secret(secret),
                                    list(whitelist), list(permissions), callback_url,
                                    await client_store.encrypt_callback_secret(db, client_id, cb_secret), 100000)
    return client_id, row["id"], secret, cb_secret


async def generate(db, count: int, *, numbers: int | None = None, province: str = "44", seed: int = 0,
                   test_flow_bytes: int = 10 * 1024 * 1024, buffer_size: int = 1024,
                   network_type: str = "4G", open_time: dt.date | None = None, faults=None,
                   callback_url: str = "http://127.0.0.1:9/cb") -> Fleet:
    """`count` chips in state 1 allocated to a new client, `numbers` (default `count`) free numbers in `province`."""
    numbers = count if numbers is None else numbers
    if not 0 <= seed < 100 or max(count, numbers) > 10_000_000:
        raise InvalidArgument("seed is 0–99 and a fleet holds at most 10,000,000 devices", reason="FLEET_INVALID")
    if count and await chip_store.allocation_state(db, [make_eid(seed * 10_000_000)]):
        raise InvalidArgument(f"the identifiers of seed {seed} are taken by an earlier fleet in this database; "
                              "pass another --seed", reason="FLEET_SEED_USED")
    client_id, client_pk, secret, cb_secret = await create_client(db, callback_url=callback_url)
    master = os.urandom(16)
    batch = f"B{seed}-{secrets.token_hex(4)}"
    batch_pk = await chip_store.create_batch(db, batch, master)
    opened = open_time or dt.date.today()
    expires = opened + dt.timedelta(days=270 if network_type == "4G" else 180)
    ring = await crypto.keyring(db)
    chip_rows, devices = [], []
    base = seed * 10_000_000
    for i in range(count):
        eid, imei = make_eid(base + i), make_imei(base + i)
        temp_iccid = f"8986{base + i:015d}0"
        temp_msisdn = f"1064{base + i:09d}"
        chip_rows.append((eid, batch_pk, "SIM-A", imei, temp_iccid, temp_msisdn, network_type, opened, expires,
                          test_flow_bytes, test_flow_bytes))
        kic, kid, dek = codec_keys.derive_keys(master, bytes.fromhex(eid))
        fault = faults(i) if callable(faults) else Faults()
        devices.append(DeviceSpec(eid, temp_iccid, imei, kic, kid, dek, buffer_size=buffer_size, faults=fault))
    number_rows, plain = [], []
    for i in range(numbers):
        msisdn, iccid, imsi = f"1440{base + i:09d}", f"8986{base + i:015d}1", f"46000{base + i:010d}"
        ki, opc = os.urandom(16), os.urandom(16)
        imsi_enc, keys_enc = number_store.encrypt_secrets(ring, iccid, imsi, ki, opc)
        number_rows.append((msisdn, iccid, imsi_enc, keys_enc, province, ["data"], 100, client_pk,
                            dt.datetime.now(dt.timezone.utc), number_store.imsi_tag(ring, imsi)))
        plain.append({"msisdn": msisdn, "iccid": iccid, "imsi": imsi, "ki": ki, "opc": opc})
    await chip_store.copy_in(db, chip_rows, CHIP_COLUMNS, batch_pk)
    await number_store.copy_in(db, number_rows, NUMBER_COLUMNS)
    # the operator allocates the batch to the client (§6.2.1.1), through the same use case as `chips allocate`
    await admin.allocate_chips(db, client_id, batch=batch, actor="fleet-generator")
    return Fleet(client_id, client_pk, secret, cb_secret, batch, master, devices, plain)
