"""Recognise and decode any codec input into JSON-ready named fields (the engine of `esimota decode`).

Public API:
    describe(raw, kind=None, kic=None, kid=None) -> dict     {"kind": ..., fields...}
    KINDS: the accepted values of `kind`
"""

from __future__ import annotations

from collections.abc import Mapping

from esimota.codec import apdu, bcp, cat, frames, packet, script, sms, tlv
from esimota.errors import CodecError, SecurityError, TruncatedError


def _json(value):
    """bytes -> hex, tuples/named tuples -> lists/dicts, mappings (CAT Fields) -> dicts, recursively."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, tuple) and hasattr(value, "_asdict"):
        return {k: _json(v) for k, v in value._asdict().items()}
    if isinstance(value, (list, tuple)):
        return [_json(v) for v in value]
    if isinstance(value, Mapping):
        return {k: _json(v) for k, v in value.items()}
    return value


def _secured(data: bytes) -> dict:
    """Secured data of a command packet: an expanded script, else compact C-APDUs."""
    if data[:1] in (b"\xaa", b"\xae"):
        return {"command_script": _script(data)}
    return {"compact_apdus": [a.hex() for a in script.parse_compact(data)]}


def _script(raw: bytes) -> list:
    names = {0x22: "c_apdu", 0x81: "immediate_action", 0x82: "error_action"}
    return [{names[t]: v.hex()} for t, v in script.parse_command_script(raw)]


def _response_script(raw: bytes) -> dict:
    count, rapdus = script.parse_response_script(raw)
    return {"number_of_executed_c_apdus": count,
            "r_apdus": [{"data": d.hex(), "sw": f"{sw:04X}"} for d, sw in map(apdu.rapdu_parse, rapdus)]}


def _command_packet(raw: bytes, kic, kid) -> dict:
    if kic is None or kid is None:
        return {"header": _json(packet.peek_command(raw)), "note": "give --kic and --kid to open it"}
    pkt = packet.unwrap_command(kic, kid, raw)
    out = _json(pkt)
    out.update(_secured(pkt.secured_data))
    return out


def _response_packet(raw: bytes, kic, kid, udh=b"") -> dict:
    if kic is None or kid is None:
        return {"rpl": (raw[0] << 8) | raw[1], "rhl": raw[2], "tar": raw[3:6].hex(),
                "note": "give --kic and --kid to open it"}
    r = _sms_por(raw, kic, kid, udh) if udh else packet.unwrap_response(kic, kid, raw)
    out = _json(r)
    out["status_name"] = packet.STATUS.get(r.status, "unknown")
    data = r.additional_data
    if data[:1] in (b"\xab", b"\xaf"):
        out["response_script"] = _response_script(data)
    elif len(data) >= 3:
        count, sw, last = script.parse_compact_response(data)
        out["compact_response"] = {"number_of_commands": count, "last_sw": f"{sw:04X}", "last_data": last.hex()}
    return out


#: SMS PoRs do not carry their SPI: (SPI second byte, KIc, KID) to try, ciphered+CC first
_POR_GUESSES = ((0x39, 0x12, 0x12), (0x39, 0x15, 0x15), (0x09, 0x12, 0x12), (0x09, 0x15, 0x15),
                (0x01, 0x12, 0x12))


def _sms_por(raw: bytes, kic, kid, udh: bytes):
    """Open an SMS-PP PoR (CC over the UDH too) with the first security setting that verifies."""
    error = None
    for spi2, kic_byte, kid_byte in _POR_GUESSES:
        try:
            return packet.unwrap_response(kic, kid, raw, spi2, kic_byte, kid_byte, udh)
        except CodecError as exc:  # a CC that fails says more than a layout that does not fit
            if error is None or (isinstance(exc, SecurityError) and not isinstance(error, SecurityError)):
                error = exc
    raise error


def _frame(raw: bytes, kic, kid) -> dict:
    ftype, fields = frames.decode_frame(raw)
    out = {"type": bcp.FRAME_NAMES[ftype]}
    if ftype in (bcp.HELLO, bcp.REPORT):
        out.update(_json(fields))
        if kid is not None:
            frames.verify_frame_mac(kid, raw)
            out["mac_verified"] = True
    elif ftype == bcp.COMMAND:
        out["packet"] = _command_packet(fields["packet"], kic, kid)
    elif ftype == bcp.RESPONSE:
        out["packet"] = _response_packet(fields["packet"], kic, kid)
    else:
        out.update(fields)
    return out


def _sms(raw: bytes, kic, kid) -> dict:
    fields = sms.parse_sms_deliver(raw, strict=False)
    out = _json({k: v for k, v in fields.items() if k != "user_data"})
    if fields["udh"][1:2] == b"\x70":
        out["command_packet"] = _command_packet(fields["user_data"], kic, kid)
    return out


def _ber(raw: bytes) -> list:
    def node(tag, value):
        return {"tag": f"{tag:02X}", "value": [node(*c) for c in value] if isinstance(value, list) else value.hex()}
    return [node(t, v) for t, v in tlv.ber_decode(raw)]


def _capdu(raw: bytes) -> dict:
    cla, ins, p1, p2, data, le, ext = apdu.apdu_parse(raw)
    return {"cla": cla, "ins": ins, "p1": p1, "p2": p2, "data": data.hex(), "le": le,
            "extended": ext, "case": apdu.apdu_case(data, le)}


DECODERS = {
    "frame": _frame,
    "proactive_command": lambda raw, kic, kid: _json(cat.decode_proactive(raw)),
    "envelope": lambda raw, kic, kid: _json(cat.decode_envelope(raw)),
    "command_script": lambda raw, kic, kid: {"items": _script(raw)},
    "response_script": lambda raw, kic, kid: _response_script(raw),
    "command_packet": _command_packet,
    "response_packet": lambda raw, kic, kid: _response_packet(raw, kic, kid),
    "sms_por": lambda raw, kic, kid: _response_packet(raw[3:], kic, kid, raw[:3]),
    "terminal_response": lambda raw, kic, kid: _json(cat.decode_terminal_response(raw)),
    "sms_deliver": _sms,
    "ber_tlv": lambda raw, kic, kid: {"tlvs": _ber(raw)},
    "c_apdu": lambda raw, kic, kid: _capdu(raw),
    "r_apdu": lambda raw, kic, kid: _json(dict(zip(("data", "sw"), apdu.rapdu_parse(raw)))),
}
KINDS = tuple(DECODERS)


def _guesses(raw: bytes) -> list[str]:
    """Kinds worth trying for these bytes, most specific first."""
    first = raw[:1]
    n = len(raw)
    guesses = []
    if n >= 3 and (raw[0] << 8 | raw[1]) == n - 2 and raw[2] in (1, 2, 3, 4, 5):
        guesses.append("frame")
    guesses += {b"\xd0": ["proactive_command"], b"\xd1": ["envelope"], b"\xd6": ["envelope"],
                b"\xaa": ["command_script"], b"\xae": ["command_script"],
                b"\xab": ["response_script"], b"\xaf": ["response_script"]}.get(first, [])
    if n >= 16 and (raw[0] << 8 | raw[1]) == n - 2 and raw[2] in (13, 21):
        guesses.append("command_packet")
    if n >= 13 and (raw[0] << 8 | raw[1]) == n - 2 and raw[2] in (10, 18):
        guesses.append("response_packet")
    if raw[:3] == b"\x02\x71\x00":
        guesses.append("sms_por")
    if raw[:1] in (b"\x81", b"\x01") and raw[1:2] == b"\x03":
        guesses.append("terminal_response")
    if first and raw[0] & 0x43 == 0x40:
        guesses.append("sms_deliver")
    return guesses + ["ber_tlv", "c_apdu"]


# Structures whose first byte names them (TS 102 223 proactive command 'D0', envelopes 'D1'/'D6',
# TS 102 226 scripts 'AA'/'AE'/'AB'/'AF'): bytes that start so and are cut short are that, truncated.
_NAMED = {0xD0: "proactive_command", 0xD1: "envelope", 0xD6: "envelope", 0xAA: "command_script",
          0xAE: "command_script", 0xAB: "response_script", 0xAF: "response_script"}


def _cut_frame(raw: bytes) -> bool:
    """A BCP/1 frame header (DESIGN §5.1) whose LEN promises more than there is, its body starting as its
    TYPE's does: HELLO/REPORT with 'C0', CLOSE of at most 4 bytes, COMMAND/RESPONSE whose CPL agrees."""
    n = len(raw)
    if n < 3 or raw[2] not in (1, 2, 3, 4, 5) or (raw[0] << 8 | raw[1]) <= n - 2:
        return False
    length, ftype = raw[0] << 8 | raw[1], raw[2]
    if ftype in (bcp.HELLO, bcp.REPORT):
        return n == 3 or raw[3] == 0xC0
    if ftype == bcp.CLOSE:
        return length <= 4
    return n >= 5 and (raw[3] << 8 | raw[4]) == length - 3


def _claimed(raw: bytes) -> str | None:
    """The kind these bytes name by their first byte or their frame header, if any."""
    if not raw:
        return None
    return _NAMED.get(raw[0]) or ("frame" if _cut_frame(raw) else None)


def _short_tlv(raw: bytes) -> int | None:
    """Bytes a TLV's length field promises beyond what is there (the length byte read as it stands
    when its form is not a valid BER one: 'FF' promises 255), or None when it is not cut short."""
    n, first = len(raw), raw[1] if len(raw) > 1 else None
    if first is None:
        return 1
    if 0x81 <= first <= 0x83:
        k = first & 0x7F
        if n < 2 + k:
            return 2 + k - n
        need = 2 + k + int.from_bytes(raw[2:2 + k], "big")
    elif first == 0x80:  # indefinite ('AE'/'AF'): the decoder says whether the end-of-contents came
        return None
    else:
        need = 2 + first
    return need - n if need > n else None


def _truncated(raw: bytes, kind: str, exc: CodecError) -> CodecError:
    """The error to answer for a structure the bytes name: truncated where they end, if they do."""
    if isinstance(exc, TruncatedError):
        return exc
    missing = 1 if kind == "frame" else _short_tlv(raw)
    if missing is None:
        return exc
    return TruncatedError(f"{kind} truncated: {missing} more byte(s) declared than the {len(raw)} given",
                          len(raw), raw[0])


def describe(raw: bytes, kind: str | None = None, kic: bytes | None = None, kid: bytes | None = None) -> dict:
    """Decode `raw` as `kind`, or as the first kind that decodes it; CodecError if none does.

    Bytes that name a structure by their first byte (or a frame header) and are cut short are reported
    truncated there, never read as something else (`D0FF8103` is a proactive command cut short).
    """
    if kind is not None:
        return {"kind": kind, **DECODERS[kind](raw, kic, kid)}
    first_error = None
    claimed = _claimed(raw)
    if claimed is not None:
        try:
            return {"kind": claimed, **DECODERS[claimed](raw, kic, kid)}
        except SecurityError:
            raise
        except CodecError as exc:
            first_error = _truncated(raw, claimed, exc)
            if isinstance(first_error, TruncatedError):
                raise first_error from exc
    for guess in _guesses(raw):
        if guess == claimed:
            continue
        try:
            return {"kind": guess, **DECODERS[guess](raw, kic, kid)}
        except SecurityError:
            raise  # it was that kind, and it does not verify: say so, do not guess on
        except CodecError as exc:
            first_error = first_error or exc
    raise first_error or CodecError("nothing to decode", 0)
