"""What the channel protocol needs of the codec (DESIGN §5.1–§5.3), for the multiplexer and the simulator.

The byte work is the codec's (esimota.codec, compiled with a pure twin); this module only fixes the
BCP/1 choices: TAR of the write applet, the 'AA'/'AB' expanded scripts, EID/ICCID/IMEI packing.
"""

from __future__ import annotations

from ..codec import frames, ids, packet, script
from ..codec.bcp import RESPONSE, TAR_WRITE_APPLET as TAR  # frame types, CLOSE reasons: codec/bcp.py
from ..errors import CodecError

# COMMAND packet around its script: CPL..CC (24) + 'AA' tag and length (≤ 4) + padding (≤ 15)
COMMAND_OVERHEAD = 24 + 4 + 15
OK, BAD_SW, MISMATCH = 0, 1, 2

__all__ = ["CodecError", "OK", "BAD_SW", "MISMATCH", "TAR", "COMMAND_OVERHEAD"]


def apdu_tlv_size(apdu: bytes) -> int:
    """Size of one C-APDU as a '22' TLV in an expanded script (BER length)."""
    n = len(apdu)
    return 1 + (1 if n < 0x80 else 2 if n < 0x100 else 3) + n


def script_size(apdus) -> int:
    return sum(apdu_tlv_size(a) for a in apdus)


# -- the platform's side ------------------------------------------------------------------------

def parse_card_frame(frame: bytes) -> dict:
    """A HELLO or REPORT (whole frame, LEN first) -> its fields, `eid` as the 32-digit text.

    The MAC is not checked here: K_ID comes from the chip's batch, which the service looks up.
    """
    ftype, fields = frames.decode_frame(frame)
    fields = dict(fields)
    fields["type"] = ftype
    fields["eid"] = bytes(fields["eid"]).hex().upper()
    fields["iccid"] = ef_iccid_text(fields["iccid"])
    imei = fields.get("imei")
    fields["imei"] = bytes(imei).hex().upper().rstrip("F") if imei else None
    return fields


def verify_mac(kid: bytes, frame: bytes) -> bool:
    try:
        frames.verify_frame_mac(kid, frame)
        return True
    except CodecError:
        return False


def command_packet(kic: bytes, kid: bytes, cntr: int, apdus) -> bytes:
    """A TS 102 225 command packet whose secured data is the expanded script 'AA' of `apdus`."""
    return packet.wrap_command(kic, kid, TAR, cntr, script.build_command_script(apdus))


def parse_response(kic: bytes, kid: bytes, frame: bytes, cntr: int):
    """A RESPONSE frame -> the R-APDUs, or None when the card's status is not 00 (e.g. CNTR low).

    CC, TAR and CNTR must match the command it answers (DESIGN §5.3).
    """
    resp = packet.unwrap_response(kic, kid, memoryview(frame)[3:], tar=TAR, cntr=cntr)
    if resp.status != 0:
        return None
    count, rapdus = script.parse_response_script(resp.additional_data)
    if count != len(rapdus):
        raise CodecError("number of executed C-APDUs disagrees with the R-APDUs", 3, 0x80)
    return rapdus


def _sw_ok(r: bytes) -> bool:
    return len(r) >= 2 and (r[-2] == 0x91 or (r[-2] == 0x90 and r[-1] == 0x00))


def judge(rapdus, skip: int, start: int, end: int, expect: dict) -> int:
    """OK when every C-APDU of the chunk ran with 9000/91xx and every read-back matches (§5.4 step 3)."""
    if rapdus is None or len(rapdus) != skip + end - start:
        return BAD_SW
    for r in rapdus:
        if not _sw_ok(r):
            return BAD_SW
    for i in range(start, end):
        want = expect.get(i)
        if want is not None and rapdus[skip + i - start][:-2] != want:
            return MISMATCH
    return OK


# -- the card's side (simulator) ---------------------------------------------------------------

def ef_iccid_text(ef: bytes) -> str:
    """EF_ICCID (nibble-swapped BCD) -> the ICCID text, '' for an erased file."""
    return ids.swapped_bcd_digits(ef)


def _ef_iccid(iccid: str) -> bytes:
    return ids.swapped_bcd(iccid, 10)


def hello_frame(kid: bytes, eid: str, iccid: str, imei: str | None, counter: int, buffer_size: int,
                reason: int) -> bytes:
    packed_imei = bytes.fromhex(imei + "F") if imei else None
    return frames.encode_hello(kid, bytes.fromhex(eid), _ef_iccid(iccid), counter, buffer_size, reason,
                               imei=packed_imei)


def report_frame(kid: bytes, eid: str, iccid: str, counter: int, result: int, diagnostic: str | None = None) -> bytes:
    return frames.encode_report(kid, bytes.fromhex(eid), _ef_iccid(iccid), counter, result, diagnostic)


def open_command(kic: bytes, kid: bytes, body: bytes):
    """The card opens a COMMAND's packet -> (TAR, CNTR, C-APDUs)."""
    cmd = packet.unwrap_command(kic, kid, body)
    items = script.parse_command_script(cmd.secured_data)
    return bytes(cmd.tar), cmd.cntr, [bytes(v) for t, v in items if t == 0x22]


def response_frame(kic: bytes, kid: bytes, tar: bytes, cntr: int, status: int, rapdus) -> bytes:
    data = script.build_response_script(len(rapdus), rapdus) if status == 0 else b""
    return frames.encode_frame(RESPONSE, packet.wrap_response(kic, kid, tar, cntr, status, data))
