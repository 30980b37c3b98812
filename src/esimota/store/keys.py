"""`esimota keys rotate` (R14): a new data key, old ciphertexts re-encrypted in small online batches."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from . import crypto

# Every encrypted column: (table, column, the row's natural key, the AAD purpose). The AAD binds a
# ciphertext to its row, so re-encryption must rebuild it from the same key column.
ENCRYPTED = (
    ("chip_batches", "master_key_enc", "name", b"chip_batches.master_key|"),
    ("numbers", "imsi_enc", "iccid", b"numbers.imsi|"),
    ("numbers", "keys_enc", "iccid", b"numbers.keys|"),
    ("clients", "callback_secret_enc", "client_id", b"clients.callback_secret|"),
)

MAX_VERSION = "SELECT coalesce(max(version), 0) FROM data_keys"
# Rows locked by a running write are skipped and picked up by the next pass (SKIP LOCKED), so the
# platform keeps serving while the rotation runs.
SELECT_STALE = """
SELECT id, {key} AS ident, {col} AS blob FROM {table}
WHERE substring({col} FROM 1 FOR 4) < $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED"""
UPDATE_BLOBS = """
UPDATE {table} t SET {col} = u.blob FROM unnest($1::bigint[], $2::bytea[]) AS u(id, blob) WHERE t.id = u.id"""
COUNT_STALE = "SELECT count(*) FROM {table} WHERE substring({col} FROM 1 FOR 4) < $1"


def aad(purpose: bytes, ident: str) -> bytes:
    return purpose + ident.encode()


@dataclass
class Rotation:
    version: int
    reencrypted: int
    rewrapped: int


async def add_version(db: Any, master: bytes) -> int:
    """Create the next data-key version; new ciphertexts use it from the next key-ring refresh."""
    async with db.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE data_keys IN EXCLUSIVE MODE")
        version = await conn.fetchval(MAX_VERSION) + 1
        await conn.execute(crypto.INSERT_KEY, version, crypto.wrap(master, version, AESGCM.generate_key(256)))
    return version


async def _reencrypt_column(db: Any, ring: crypto.KeyRing, spec: tuple, batch: int) -> int:
    table, col, key, purpose = spec
    prefix = ring.active.to_bytes(4, "big")
    done = 0
    while True:
        async with db.acquire() as conn, conn.transaction():
            rows = await conn.fetch(SELECT_STALE.format(table=table, col=col, key=key), prefix, batch)
            if not rows:
                stale = await conn.fetchval(COUNT_STALE.format(table=table, col=col), prefix)
                if stale == 0:
                    return done
                continue  # only rows locked by a running write are left: try them again
            blobs = [ring.encrypt(ring.decrypt(r["blob"], aad(purpose, r["ident"])), aad(purpose, r["ident"]))
                     for r in rows]
            await conn.execute(UPDATE_BLOBS.format(table=table, col=col), [r["id"] for r in rows], blobs)
            done += len(rows)


async def rotate(db: Any, master: bytes, *, new_master: bytes | None = None, batch: int = 2000) -> Rotation:
    """New data key; re-encrypt every column to it; with new_master, re-wrap every data key under it."""
    version = await add_version(db, master)
    ring = await crypto.load(db, master)
    total = 0
    for spec in ENCRYPTED:
        total += await _reencrypt_column(db, ring, spec, batch)
    rewrapped = 0
    if new_master is not None:
        async with db.acquire() as conn, conn.transaction():
            for r in await conn.fetch(crypto.SELECT_KEYS + " FOR UPDATE"):
                key = crypto.unwrap(master, r["version"], r["wrapped"])
                await conn.execute(crypto.UPDATE_WRAP, r["version"], crypto.wrap(new_master, r["version"], key))
                rewrapped += 1
            for r in await conn.fetch(crypto.SELECT_INDEX_KEYS + " FOR UPDATE"):
                key = crypto.unwrap_index_key(master, r["purpose"], r["wrapped"])
                await conn.execute(crypto.UPDATE_INDEX_WRAP, r["purpose"],
                                   crypto.wrap_index_key(new_master, r["purpose"], key))
                rewrapped += 1
    return Rotation(version=version, reencrypted=total, rewrapped=rewrapped)
