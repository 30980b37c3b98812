"""Encryption at rest (R14, R25): AES-256-GCM under versioned data keys wrapped by the master key.

A ciphertext is VERSION(4, big-endian) || NONCE(12) || GCM(ciphertext || tag). The associated data
names the column and the row (e.g. b"numbers.keys|<iccid>"), so a ciphertext moved to another row
or column does not decrypt. Plaintexts never appear in messages or logs.
"""

from __future__ import annotations

import hmac
import os
import time
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from .. import config
from ..errors import ConfigError

_HEADER = 16
_REFRESH_S = 60.0  # a process picks up a key rotated elsewhere within this time

SELECT_KEYS = "SELECT version, wrapped FROM data_keys ORDER BY version"
INSERT_KEY = "INSERT INTO data_keys (version, wrapped) VALUES ($1, $2) ON CONFLICT (version) DO NOTHING"
UPDATE_WRAP = "UPDATE data_keys SET wrapped = $2 WHERE version = $1"
SELECT_INDEX_KEYS = "SELECT purpose, wrapped FROM index_keys ORDER BY purpose"
INSERT_INDEX_KEY = "INSERT INTO index_keys (purpose, wrapped) VALUES ($1, $2) ON CONFLICT (purpose) DO NOTHING"
UPDATE_INDEX_WRAP = "UPDATE index_keys SET wrapped = $2 WHERE purpose = $1"
#: blind indexes (migration 0009): purpose -> what it indexes
INDEX_PURPOSES = ("numbers.imsi",)


def _seal(master: bytes, key: bytes, aad: bytes) -> bytes:
    nonce = os.urandom(12)
    return nonce + AESGCM(master).encrypt(nonce, key, aad)


def _open(master: bytes, wrapped: bytes, aad: bytes, what: str) -> bytes:
    try:
        return AESGCM(master).decrypt(wrapped[:12], wrapped[12:], aad)
    except InvalidTag:
        raise ConfigError(f"{what} does not unwrap: wrong at-rest master key") from None


def _wrap_aad(version: int) -> bytes:
    return b"esimota.data_key|%d" % version


def wrap(master: bytes, version: int, key: bytes) -> bytes:
    """A data key wrapped (AES-256-GCM) under the master key, bound to its version."""
    return _seal(master, key, _wrap_aad(version))


def unwrap(master: bytes, version: int, wrapped: bytes) -> bytes:
    return _open(master, wrapped, _wrap_aad(version), f"data key v{version}")


def _index_aad(purpose: str) -> bytes:
    return b"esimota.index_key|" + purpose.encode()


def wrap_index_key(master: bytes, purpose: str, key: bytes) -> bytes:
    """An index key wrapped (AES-256-GCM) under the master key, bound to its purpose."""
    return _seal(master, key, _index_aad(purpose))


def unwrap_index_key(master: bytes, purpose: str, wrapped: bytes) -> bytes:
    return _open(master, wrapped, _index_aad(purpose), f"index key {purpose}")


class KeyRing:
    """The unwrapped data keys of one database; new ciphertexts use the newest version."""

    def __init__(self, keys: dict[int, bytes], index_keys: dict[str, bytes] | None = None) -> None:
        if not keys:
            raise ConfigError("no data key")
        self._aead = {v: AESGCM(k) for v, k in keys.items()}
        self._index = dict(index_keys or {})
        self.active = max(keys)
        self._prefix = self.active.to_bytes(4, "big")
        self.loaded_at = time.monotonic()

    @property
    def versions(self) -> list[int]:
        return sorted(self._aead)

    def encrypt(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return self._prefix + nonce + self._aead[self.active].encrypt(nonce, plaintext, aad)

    def blind(self, purpose: str, value: bytes) -> bytes:
        """The blind-index tag of `value` (16 bytes of HMAC-SHA-256 under the purpose's index key):
        equal values, equal tags; the value cannot be read back from it without the key."""
        try:
            key = self._index[purpose]
        except KeyError:
            raise ConfigError(f"no index key for {purpose}") from None
        return hmac.digest(key, value, "sha256")[:16]

    def decrypt(self, blob: bytes, aad: bytes) -> bytes:
        version = int.from_bytes(blob[:4], "big")
        aead = self._aead.get(version)
        if aead is None:
            raise KeyError(version)
        try:
            return aead.decrypt(blob[4:_HEADER], blob[_HEADER:], aad)
        except InvalidTag:
            raise ConfigError("a stored ciphertext does not verify (tampered or moved)") from None


def version_of(blob: bytes) -> int:
    return int.from_bytes(blob[:4], "big")


async def load(db: Any, master: bytes | None = None) -> KeyRing:
    """Unwrap every data key of the database; the first call on a new database creates version 1."""
    master = master if master is not None else config.master_key()
    rows = await db.fetch(SELECT_KEYS)
    if not rows:
        await db.execute(INSERT_KEY, 1, wrap(master, 1, AESGCM.generate_key(256)))
        rows = await db.fetch(SELECT_KEYS)  # another process may have won the insert: use its key
    index = await db.fetch(SELECT_INDEX_KEYS)
    missing = set(INDEX_PURPOSES) - {r["purpose"] for r in index}
    if missing:  # first use (a new database, or one migrated to 0009): made once, kept for good
        for purpose in sorted(missing):
            await db.execute(INSERT_INDEX_KEY, purpose, wrap_index_key(master, purpose, os.urandom(32)))
        index = await db.fetch(SELECT_INDEX_KEYS)  # another process may have won an insert: use its key
    return KeyRing({r["version"]: unwrap(master, r["version"], r["wrapped"]) for r in rows},
                   {r["purpose"]: unwrap_index_key(master, r["purpose"], r["wrapped"]) for r in index})


# Key rings by pool or connection. Pools cannot be weakly referenced (asyncpg's __slots__), so the
# cache holds the object itself (no id reuse) and forgets the oldest entries beyond a few dozen.
_RINGS: dict[int, tuple[Any, KeyRing]] = {}
_MAX_RINGS = 64


async def keyring(db: Any, *, refresh: bool = False) -> KeyRing:
    """The cached key ring of a pool or connection, reloaded after _REFRESH_S or on demand."""
    holder = getattr(db, "_con", None) or db  # a pool's connection proxy: the connection behind it
    entry = _RINGS.get(id(holder))
    ring = entry[1] if entry is not None and entry[0] is holder else None
    if ring is None or refresh or time.monotonic() - ring.loaded_at > _REFRESH_S:
        ring = await load(db)
        _RINGS.pop(id(holder), None)
        _RINGS[id(holder)] = (holder, ring)
        while len(_RINGS) > _MAX_RINGS:
            _RINGS.pop(next(iter(_RINGS)))
    return ring


async def decrypt(db: Any, blob: bytes, aad: bytes) -> bytes:
    """Decrypt, reloading the ring once if the version is newer than this process knows."""
    ring = await keyring(db)
    try:
        return ring.decrypt(blob, aad)
    except KeyError:
        return (await keyring(db, refresh=True)).decrypt(blob, aad)
