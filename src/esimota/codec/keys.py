"""Per-chip keys (DESIGN §5.2) and the AES key wrap of Ki‖OPc (RFC 3394, DESIGN §5.4 step 2).

Public API:
    derive_keys(master_key, eid_bytes) -> (kic, kid, dek)      16 bytes each
    derive_key(master_key, label, eid_bytes) -> bytes
    wrap_ki_opc(dek, ki, opc) -> bytes                          40 bytes
    unwrap_ki_opc(dek, wrapped) -> (ki, opc)                    BadMacError if the wrap is forged
"""

from __future__ import annotations

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.kdf.kbkdf import CounterLocation, KBKDFCMAC, Mode
from cryptography.hazmat.primitives.keywrap import InvalidUnwrap, aes_key_unwrap, aes_key_wrap

from esimota.errors import BadMacError, BadValueError

from ._crypto import aes_cmac

LABELS = (b"KIC", b"KID", b"DEK")


def derive_key(master_key: bytes, label: bytes, eid_bytes: bytes) -> bytes:
    """NIST SP 800-108 counter-mode KDF with AES-CMAC: r=8, L=128 in 16 bits, counter first.

    L = 128 is one CMAC block, so the KDF is CMAC(K, 01 ‖ label ‖ 00 ‖ EID ‖ 0080) (SP 800-108 §5.1),
    computed from the packet code's cached per-key CMAC context (a KBKDF object per call costs ~5×).
    `derive_key_kbkdf` is the library's own construction, which the tests hold this one to.
    """
    if len(master_key) != 16 or len(eid_bytes) != 16:
        raise BadValueError("master key and EID must be 16 bytes each")
    return aes_cmac(bytes(master_key), b"\x01" + label + b"\x00" + bytes(eid_bytes) + b"\x00\x80")


def derive_key_kbkdf(master_key: bytes, label: bytes, eid_bytes: bytes) -> bytes:
    """`derive_key` through cryptography's KBKDFCMAC (the reference the fast form is tested against)."""
    kdf = KBKDFCMAC(algorithm=algorithms.AES, mode=Mode.CounterMode, length=16, rlen=1, llen=2,
                    location=CounterLocation.BeforeFixed, label=label, context=bytes(eid_bytes),
                    fixed=None)
    return kdf.derive(bytes(master_key))


def derive_keys(master_key: bytes, eid_bytes: bytes) -> tuple[bytes, bytes, bytes]:
    """(K_IC, K_ID, K_DEK) of one chip from its batch master key and its 16 EID bytes."""
    kic, kid, dek = (derive_key(master_key, label, eid_bytes) for label in LABELS)
    return kic, kid, dek


def wrap_ki_opc(dek: bytes, ki: bytes, opc: bytes) -> bytes:
    """RFC 3394 AES key wrap of Ki‖OPc under K_DEK: 40 bytes (the DGI '8101' of STORE DATA)."""
    if len(ki) != 16 or len(opc) != 16 or len(dek) != 16:
        raise BadValueError("Ki, OPc and K_DEK must be 16 bytes each")
    return aes_key_wrap(bytes(dek), bytes(ki) + bytes(opc))


def unwrap_ki_opc(dek: bytes, wrapped: bytes) -> tuple[bytes, bytes]:
    """Inverse of `wrap_ki_opc`; BadMacError when the integrity check fails."""
    if len(wrapped) != 40:
        raise BadValueError("wrapped Ki‖OPc must be 40 bytes", 0)
    try:
        plain = aes_key_unwrap(bytes(dek), bytes(wrapped))
    except InvalidUnwrap:
        raise BadMacError("key wrap integrity check failed", 0) from None
    return plain[:16], plain[16:]
