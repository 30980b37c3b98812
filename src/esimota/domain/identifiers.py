"""Identifier rules of DESIGN §2 (§5.4.2.1, R6, R30): EID, ICCID, MSISDN, IMSI, IMEI, Ki/OPc."""

from __future__ import annotations

import os
import re

from ..errors import InvalidArgument

# 13-digit IoT number segments (MIIT approval of 2020-10); ESIMOTA_IOT_SEGMENTS overrides (DESIGN §2).
DEFAULT_IOT_SEGMENTS = ("1064", "1440", "146", "148", "1410")

_DIGITS = re.compile(r"^[0-9]+$")
_ICCID = re.compile(r"^89[0-9A-F]{17}[0-9]$")
_HEX = re.compile(r"^[0-9A-Fa-f]+$")


def iot_segments() -> tuple[str, ...]:
    """The configured IoT number segments (comma-separated ESIMOTA_IOT_SEGMENTS, else the default)."""
    raw = os.environ.get("ESIMOTA_IOT_SEGMENTS", "")
    found = tuple(s.strip() for s in raw.split(",") if s.strip())
    return found or DEFAULT_IOT_SEGMENTS


def eid_check_digits(first30: str) -> str:
    """The two check digits that make a 30-digit EID prefix valid (ISO 7064 MOD 97-10, SGP.29)."""
    if len(first30) != 30 or not _DIGITS.match(first30):
        raise InvalidArgument("an EID prefix is 30 digits", reason="EID_INVALID")
    return f"{98 - (int(first30) * 100) % 97:02d}"


def validate_eid(eid: str) -> str:
    """32 digits starting 89 whose value mod 97 is 1 (DESIGN §2, R6); returns the EID."""
    if not isinstance(eid, str) or len(eid) != 32 or not _DIGITS.match(eid):
        raise InvalidArgument("EID must be 32 decimal digits", reason="EID_INVALID")
    if not eid.startswith("89"):
        raise InvalidArgument("EID must start with 89", reason="EID_INVALID")
    if int(eid) % 97 != 1:
        raise InvalidArgument("EID check digits are wrong (mod 97 != 1)", reason="EID_INVALID")
    return eid


def validate_iccid(iccid: str) -> str:
    """20 characters starting 89; the issuer part may carry hex digits A–F (DESIGN §2); upper-cased."""
    value = iccid.upper() if isinstance(iccid, str) else ""
    if len(value) != 20 or not _ICCID.match(value):
        raise InvalidArgument("ICCID must be 20 characters starting with 89 (digits, issuer part may be A-F)",
                              reason="ICCID_INVALID")
    return value


def validate_msisdn(msisdn: str, segments: tuple[str, ...] | None = None) -> str:
    """A 13-digit IoT number in a configured segment; 11-digit public numbers are refused (R30)."""
    if not isinstance(msisdn, str) or not _DIGITS.match(msisdn):
        raise InvalidArgument("MSISDN must be digits only", reason="MSISDN_INVALID")
    if len(msisdn) != 13:
        raise InvalidArgument("MSISDN must be a 13-digit IoT number, not a public mobile number",
                              reason="MSISDN_NOT_IOT")
    if not msisdn.startswith(segments or iot_segments()):
        raise InvalidArgument("MSISDN is not in a configured IoT number segment", reason="MSISDN_NOT_IOT")
    return msisdn


def validate_imsi(imsi: str) -> str:
    """15 digits (DESIGN §2)."""
    if not isinstance(imsi, str) or len(imsi) != 15 or not _DIGITS.match(imsi):
        raise InvalidArgument("IMSI must be 15 digits", reason="IMSI_INVALID")
    return imsi


def luhn_check_digit(first14: str) -> str:
    """The Luhn check digit that completes a 14-digit IMEI body (3GPP TS 23.003 §6.2.1)."""
    total = 0
    for i, ch in enumerate(reversed(first14)):
        d = int(ch) * (2 if i % 2 == 0 else 1)
        total += d - 9 if d > 9 else d
    return str((10 - total % 10) % 10)


def validate_imei(imei: str) -> str:
    """15 digits whose last one is the Luhn check digit (TS 23.003 §6.2.1)."""
    if not isinstance(imei, str) or len(imei) != 15 or not _DIGITS.match(imei):
        raise InvalidArgument("IMEI must be 15 digits", reason="IMEI_INVALID")
    if luhn_check_digit(imei[:14]) != imei[14]:
        raise InvalidArgument("IMEI check digit is wrong", reason="IMEI_INVALID")
    return imei


def parse_key16(text: str, what: str) -> bytes:
    """16 bytes given as 32 hex digits (Ki, OPc, batch master key); the value never enters a message."""
    if not isinstance(text, str) or len(text) != 32 or not _HEX.match(text):
        raise InvalidArgument(f"{what} must be 32 hex digits", reason=f"{what.upper().replace(' ', '_')}_INVALID")
    return bytes.fromhex(text)
