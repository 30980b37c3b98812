"""The personalisation script of a write (DESIGN §5.4 step 2): C-APDUs, their file context, the read-back."""

from __future__ import annotations

from dataclasses import dataclass

from ..codec import ids
from ..codec.keys import wrap_ki_opc

ADF_USIM_AID = bytes.fromhex("A0000000871002")
SELECT_ADF_USIM = bytes.fromhex("00A4040C07") + ADF_USIM_AID
# Reset values of the location files (TS 31.102 §4.2.17, §4.2.23, §4.2.91), as DESIGN §5.4 gives them.
LOCI_RESET = bytes.fromhex("FFFFFFFF" "FFFFFFFFFE" "FF" "01")
PSLOCI_RESET = bytes.fromhex("FFFFFFFF" "FFFFFF" "FFFFFFFFFEFF" "01")
EPSLOCI_RESET = bytes.fromhex("FF" * 12 + "FFFFFFFFFE" "01")
STORE_DATA = bytes.fromhex("80E28000")
COMMIT = bytes.fromhex("807E0000")
DGI_KEYS = b"\x81\x01"


def select_fid(fid: int) -> bytes:
    """SELECT by file id, no response data: `00 A4 00 0C 02 FID`."""
    return bytes([0x00, 0xA4, 0x00, 0x0C, 0x02, fid >> 8, fid & 0xFF])


def update_binary(data: bytes) -> bytes:
    return bytes([0x00, 0xD6, 0x00, 0x00, len(data)]) + data


def read_binary(length: int) -> bytes:
    return bytes([0x00, 0xB0, 0x00, 0x00, length])


def swapped_bcd(digits: str, size: int) -> bytes:
    """Nibble-swapped BCD, 'F'-padded to `size` bytes (EF_ICCID, dialling numbers): the codec's."""
    return ids.swapped_bcd(digits, size)


def ef_iccid(iccid: str) -> bytes:
    """EF_ICCID: 10 bytes, nibble-swapped BCD (TS 102 221 §13.2)."""
    return swapped_bcd(iccid, 10)


def ef_imsi(imsi: str) -> bytes:
    """EF_IMSI: length 08, then parity/type nibble 9 (odd digit count) and the digits (TS 31.102 §4.2.2)."""
    if len(imsi) != 15 or not imsi.isdigit():
        raise ValueError("IMSI must be 15 digits")
    return b"\x08" + swapped_bcd("9" + imsi, 8)


def ef_acc(imsi: str) -> bytes:
    """EF_ACC: the bit of access class = last IMSI digit (TS 31.102 §4.2.15; class n is bit n of 16)."""
    return (1 << int(imsi[-1])).to_bytes(2, "big")


def ef_msisdn(msisdn: str, alpha_len: int = 0) -> bytes:
    """EF_MSISDN record: alpha id of 'FF', BCD length, TON/NPI 81, 10 bytes BCD, CCP2, Ext5 (§4.2.26)."""
    bcd = swapped_bcd(msisdn, 10)
    used = (len(msisdn) + 1) // 2
    return b"\xFF" * alpha_len + bytes([used + 1, 0x81]) + bcd + b"\xFF\xFF"


@dataclass(frozen=True)
class Personalisation:
    """What a write puts on the card (the operational number's data)."""

    iccid: str
    imsi: str
    msisdn: str
    ki: bytes
    opc: bytes
    alpha_len: int = 0


@dataclass(frozen=True)
class Script:
    """The C-APDUs in order; `context[i]` = the SELECTs that make the file current before APDU i,
    so that a chunk resumed on a new channel re-selects first (every APDU is idempotent, §5.4.4);
    `expect` maps the index of a READ BINARY to the bytes it must return."""

    apdus: tuple[bytes, ...]
    context: tuple[tuple[bytes, ...], ...]
    expect: dict


def _steps(iccid: bytes, imsi: bytes, acc: bytes, msisdn: bytes, wrapped: bytes) -> list[tuple[bytes, str]]:
    """DESIGN §5.4 step 2, in order: (C-APDU, what it selects: 'mf', 'adf', 'ef' or '')."""
    return [
        (select_fid(0x3F00), "mf"), (select_fid(0x2FE2), "ef"), (update_binary(iccid), ""),
        (SELECT_ADF_USIM, "adf"),
        (select_fid(0x6F07), "ef"), (update_binary(imsi), ""),
        (select_fid(0x6F78), "ef"), (update_binary(acc), ""),
        (select_fid(0x6F40), "ef"), (bytes([0x00, 0xDC, 0x01, 0x04, len(msisdn)]) + msisdn, ""),
        (select_fid(0x6F7E), "ef"), (update_binary(LOCI_RESET), ""),
        (select_fid(0x6F73), "ef"), (update_binary(PSLOCI_RESET), ""),
        (select_fid(0x6FE3), "ef"), (update_binary(EPSLOCI_RESET), ""),
        (STORE_DATA + bytes([len(wrapped) + 3]) + DGI_KEYS + bytes([len(wrapped)]) + wrapped, ""),
        (select_fid(0x3F00), "mf"), (select_fid(0x2FE2), "ef"), (read_binary(10), ""),
        (SELECT_ADF_USIM, "adf"), (select_fid(0x6F07), "ef"), (read_binary(9), ""),
        (COMMIT, ""),
    ]


def _context(steps: list[tuple[bytes, str]]) -> tuple[tuple[bytes, ...], ...]:
    """Before each APDU, the SELECTs that make its file current (MF/ADF, then the EF)."""
    context = []
    base: tuple[bytes, ...] = ()
    current: tuple[bytes, ...] = ()
    for apdu, kind in steps:
        context.append(current)
        if kind == "mf" or kind == "adf":
            base = (apdu,)
            current = base
        elif kind == "ef":
            current = base + (apdu,)
    return tuple(context)


# Only the five data-bearing APDUs differ from card to card: the rest, and every APDU's file context,
# are the same for every write and are made once.
_SAMPLE = _steps(bytes(10), bytes(9), bytes(2), bytes(14), bytes(40))
_FIXED = tuple(apdu for apdu, _ in _SAMPLE)
CONTEXT = _context(_SAMPLE)
_ICCID, _IMSI, _ACC, _MSISDN, _KEYS = 2, 5, 7, 9, 16


def build(p: Personalisation, dek: bytes) -> Script:
    """The 24 C-APDUs of DESIGN §5.4 step 2 for one number, keys wrapped under K_DEK (RFC 3394)."""
    iccid_bytes, imsi_bytes = ef_iccid(p.iccid), ef_imsi(p.imsi)
    wrapped = wrap_ki_opc(dek, p.ki, p.opc)  # RFC 3394: 32 bytes in, 40 out
    msisdn = ef_msisdn(p.msisdn, p.alpha_len)
    apdus = list(_FIXED)
    apdus[_ICCID] = update_binary(iccid_bytes)
    apdus[_IMSI] = update_binary(imsi_bytes)
    apdus[_ACC] = update_binary(ef_acc(p.imsi))
    apdus[_MSISDN] = bytes([0x00, 0xDC, 0x01, 0x04, len(msisdn)]) + msisdn
    apdus[_KEYS] = STORE_DATA + bytes([len(wrapped) + 3]) + DGI_KEYS + bytes([len(wrapped)]) + wrapped
    return Script(tuple(apdus), CONTEXT, {19: iccid_bytes, 22: imsi_bytes})


def build_reference(p: Personalisation, dek: bytes) -> Script:
    """`build` step by step, every APDU and context made anew (what the tests hold `build` to)."""
    iccid_bytes, imsi_bytes = ef_iccid(p.iccid), ef_imsi(p.imsi)
    steps = _steps(iccid_bytes, imsi_bytes, ef_acc(p.imsi), ef_msisdn(p.msisdn, p.alpha_len),
                   wrap_ki_opc(dek, p.ki, p.opc))
    return Script(tuple(apdu for apdu, _ in steps), _context(steps), {19: iccid_bytes, 22: imsi_bytes})
