"""BCD forms of the identifiers (DESIGN §2): EID, ICCID (EF_ICCID), IMEI, swapped-BCD digits.

Public API:
    eid_to_bytes(eid) -> 16 bytes        eid_from_bytes(b) -> str    (packed BCD, high nibble first)
    iccid_to_bytes(iccid) -> 10 bytes    iccid_from_bytes(b) -> str  (nibble-swapped, 'F' filler)
    imei_to_bytes(imei) -> 8 bytes       imei_from_bytes(b) -> str   (15 digits + 'F', high first)
    swapped_bcd(digits, size=None) -> bytes, swapped_bcd_digits(b) -> str
    eid_valid(eid) -> bool               (SGP.29: 32 digits, '89' prefix, mod 97 == 1)
"""

from __future__ import annotations

from esimota.errors import BadValueError

_HEX = "0123456789ABCDEF"


def _check(text: str, size: int, alphabet: str, what: str) -> str:
    text = text.upper()
    if len(text) != size or any(c not in alphabet for c in text):
        raise BadValueError(f"{what} must be {size} characters of {alphabet}")
    return text


def eid_to_bytes(eid: str) -> bytes:
    """32 decimal digits -> 16 bytes packed BCD, high nibble first."""
    return bytes.fromhex(_check(eid, 32, "0123456789", "EID"))


def eid_from_bytes(raw: bytes) -> str:
    """Inverse of `eid_to_bytes`."""
    if len(raw) != 16:
        raise BadValueError("EID must be 16 bytes")
    return _check(bytes(raw).hex(), 32, "0123456789", "EID")


def eid_valid(eid: str) -> bool:
    """SGP.29 check digits: the 32-digit number mod 97 equals 1 (ISO 7064 MOD 97-10)."""
    return len(eid) == 32 and eid.isdigit() and eid.startswith("89") and int(eid) % 97 == 1


_NIBBLE_SWAP = bytes(((b & 0x0F) << 4) | (b >> 4) for b in range(256))
_BCD_DIGITS = frozenset("0123456789ABCDE")


def swapped_bcd(digits: str, size: int | None = None) -> bytes:
    """Digits as nibble-swapped BCD, 'F'-padded (to `size` bytes if given)."""
    text = digits.upper()
    if not _BCD_DIGITS.issuperset(text):
        raise BadValueError("digits must be 0-9 or A-E")
    if len(text) % 2:
        text += "F"
    if size is not None:
        if len(text) > size * 2:
            raise BadValueError(f"more than {size * 2} digits")
        text += "F" * (size * 2 - len(text))
    return bytes.fromhex(text).translate(_NIBBLE_SWAP)


def swapped_bcd_digits(raw: bytes) -> str:
    """Inverse of `swapped_bcd`: stops at the first 'F' filler."""
    out = []
    for b in raw:
        for nib in (b & 0x0F, b >> 4):
            if nib == 0x0F:
                return "".join(out)
            out.append(_HEX[nib])
    return "".join(out)


def iccid_to_bytes(iccid: str) -> bytes:
    """20 characters (the issuer part may hold A-F... but not the filler) -> EF_ICCID's 10 bytes."""
    return swapped_bcd(_check(iccid, 20, _HEX[:15], "ICCID"), 10)


def iccid_from_bytes(raw: bytes) -> str:
    """EF_ICCID's 10 bytes -> the 20-character ICCID."""
    if len(raw) != 10:
        raise BadValueError("EF_ICCID must be 10 bytes")
    return "".join(f"{b:02X}"[::-1] for b in raw)


def imei_to_bytes(imei: str) -> bytes:
    """15 digits + 'F' packed high nibble first (DESIGN §5.1 'C2')."""
    return bytes.fromhex(_check(imei, 15, "0123456789", "IMEI") + "F")


def imei_from_bytes(raw: bytes) -> str:
    """Inverse of `imei_to_bytes`."""
    text = bytes(raw).hex().upper()
    if len(raw) != 8 or not text.endswith("F"):
        raise BadValueError("IMEI must be 8 bytes ending in an F nibble")
    return _check(text[:15], 15, "0123456789", "IMEI")
