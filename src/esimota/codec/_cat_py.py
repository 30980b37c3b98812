"""Pure-Python twin of esimota._ext.cat: BIP proactive commands, terminal responses, envelopes."""

# Decoded form (DESIGN §4, §7): a read-only mapping (Fields) whose keys are the spec's element names
# in snake_case, in wire order, plus "command" (or "envelope") and "comprehension_required" (the
# names whose CR bit is set, a list), so that encoding it gives back the same bytes. Structured
# element values are Fields too; numbers are ints, addresses and APNs text. The encoders take any
# mapping (a Fields, or a dict built by hand or by Fields.to_dict()).

from __future__ import annotations

import ipaddress

from esimota.codec import _cat_tables as T
from esimota.codec._types import Fields as Fields, wrap  # Fields: the result type, re-exported
from esimota.codec._tlv_py import (_ctag, _ctlv_length, _length, _tag, ber_encode_length,
                                    ctlv_encode_length, ctlv_encode_tag)
from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError


def _bytes(buf) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


def _need(value, size, voff, tag):
    if len(value) != size:
        raise LengthError(f"element must be {size} bytes", voff, tag)


def _text_alpha(value, voff, tag):
    """Alpha identifier (TS 102 223 §8.2): GSM default alphabet, or '80' + UCS2."""
    if value[:1] == b"\x80":
        if len(value) % 2 != 1:
            raise BadValueError("UCS2 text of odd length", voff, tag)
        return value[1:].decode("utf-16-be", "surrogatepass")
    for i, b in enumerate(value):
        if b > 0x7F:
            raise BadValueError("not in the GSM default alphabet", voff + i, tag)
    return "".join([T.GSM_ALPHABET[b] for b in value])


def _text_string(value, voff, tag):
    """Text string (TS 102 223 §8.15): DCS 04 8-bit (as Latin-1), 08 UCS2, else raw hex."""
    if not value:
        return None
    dcs, body = value[0], value[1:]
    if dcs == 0x04:
        return wrap({"data_coding_scheme": dcs, "text": body.decode("latin-1")})
    if dcs == 0x08 and len(body) % 2 == 0:
        return wrap({"data_coding_scheme": dcs, "text": body.decode("utf-16-be", "surrogatepass")})
    return wrap({"data_coding_scheme": dcs, "data": body.hex()})


def _address(value, voff, tag):
    """Address (TS 102 223 §8.1): TON/NPI, then swapped BCD digits, 'F' filler last."""
    if not value:
        raise LengthError("empty address", voff, tag)
    digits = []
    n = len(value)
    for i in range(1, n):
        b = value[i]
        for nib, last in ((b & 0x0F, False), (b >> 4, i == n - 1)):
            if nib == 0x0F:
                if not last:
                    raise BadValueError("filler inside the number", voff + i, tag)
                continue
            digits.append(T.BCD_DIGITS[nib])
    return wrap({"ton_npi": value[0], "dialling_number": "".join(digits)})


def _other_address(value, voff, tag):
    """Other address (TS 102 223 §8.58): type, then IPv4 or IPv6 as text; empty = dynamic."""
    if not value:
        return None
    kind, raw = value[0], value[1:]
    size = T.ADDRESS_SIZES.get(kind)
    if size is None:
        return wrap({"type_of_address": kind, "address": raw.hex()})
    if len(raw) != size:
        raise LengthError("address of the wrong size", voff, tag)
    if size == 4:
        text = f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}"
    else:
        text = ipaddress.IPv6Address(raw).compressed
    return wrap({"type_of_address": T.ADDRESS_TYPES[kind], "address": text})


def _apn(value, voff, tag):
    """Network access name (TS 102 223 §8.61, TS 23.003 §9.1): length-prefixed labels -> dotted text."""
    labels = []
    pos, n = 0, len(value)
    while pos < n:
        size = value[pos]
        if size == 0:
            raise BadValueError("empty APN label", voff + pos, tag)
        if pos + 1 + size > n:
            raise LengthError("APN label past the end", voff + pos, tag)
        for i in range(pos + 1, pos + 1 + size):
            if value[i] <= 0x20 or value[i] >= 0x7F or value[i] == 0x2E:
                raise BadValueError("bad character in APN", voff + i, tag)
        labels.append(value[pos + 1:pos + 1 + size].decode("ascii"))
        pos += 1 + size
    return ".".join(labels)


def _small(value, voff, tag):
    """Fixed-size elements: command details, device identities, duration, icon, sizes, status."""
    if tag == 0x01:
        _need(value, 3, voff, tag)
        return wrap({"command_number": value[0], "type_of_command": value[1], "command_qualifier": value[2]})
    if tag == 0x02:
        _need(value, 2, voff, tag)
        return wrap({"source_device_identity": T.named(T.DEVICES, value[0]),
                "destination_device_identity": T.named(T.DEVICES, value[1])})
    if tag == 0x04:
        _need(value, 2, voff, tag)
        return wrap({"time_unit": value[0], "time_interval": value[1]})
    if tag == 0x1E:
        _need(value, 2, voff, tag)
        return wrap({"icon_qualifier": value[0], "icon_identifier": value[1]})
    if tag == 0x37:
        _need(value, 1, voff, tag)
        return value[0]
    if tag == 0x39:
        _need(value, 2, voff, tag)
        return (value[0] << 8) | value[1]
    _need(value, 2, voff, tag)  # 0x38 channel status (§8.56)
    return wrap({"channel_id": value[0] & 0x07, "link_established": bool(value[0] & 0x80),
            "status_bits": (value[0] >> 3) & 0x0F, "further_info": value[1]})


def _structured(value, voff, tag):
    """Variable-size structured elements: result, file list, event list, bearer, transport level."""
    if tag == 0x03:
        if not value:
            raise LengthError("empty result", voff, tag)
        return wrap({"general_result": value[0], "additional_information": value[1:].hex()})
    if tag == 0x12:
        if not value:
            raise LengthError("empty file list", voff, tag)
        return wrap({"number_of_files": value[0], "files": value[1:].hex()})
    if tag == 0x19:
        return [T.named(T.EVENTS, b) for b in value]
    if tag == 0x35:
        if not value:
            raise LengthError("empty bearer description", voff, tag)
        return wrap({"bearer_type": T.named(T.BEARERS, value[0]), "bearer_parameters": value[1:].hex()})
    _need(value, 3, voff, tag)  # 0x3C UICC/terminal interface transport level (§8.59)
    return wrap({"transport_protocol_type": T.named(T.TRANSPORTS, value[0]),
            "port_number": (value[1] << 8) | value[2]})


_SMALL = (0x01, 0x02, 0x04, 0x1E, 0x37, 0x38, 0x39)
_STRUCTURED = (0x03, 0x12, 0x19, 0x35, 0x3C)


def decode_value(tag, value, voff):
    """One element's value -> its named form (hex text for opaque or unknown elements)."""
    if tag in _SMALL:
        return _small(value, voff, tag)
    if tag in _STRUCTURED:
        return _structured(value, voff, tag)
    if tag == 0x05:
        return _text_alpha(value, voff, tag)
    if tag == 0x06:
        return _address(value, voff, tag)
    if tag == 0x0D:
        return _text_string(value, voff, tag)
    if tag == 0x3E:
        return _other_address(value, voff, tag)
    if tag == 0x47:
        return _apn(value, voff, tag)
    return value.hex()


def _key(tag, command, state, fields):
    """Element key: positional names in OPEN CHANNEL, _2/_3 suffixes for repeats."""
    name = T.element_name(tag)
    if command == T.OPEN_CHANNEL:
        if tag == T.TAG_TRANSPORT:
            state[0] = True
        elif tag == T.TAG_OTHER_ADDRESS:
            name = T.DESTINATION_ADDRESS if state[0] else T.LOCAL_ADDRESS
        elif tag == T.TAG_TEXT:
            name = T.USER_PASSWORD if state[1] else T.USER_LOGIN
            state[1] = True
    if name in fields:
        i = 2
        while f"{name}_{i}" in fields:
            i += 1
        name = f"{name}_{i}"
    return name


def decode_elements(buf, pos, end, out):
    """COMPREHENSION-TLVs of buf[pos:end] into `out` (named values); returns the CR names.

    The type of command, once Command details is read, selects positional names (OPEN CHANNEL).
    """
    cr_names = []
    state = [False, False]  # transport level seen, user login seen
    command = -1
    total = len(buf)
    while pos < end:
        tag, cr, pos = _ctag(buf, pos, end)
        length, vpos = _ctlv_length(buf, pos, end, tag)
        if vpos + length > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        name = _key(tag, command, state, out)
        value = decode_value(tag, buf[vpos:vpos + length], vpos)
        if tag == 0x01 and command < 0:
            command = value["type_of_command"]
        out[name] = value
        if cr:
            cr_names.append(name)
        pos = vpos + length
    return cr_names


def _outer(buf, expected, what):
    """Open the BER-TLV around a proactive command or envelope: (tag, content start, end)."""
    n = len(buf)
    tag, pos = _tag(buf, 0, n)
    if tag not in expected:
        raise BadTagError(f"not {what}", 0, tag)
    length, vpos = _length(buf, pos, n, tag)
    if length < 0:
        raise LengthError("indefinite length not allowed", pos, tag)
    if vpos + length > n:
        raise TruncatedError("value truncated", pos, tag)
    if vpos + length < n:
        raise LengthError(f"bytes after the {what}", vpos + length, tag)
    return tag, vpos, vpos + length


def _with_command(buf, pos, end):
    out = {"command": None}
    cr = decode_elements(buf, pos, end, out)
    details = out.get("command_details")
    if details is None or next(iter(out)) != "command" or list(out)[1] != "command_details":
        raise BadTagError("command details must come first", pos, 0x01)
    out["command"] = T.named(T.COMMAND_TYPES, details["type_of_command"])
    out["comprehension_required"] = cr
    return wrap(out)


def decode_proactive(buf):
    """Proactive command 'D0' (TS 102 223 §6.6) -> named fields."""
    buf = _bytes(buf)
    _, pos, end = _outer(buf, (T.PROACTIVE_TAG,), "a proactive command")
    return _with_command(buf, pos, end)


def decode_terminal_response(buf):
    """TERMINAL RESPONSE (TS 102 223 §6.8): bare COMPREHENSION-TLVs -> named fields."""
    buf = _bytes(buf)
    return _with_command(buf, 0, len(buf))


def decode_envelope(buf):
    """ENVELOPE 'D6' event download or 'D1' SMS-PP download (TS 102 223 §7) -> named fields."""
    buf = _bytes(buf)
    tag, pos, end = _outer(buf, tuple(T.ENVELOPES), "an envelope")
    out = {"envelope": T.ENVELOPES[tag]}
    out["comprehension_required"] = decode_elements(buf, pos, end, out)
    return wrap(out)


# --- encoding ----------------------------------------------------------------------------------------

def _enc_small(tag, v):
    if tag == 0x01:
        return bytes((v["command_number"], v["type_of_command"], v["command_qualifier"]))
    if tag == 0x02:
        return bytes((T.code_of(T.DEVICE_CODES, v["source_device_identity"], "device"),
                      T.code_of(T.DEVICE_CODES, v["destination_device_identity"], "device")))
    if tag == 0x04:
        return bytes((v["time_unit"], v["time_interval"]))
    if tag == 0x1E:
        return bytes((v["icon_qualifier"], v["icon_identifier"]))
    if tag == 0x37:
        return bytes((v,))
    if tag == 0x39:
        return v.to_bytes(2, "big")
    if not 0 <= v["status_bits"] <= 15 or not 0 <= v["channel_id"] <= 7:
        raise ValueError("channel status bits out of range")
    b0 = (0x80 if v["link_established"] else 0) | (v["status_bits"] << 3) | v["channel_id"]
    return bytes((b0, v["further_info"]))


def _enc_structured(tag, v):
    if tag == 0x03:
        return bytes((v["general_result"],)) + bytes.fromhex(v["additional_information"])
    if tag == 0x12:
        return bytes((v["number_of_files"],)) + bytes.fromhex(v["files"])
    if tag == 0x19:
        return bytes(T.code_of(T.EVENT_CODES, e, "event") for e in v)
    if tag == 0x35:
        return bytes((T.code_of(T.BEARER_CODES, v["bearer_type"], "bearer type"),)) + \
            bytes.fromhex(v["bearer_parameters"])
    return bytes((T.code_of(T.TRANSPORT_CODES, v["transport_protocol_type"], "transport"),)) + \
        v["port_number"].to_bytes(2, "big")


def _enc_text(tag, v):
    if tag == 0x05:
        if all(c in T.GSM_CODES for c in v):
            return bytes(T.GSM_CODES[c] for c in v)
        return b"\x80" + v.encode("utf-16-be", "surrogatepass")
    if v is None:
        return b""
    dcs = v["data_coding_scheme"]
    if "data" in v:
        return bytes((dcs,)) + bytes.fromhex(v["data"])
    codec = "latin-1" if dcs == 0x04 else "utf-16-be"
    if dcs not in (0x04, 0x08):
        raise ValueError("text needs DCS 04 or 08")
    return bytes((dcs,)) + v["text"].encode(codec, "surrogatepass")


def _enc_address(tag, v):
    if tag == 0x06:
        nibbles = [T.BCD_DIGITS.index(d) for d in v["dialling_number"]]
        if len(nibbles) % 2:
            nibbles.append(0x0F)
        return bytes((v["ton_npi"],)) + bytes(nibbles[i] | (nibbles[i + 1] << 4)
                                              for i in range(0, len(nibbles), 2))
    if tag == 0x47:
        out = bytearray()
        for label in v.split(".") if v else []:
            raw = label.encode("ascii")
            if not raw or len(raw) > 255:
                raise ValueError("bad APN label")
            out.append(len(raw))
            out += raw
        return bytes(out)
    if v is None:
        return b""
    kind = T.code_of(T.ADDRESS_CODES, v["type_of_address"], "type of address")
    if kind == 0x21:
        return bytes((kind,)) + ipaddress.IPv4Address(v["address"]).packed
    if kind == 0x57:
        return bytes((kind,)) + ipaddress.IPv6Address(v["address"]).packed
    return bytes((kind,)) + bytes.fromhex(v["address"])


def encode_value(tag, value):
    """Inverse of `decode_value`."""
    if tag in _SMALL:
        return _enc_small(tag, value)
    if tag in _STRUCTURED:
        return _enc_structured(tag, value)
    if tag in (0x05, 0x0D):
        return _enc_text(tag, value)
    if tag in (0x06, 0x3E, 0x47):
        return _enc_address(tag, value)
    return bytes.fromhex(value)


def encode_elements(fields):
    """The COMPREHENSION-TLVs of decoded fields (any mapping), in its key order (CR from comprehension_required)."""
    cr_names = fields.get("comprehension_required")
    out = bytearray()
    for name, value in fields.items():
        if name in T.META_KEYS:
            continue
        tag = None
        try:
            tag = T.element_tag(name)
            raw = encode_value(tag, value)
            out += ctlv_encode_tag(tag, True if cr_names is None else name in cr_names)
        except BadValueError:
            raise
        except (ValueError, KeyError, TypeError, OverflowError, AttributeError, IndexError) as exc:
            raise BadValueError(f"cannot encode {name}: {exc}", -1, tag) from None
        out += ctlv_encode_length(len(raw))
        out += raw
    return out


def encode_proactive(fields):
    """Inverse of `decode_proactive`."""
    body = encode_elements(fields)
    return bytes((T.PROACTIVE_TAG,)) + ber_encode_length(len(body)) + bytes(body)


def encode_terminal_response(fields):
    """Inverse of `decode_terminal_response`."""
    return bytes(encode_elements(fields))


def encode_envelope(fields):
    """Inverse of `decode_envelope`."""
    tag = T.ENVELOPE_CODES.get(fields.get("envelope"))
    if tag is None:
        raise BadValueError("unknown envelope", -1, None)
    body = encode_elements(fields)
    return bytes((tag,)) + ber_encode_length(len(body)) + bytes(body)
