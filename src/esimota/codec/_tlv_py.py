"""Pure-Python twin of esimota._ext.tlv: BER-TLV, COMPREHENSION-TLV, COMPACT-TLV, DGI lengths, APDUs."""

# Every function here has the same signature and raises the same errors (message, offset, tag)
# as its compiled twin in ext/esimota/_ext/tlv.pyx; the differential tests hold them to it.

from __future__ import annotations

from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

#: deepest constructed nesting accepted (a nesting bomb is refused, not followed)
MAX_DEPTH = 16
#: constructed templates that may use the indefinite length form (TS 102 226 §5.2.2: 'AE', 'AF')
INDEFINITE_TAGS = (0xAE, 0xAF)
#: tags with the constructed bit whose value is opaque: C-APDU '22' and R-APDU '23' (TS 102 226 §5.2.2)
OPAQUE_TAGS = (0x22, 0x23)


def _bytes(buf) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


# --- BER-TLV (ISO/IEC 7816-4 §5.2, GlobalPlatform) ----------------------------------------------

def _tag(buf, offset, end):
    if offset >= end:
        raise TruncatedError("tag missing", offset)
    first = buf[offset]
    if first == 0x00 or first == 0xFF:
        raise BadTagError("invalid tag byte", offset)
    tag = first
    pos = offset + 1
    if first & 0x1F == 0x1F:  # multi-byte tag: subsequent bytes while bit 8 is set
        while True:
            if pos >= end:
                raise TruncatedError("tag truncated", offset)
            if pos - offset >= 4:
                raise BadTagError("tag longer than 4 bytes", offset)
            b = buf[pos]
            tag = (tag << 8) | b
            pos += 1
            if not b & 0x80:
                break
    return tag, pos


def _length(buf, offset, end, tag):
    if offset >= end:
        raise TruncatedError("length missing", offset, tag)
    b = buf[offset]
    if b < 0x80:
        return b, offset + 1
    if b == 0x80:
        return -1, offset + 1
    n = b & 0x7F
    if n > 4:
        raise LengthError("bad length form", offset, tag)
    if offset + 1 + n > end:
        raise TruncatedError("length truncated", offset, tag)
    length = 0
    for i in range(offset + 1, offset + 1 + n):
        length = (length << 8) | buf[i]
    return length, offset + 1 + n


def ber_read_tag(buf, offset=0):
    """Read one BER tag at `offset`: (tag as the integer of its bytes, offset after it)."""
    buf = _bytes(buf)
    return _tag(buf, offset, len(buf))


def ber_read_length(buf, offset=0, tag=None):
    """Read one BER length at `offset`: (length or -1 for the indefinite form, offset after it)."""
    buf = _bytes(buf)
    return _length(buf, offset, len(buf), tag)


def ber_encode_tag(tag):
    """Bytes of a tag given as the integer of its bytes (0x9F70 -> b'\\x9f\\x70')."""
    if tag <= 0 or tag > 0xFFFFFFFF:
        raise BadValueError("tag out of range", -1, None)
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


def ber_encode_length(length):
    """Shortest definite BER length (ISO/IEC 7816-4 §5.2.2.2): 1 byte below 128, else 81..84."""
    if length < 0 or length > 0xFFFFFFFF:
        raise BadValueError("length out of range", -1, None)
    if length < 0x80:
        return bytes((length,))
    n = (length.bit_length() + 7) // 8
    return bytes((0x80 | n,)) + length.to_bytes(n, "big")


def _is_constructed(tag):
    if tag in OPAQUE_TAGS:
        return False
    first = tag
    while first > 0xFF:
        first >>= 8
    return bool(first & 0x20)


def ber_decode_one(buf, offset=0):
    """One TLV at `offset`, value not decoded: (tag, value bytes, offset after it)."""
    buf = _bytes(buf)
    tag, pos = _tag(buf, offset, len(buf))
    length, vpos = _length(buf, pos, len(buf), tag)
    if length < 0:
        raise LengthError("indefinite length not allowed here", pos, tag)
    if vpos + length > len(buf):
        raise TruncatedError("value truncated", pos, tag)
    return tag, buf[vpos:vpos + length], vpos + length


def _ber_items(buf, pos, end, depth, max_depth, indefinite, outer_tag):
    """Decode TLVs in buf[pos:end]; with `indefinite`, stop after the end-of-contents 00 00."""
    items = []
    total = len(buf)
    while True:
        if indefinite:
            if pos + 1 < end and buf[pos] == 0 and buf[pos + 1] == 0:
                return items, pos + 2
            if pos >= end or (pos + 1 >= end and buf[pos] == 0):
                raise TruncatedError("end-of-contents missing", end, outer_tag)
        elif pos >= end:
            return items, pos
        start = pos
        tag, pos = _tag(buf, pos, end)
        length, vpos = _length(buf, pos, end, tag)
        if _is_constructed(tag) and depth + 1 > max_depth:
            raise BadTagError("nesting too deep", start, tag)
        if length < 0:
            if tag not in INDEFINITE_TAGS:
                raise LengthError("indefinite length not allowed", pos, tag)
            value, pos = _ber_items(buf, vpos, end, depth + 1, max_depth, True, tag)
            items.append((tag, value))
            continue
        vend = vpos + length
        if vend > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        if _is_constructed(tag):
            value, _ = _ber_items(buf, vpos, vend, depth + 1, max_depth, False, tag)
        else:
            value = buf[vpos:vend]
        items.append((tag, value))
        pos = vend


def ber_decode(buf, max_depth=MAX_DEPTH):
    """Decode a sequence of BER-TLVs: [(tag, value)], value bytes or, if constructed, a list."""
    buf = _bytes(buf)
    items, _ = _ber_items(buf, 0, len(buf), 0, max_depth, False, None)
    return items


def _ber_encode_into(out, items, depth):
    if depth > MAX_DEPTH:
        raise BadValueError("nesting too deep", -1, None)
    for tag, value in items:
        out += ber_encode_tag(tag)
        if isinstance(value, list):
            if tag in INDEFINITE_TAGS:  # TS 102 226 §5.2.2: 'AE'/'AF' carry the indefinite form
                out.append(0x80)
                _ber_encode_into(out, value, depth + 1)
                out += b"\x00\x00"
                continue
            inner = bytearray()
            _ber_encode_into(inner, value, depth + 1)
            value = inner
        out += ber_encode_length(len(value))
        out += value


def ber_encode(items):
    """Inverse of `ber_decode`: encode(decode(x)) == x for every canonical x."""
    out = bytearray()
    _ber_encode_into(out, items, 0)
    return bytes(out)


# --- COMPREHENSION-TLV (ETSI TS 102 223 §7.1.1, TS 101 220 §7.1.1) ----------------------------------

def ctlv_read_tag(buf, offset=0):
    """Read a COMPREHENSION-TLV tag: (tag value, CR bit, offset after it); 1- or 3-byte format."""
    buf = _bytes(buf)
    return _ctag(buf, offset, len(buf))


def _ctag(buf, offset, end):
    if offset >= end:
        raise TruncatedError("tag missing", offset)
    b = buf[offset]
    if b == 0x7F:  # three-byte format: 7F, CR + 15-bit tag value
        if offset + 3 > end:
            raise TruncatedError("tag truncated", offset)
        hi = buf[offset + 1]
        return ((hi & 0x7F) << 8) | buf[offset + 2], bool(hi & 0x80), offset + 3
    if b == 0x00 or b == 0x80 or b == 0xFF:
        raise BadTagError("invalid tag byte", offset)
    return b & 0x7F, bool(b & 0x80), offset + 1


def ctlv_encode_tag(tag, cr=False):
    """Tag bytes: one byte for 0x01..0x7E, else the three-byte format."""
    if tag <= 0 or tag > 0x7FFF:
        raise BadValueError("tag out of range", -1, None)
    if tag < 0x7F:
        return bytes((tag | (0x80 if cr else 0),))
    return bytes((0x7F, (tag >> 8) | (0x80 if cr else 0), tag & 0xFF))


def _ctlv_length(buf, pos, end, tag):
    if pos >= end:
        raise TruncatedError("length missing", pos, tag)
    b = buf[pos]
    if b < 0x80:
        return b, pos + 1
    n = b - 0x80
    if n < 1 or n > 3:
        raise LengthError("bad length form", pos, tag)
    if pos + 1 + n > end:
        raise TruncatedError("length truncated", pos, tag)
    length = 0
    for i in range(pos + 1, pos + 1 + n):
        length = (length << 8) | buf[i]
    return length, pos + 1 + n


def ctlv_decode(buf, offset=0, end=-1):
    """Decode COMPREHENSION-TLVs in buf[offset:end]: [(tag, cr, value bytes)]."""
    buf = _bytes(buf)
    total = len(buf)
    if end < 0 or end > total:
        end = total
    items = []
    pos = offset
    while pos < end:
        tag, cr, pos = _ctag(buf, pos, end)
        length, vpos = _ctlv_length(buf, pos, end, tag)
        if vpos + length > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        items.append((tag, cr, buf[vpos:vpos + length]))
        pos = vpos + length
    return items


def ctlv_encode_length(length):
    """COMPREHENSION-TLV length: 00-7F, 81 80-FF, 82 0100-FFFF, 83 up to FFFFFF."""
    if length < 0x80:
        if length < 0:
            raise BadValueError("length out of range", -1, None)
        return bytes((length,))
    if length <= 0xFF:
        return bytes((0x81, length))
    if length <= 0xFFFF:
        return bytes((0x82, length >> 8, length & 0xFF))
    if length <= 0xFFFFFF:
        return bytes((0x83,)) + length.to_bytes(3, "big")
    raise BadValueError("length out of range", -1, None)


def ctlv_encode(items):
    """Inverse of `ctlv_decode`."""
    out = bytearray()
    for tag, cr, value in items:
        out += ctlv_encode_tag(tag, cr)
        out += ctlv_encode_length(len(value))
        out += value
    return bytes(out)


# --- COMPACT-TLV (ISO/IEC 7816-4 §8.1.1.2, historical bytes) and DGI lengths (GP) -------------------

def compact_decode(buf, offset=0):
    """COMPACT-TLV: one byte tag nibble | length nibble, then the value: [(tag, value)]."""
    buf = _bytes(buf)
    items = []
    pos = offset
    while pos < len(buf):
        tag, length = buf[pos] >> 4, buf[pos] & 0x0F
        if pos + 1 + length > len(buf):
            raise TruncatedError("value truncated", pos, tag)
        items.append((tag, buf[pos + 1:pos + 1 + length]))
        pos += 1 + length
    return items


def compact_encode(items):
    """Inverse of `compact_decode`."""
    out = bytearray()
    for tag, value in items:
        if not 0 <= tag <= 15 or len(value) > 15:
            raise BadValueError("compact TLV tag or length beyond a nibble", -1, tag)
        out.append((tag << 4) | len(value))
        out += value
    return bytes(out)


def dgi_read_length(buf, offset=0):
    """GlobalPlatform DGI length: 1 byte below FF, else FF and 2 bytes: (length, offset after)."""
    buf = _bytes(buf)
    if offset >= len(buf):
        raise TruncatedError("length missing", offset)
    if buf[offset] != 0xFF:
        return buf[offset], offset + 1
    if offset + 3 > len(buf):
        raise TruncatedError("length truncated", offset)
    return (buf[offset + 1] << 8) | buf[offset + 2], offset + 3


def dgi_encode_length(length):
    """Inverse of `dgi_read_length`; 0..65535."""
    if length < 0 or length > 0xFFFF:
        raise BadValueError("DGI length out of range", -1, None)
    if length < 0xFF:
        return bytes((length,))
    return bytes((0xFF, length >> 8, length & 0xFF))


# --- APDUs (ISO/IEC 7816-4 §5.1) --------------------------------------------------------------------

def _apdu_short(buf, n):
    """Short forms: case 2S, 3S, 4S; also the T=0 convention P3=00 + 256 data bytes."""
    p3 = buf[4]
    if n == 5:
        return buf[5:5], (p3 or 256), False
    lc = p3 or 256
    if n == 5 + lc:
        return buf[5:], None, False
    if n == 6 + lc:
        return buf[5:5 + lc], (buf[n - 1] or 256), False
    return None


def _apdu_extended(buf, n):
    """Extended forms (ISO/IEC 7816-4 §5.1): case 2E, 3E, 4E, introduced by a 00 byte."""
    if buf[4] != 0 or n < 7:
        return None
    x = (buf[5] << 8) | buf[6]
    if n == 7:
        return buf[7:7], (x or 65536), True
    if x == 0:
        return None
    if n == 7 + x:
        return buf[7:], None, True
    if n == 9 + x:
        le = (buf[n - 2] << 8) | buf[n - 1]
        return buf[7:7 + x], (le or 65536), True
    return None


def apdu_parse(buf):
    """C-APDU cases 1-4, short or extended: (cla, ins, p1, p2, data, le, extended); le None if absent."""
    buf = _bytes(buf)
    n = len(buf)
    if n < 4:
        raise TruncatedError("C-APDU shorter than its header", n)
    if n == 4:
        return buf[0], buf[1], buf[2], buf[3], b"", None, False
    parsed = _apdu_extended(buf, n) or _apdu_short(buf, n)
    if parsed is None:
        raise LengthError("C-APDU length does not match Lc/Le", 4)
    return (buf[0], buf[1], buf[2], buf[3]) + parsed


def apdu_build(cla, ins, p1, p2, data=b"", le=None, extended=None):
    """Encode a C-APDU; `extended` None picks short when Lc <= 255 and Le <= 256."""
    nc = len(data)
    if extended is None:
        extended = nc > 255 or (le is not None and le > 256)
    if nc > (65535 if extended else 256) or (le is not None and not 1 <= le <= (65536 if extended else 256)):
        raise BadValueError("Lc or Le out of range", -1, None)
    out = bytearray((cla, ins, p1, p2))
    if extended:
        if nc:
            out += bytes((0, nc >> 8, nc & 0xFF))
            out += data
        if le is not None:
            if not nc:
                out.append(0)
            out += bytes(((le >> 8) & 0xFF, le & 0xFF))
    else:
        if nc:
            out.append(nc & 0xFF)
            out += data
        if le is not None:
            out.append(le & 0xFF)
    return bytes(out)


def rapdu_parse(buf):
    """R-APDU: (data, sw as an int such as 0x9000)."""
    buf = _bytes(buf)
    if len(buf) < 2:
        raise TruncatedError("R-APDU shorter than SW1 SW2", len(buf))
    return buf[:-2], (buf[-2] << 8) | buf[-1]


def rapdu_build(data, sw):
    """Inverse of `rapdu_parse`."""
    if not 0 <= sw <= 0xFFFF:
        raise BadValueError("status word out of range", -1, None)
    return bytes(data) + bytes((sw >> 8, sw & 0xFF))
