"""Pure-Python twin of esimota._ext.script: TS 102 226 remote APDU scripts, expanded and compact."""

from __future__ import annotations

from esimota.codec._tlv_py import _length, _tag, ber_encode_length
from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

#: TS 102 226 §5.2.2.1 command scripting template, definite / indefinite length
CMD_TEMPLATE, CMD_TEMPLATE_INDEF = 0xAA, 0xAE
#: TS 102 226 §5.2.2.2 response scripting template, definite / indefinite length
RSP_TEMPLATE, RSP_TEMPLATE_INDEF = 0xAB, 0xAF
#: C-APDU, immediate action, error action; R-APDU, number of executed C-APDUs
TAG_CAPDU, TAG_IMMEDIATE, TAG_ERROR_ACTION, TAG_RAPDU, TAG_COUNT = 0x22, 0x81, 0x82, 0x23, 0x80
#: INS of case 2 commands: in the compact format their P3 is Le, not Lc (TS 102 226 §5.2.1)
CASE2_INS = (0xB0, 0xB2, 0xC0, 0xCA, 0xF2, 0x84, 0x12)


def _bytes(buf) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


def _template(buf, definite, indefinite):
    """Open the single outer template: (tag, start of content, end of content, indefinite?)."""
    n = len(buf)
    tag, pos = _tag(buf, 0, n)
    if tag != definite and tag != indefinite:
        raise BadTagError("not a scripting template", 0, tag)
    length, vpos = _length(buf, pos, n, tag)
    if length < 0:
        if tag != indefinite:
            raise LengthError("indefinite length not allowed", pos, tag)
        return tag, vpos, n, True
    if vpos + length > n:
        raise TruncatedError("value truncated", pos, tag)
    if vpos + length < n:
        raise LengthError("bytes after the script", vpos + length, tag)
    return tag, vpos, vpos + length, False


def _items(buf, pos, end, indef, outer, allowed):
    """The TLVs inside a template, [(tag, value)], checking tags and the end-of-contents."""
    items = []
    while True:
        if indef:
            if pos + 1 < end and buf[pos] == 0 and buf[pos + 1] == 0:
                if pos + 2 != end:
                    raise LengthError("bytes after the script", pos + 2, outer)
                return items
            if pos >= end or (pos + 1 >= end and buf[pos] == 0):
                raise TruncatedError("end-of-contents missing", end, outer)
        elif pos >= end:
            return items
        start = pos
        tag, pos = _tag(buf, pos, end)
        if tag not in allowed:
            raise BadTagError("unexpected tag in script", start, tag)
        length, vpos = _length(buf, pos, end, tag)
        if length < 0:
            raise LengthError("indefinite length not allowed", pos, tag)
        if vpos + length > end:
            if end == len(buf):
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        items.append((tag, buf[vpos:vpos + length]))
        pos = vpos + length


def parse_command_script(buf):
    """Expanded command script 'AA'/'AE' -> [(tag, value)] with tags 22 C-APDU, 81, 82."""
    buf = _bytes(buf)
    tag, pos, end, indef = _template(buf, CMD_TEMPLATE, CMD_TEMPLATE_INDEF)
    return _items(buf, pos, end, indef, tag, (TAG_CAPDU, TAG_IMMEDIATE, TAG_ERROR_ACTION))


def _tlv(out, tag, value):
    out.append(tag)
    out += ber_encode_length(len(value))
    out += value


def build_command_script(items, indefinite=False):
    """Encode C-APDUs (bytes) or (tag, value) pairs into 'AA' (or 'AE' with `indefinite`)."""
    content = bytearray()
    for item in items:
        if isinstance(item, tuple):
            _tlv(content, item[0], item[1])
        else:
            _tlv(content, TAG_CAPDU, item)
    return _wrap(CMD_TEMPLATE_INDEF if indefinite else CMD_TEMPLATE, content, indefinite)


def _wrap(tag, content, indefinite):
    out = bytearray((tag,))
    if indefinite:
        out.append(0x80)
        out += content
        out += b"\x00\x00"
    else:
        out += ber_encode_length(len(content))
        out += content
    return bytes(out)


def parse_response_script(buf):
    """Expanded response script 'AB'/'AF' -> (number of executed C-APDUs, [R-APDU bytes])."""
    buf = _bytes(buf)
    tag, pos, end, indef = _template(buf, RSP_TEMPLATE, RSP_TEMPLATE_INDEF)
    items = _items(buf, pos, end, indef, tag, (TAG_COUNT, TAG_RAPDU))
    if not items or items[0][0] != TAG_COUNT:
        raise BadTagError("number of executed C-APDUs missing", pos, TAG_COUNT)
    if len(items[0][1]) != 1:
        raise LengthError("number of executed C-APDUs is not 1 byte", pos + 1, TAG_COUNT)
    rapdus = []
    for t, v in items[1:]:
        if t != TAG_RAPDU:
            raise BadTagError("repeated number of executed C-APDUs", pos, t)
        rapdus.append(v)
    return items[0][1][0], rapdus


def build_response_script(count, rapdus, indefinite=False):
    """Encode 'AB' (or 'AF'): '80' count, then one '23' per R-APDU."""
    if not 0 <= count <= 255:
        raise BadValueError("number of executed C-APDUs out of range", -1, TAG_COUNT)
    content = bytearray((TAG_COUNT, 1, count))
    for r in rapdus:
        _tlv(content, TAG_RAPDU, r)
    return _wrap(RSP_TEMPLATE_INDEF if indefinite else RSP_TEMPLATE, content, indefinite)


def _compact_one(buf, pos, n):
    """Length of the compact C-APDU at pos (header + P3 + data)."""
    if pos + 5 > n:
        if pos + 4 == n:
            return 4  # a trailing case 1 command
        raise TruncatedError("C-APDU header truncated", pos)
    if buf[pos + 1] in CASE2_INS:
        return 5
    lc = buf[pos + 4]
    if pos + 5 + lc > n:
        raise TruncatedError("C-APDU data truncated", pos + 4)
    return 5 + lc


def parse_compact(buf):
    """Compact format (TS 102 226 §5.2.1): concatenated C-APDUs -> [C-APDU bytes]."""
    buf = _bytes(buf)
    n = len(buf)
    out = []
    pos = 0
    while pos < n:
        size = _compact_one(buf, pos, n)
        out.append(buf[pos:pos + size])
        pos += size
    return out


def build_compact(apdus):
    """Concatenate C-APDUs (compact format)."""
    return b"".join(bytes(a) for a in apdus)


def parse_compact_response(buf):
    """Compact response (TS 102 226 §5.1.2): (number of commands, last SW, last response data)."""
    buf = _bytes(buf)
    if len(buf) < 3:
        raise TruncatedError("compact response shorter than 3 bytes", len(buf))
    return buf[0], (buf[1] << 8) | buf[2], buf[3:]


def build_compact_response(count, sw, data=b""):
    """Inverse of `parse_compact_response`."""
    if not 0 <= count <= 255 or not 0 <= sw <= 0xFFFF:
        raise BadValueError("count or status word out of range", -1, None)
    return bytes((count, sw >> 8, sw & 0xFF)) + bytes(data)


def _tlv_size(n):
    return 1 + len(ber_encode_length(n)) + n


def _wrapped(content, indefinite):
    return 1 + (1 + content + 2 if indefinite else len(ber_encode_length(content)) + content)


def script_size(apdus, indefinite=False):
    """Encoded size of `build_command_script(apdus, indefinite)` without building it."""
    return _wrapped(sum(_tlv_size(len(a)) for a in apdus), indefinite)


def chunk_apdus(apdus, budget, indefinite=False):
    """Split C-APDUs into consecutive groups whose command script fits `budget` bytes (§5.4 step 2).

    Splits only between C-APDUs; an APDU that cannot fit alone is a BadValueError.
    """
    chunks, current, content = [], [], 0
    for i, a in enumerate(apdus):
        size = _tlv_size(len(a))
        if _wrapped(content + size, indefinite) > budget:
            if not current or _wrapped(size, indefinite) > budget:
                raise BadValueError(f"C-APDU {i} does not fit the buffer", -1, TAG_CAPDU)
            chunks.append(current)
            current, content = [], 0
        current.append(a)
        content += size
    if current:
        chunks.append(current)
    return chunks
