"""Core data encrypted at rest (R14, R25, DESIGN §2): a pg_dump of a populated database holds no secret in clear."""

import subprocess
from pathlib import Path

import pytest

from esimota.service import admin, imports, writing
from esimota.service.writing import ApplyRequest
from esimota.store import clients, crypto

from ..conftest import BATCH_KEY, eid, imsi, ki, opc, write_chips, write_numbers

PG_DUMP = Path("/usr/lib/postgresql/15/bin/pg_dump")


@pytest.mark.skipif(not PG_DUMP.exists(), reason="pg_dump of PostgreSQL 15 not installed")
async def test_pg_dump_holds_no_secret_in_clear(pool, db_url, tmp_path):
    """R14: Ki, OPc, IMSI, batch master keys, client and callback secrets never appear in a dump."""
    await admin.create_batch(pool, "B1", BATCH_KEY)
    await imports.import_chips(pool, str(write_chips(tmp_path / "c.csv", range(20))), "B1")
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(20))))
    new = await admin.create_client(pool, name="A", phone="13800000001", ip="10.0.0.1",
                                    callback_url="https://a.example/cb")
    await admin.allocate_chips(pool, new.client.client_id, [eid(1)])
    await writing.apply_write(pool, new.client, ApplyRequest(eid(1), 1, province_code="44"))
    dump = subprocess.run([str(PG_DUMP), "--dbname", db_url, "--data-only"], capture_output=True,
                          timeout=120, check=True).stdout
    assert b"13800000001" in dump  # the dump is real and holds the clear columns
    secrets = [new.client_secret, new.callback_secret, BATCH_KEY]
    for i in range(20):
        secrets += [ki(i), opc(i), imsi(i)]
    lowered = dump.lower()
    for s in secrets:
        assert s.lower().encode() not in lowered  # bytea is dumped as hex: this covers raw keys too
    # the secrets are there, encrypted: they decrypt back with the platform's keys
    assert await clients.callback_secret(pool, new.client.client_id) == new.callback_secret.encode()
    assert await clients.authenticate(pool, new.client.client_id, new.client_secret)


async def test_ciphertexts_are_bound_to_their_row(pool, tmp_path):
    """A ciphertext copied to another row does not decrypt (GCM associated data names the row)."""
    await imports.import_numbers(pool, str(write_numbers(tmp_path / "n.csv", range(2))))
    rows = await pool.fetch("SELECT iccid, keys_enc FROM numbers ORDER BY id")
    from esimota.errors import ConfigError
    from esimota.store.keys import aad
    from esimota.store.numbers import KEYS_AAD
    assert await crypto.decrypt(pool, rows[0]["keys_enc"], aad(KEYS_AAD, rows[0]["iccid"]))
    with pytest.raises(ConfigError):
        await crypto.decrypt(pool, rows[0]["keys_enc"], aad(KEYS_AAD, rows[1]["iccid"]))
