"""Cipher and MAC primitives of the secured packets, through `cryptography`, with per-key caches."""

# Shared by the compiled core and the pure twin: both call `cryptography`, never an own cipher.
# Key objects (Cipher, CMAC) are built once per key and reused; a CMAC context is copied per
# message, a CBC context is created from the cached Cipher per message (CBC carries state).

from __future__ import annotations

import hmac

from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

try:  # cryptography >= 43 keeps TripleDES in the "decrepit" module
    from cryptography.hazmat.decrepit.ciphers.algorithms import TripleDES
except ImportError:  # pragma: no cover - older cryptography
    TripleDES = algorithms.TripleDES  # type: ignore[misc,assignment]

#: algorithm codes used across the codec (TS 102 225 §5.1.2 KIc/KID coding, reduced to what we use)
AES, DES3 = 1, 2
_ZERO16 = bytes(16)
_ZERO8 = bytes(8)
_CACHE_MAX = 4096
_cbc: dict[tuple[int, bytes], Cipher] = {}
_cmac: dict[bytes, cmac.CMAC] = {}


def block_size(algo: int) -> int:
    """Cipher block size in bytes: 16 for AES, 8 for 3DES."""
    return 16 if algo == AES else 8


def _cipher(algo: int, key: bytes) -> Cipher:
    c = _cbc.get((algo, key))
    if c is None:
        if len(_cbc) >= _CACHE_MAX:
            _cbc.clear()
        if algo == AES:
            prim = algorithms.AES(key)
        else:  # two-key 3DES is K1 K2 K1 (TS 102 225 §5.1.3); spelled out as a 24-byte key
            prim = TripleDES(key + key[:8] if len(key) == 16 else key)
        c = Cipher(prim, modes.CBC(_ZERO16 if algo == AES else _ZERO8))
        _cbc[(algo, key)] = c
    return c


def cbc_encrypt(algo: int, key: bytes, data) -> bytes:
    """CBC with a zero IV (TS 102 225 §5.1.3); `data` is already a multiple of the block size."""
    enc = _cipher(algo, key).encryptor()
    return enc.update(data) + enc.finalize()


def cbc_decrypt(algo: int, key: bytes, data) -> bytes:
    """Inverse of `cbc_encrypt`."""
    dec = _cipher(algo, key).decryptor()
    return dec.update(data) + dec.finalize()


def aes_cmac(key: bytes, data) -> bytes:
    """Full 16-byte AES-CMAC (NIST SP 800-38B) from a cached per-key context."""
    base = _cmac.get(key)
    if base is None:
        if len(_cmac) >= _CACHE_MAX:
            _cmac.clear()
        base = cmac.CMAC(algorithms.AES(key))
        _cmac[key] = base
    ctx = base.copy()
    ctx.update(data)
    return ctx.finalize()


def des3_mac(key: bytes, data) -> bytes:
    """TS 102 225 §5.1.3 3DES CC: last block of 3DES-CBC (zero IV) over data zero-padded to 8."""
    rest = len(data) % 8
    if rest:
        data = bytes(data) + bytes(8 - rest)
    elif not data:
        data = _ZERO8
    return cbc_encrypt(DES3, key, data)[-8:]


def cc(algo: int, key: bytes, data) -> bytes:
    """8-byte cryptographic checksum: AES-CMAC truncated (§5.3) or the 3DES CBC-MAC."""
    if algo == AES:
        return aes_cmac(key, data)[:8]
    return des3_mac(key, data)


def equal(a, b) -> bool:
    """Constant-time comparison of two MACs."""
    return hmac.compare_digest(bytes(a), bytes(b))
