"""Compiled BER-TLV, COMPREHENSION-TLV, COMPACT-TLV, DGI lengths and APDUs (twin: codec/_tlv_py.py)."""

# Walks raw buffers (const unsigned char*) of a bytes object; slices are made once, by
# PyBytes_FromStringAndSize. Messages, offsets and tags of every error match the pure twin.

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

MAX_DEPTH = 16
INDEFINITE_TAGS = (0xAE, 0xAF)
OPAQUE_TAGS = (0x22, 0x23)


cdef bytes tlv_bytes(object buf):
    """The input as a bytes object (no copy when it already is one)."""
    if type(buf) is bytes:
        return <bytes>buf
    return bytes(buf)


# --- BER-TLV (ISO/IEC 7816-4 §5.2) -------------------------------------------------------------

@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t tlv_ber_tag(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                            unsigned long* tag) except -1:
    cdef Py_ssize_t pos = off + 1
    cdef unsigned char first, b
    if off >= end:
        raise TruncatedError("tag missing", off)
    first = p[off]
    if first == 0x00 or first == 0xFF:
        raise BadTagError("invalid tag byte", off)
    tag[0] = first
    if first & 0x1F == 0x1F:  # multi-byte tag: subsequent bytes while bit 8 is set
        while True:
            if pos >= end:
                raise TruncatedError("tag truncated", off)
            if pos - off >= 4:
                raise BadTagError("tag longer than 4 bytes", off)
            b = p[pos]
            tag[0] = (tag[0] << 8) | b
            pos += 1
            if not b & 0x80:
                break
    return pos


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t tlv_ber_length(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                               object tag, long long* length) except -1:
    cdef unsigned char b
    cdef int n, i
    if off >= end:
        raise TruncatedError("length missing", off, tag)
    b = p[off]
    if b < 0x80:
        length[0] = b
        return off + 1
    if b == 0x80:
        length[0] = -1
        return off + 1
    n = b & 0x7F
    if n > 4:
        raise LengthError("bad length form", off, tag)
    if off + 1 + n > end:
        raise TruncatedError("length truncated", off, tag)
    length[0] = 0
    for i in range(n):
        length[0] = (length[0] << 8) | p[off + 1 + i]
    return off + 1 + n


def ber_read_tag(buf, offset=0):
    """Read one BER tag at `offset`: (tag as the integer of its bytes, offset after it)."""
    cdef bytes b = tlv_bytes(buf)
    cdef unsigned long tag = 0
    cdef Py_ssize_t pos = tlv_ber_tag(b, offset, len(b), &tag)
    return tag, pos


def ber_read_length(buf, offset=0, tag=None):
    """Read one BER length at `offset`: (length or -1 for the indefinite form, offset after it)."""
    cdef bytes b = tlv_bytes(buf)
    cdef long long length = 0
    cdef Py_ssize_t pos = tlv_ber_length(b, offset, len(b), tag, &length)
    return length, pos


def ber_encode_tag(tag):
    """Bytes of a tag given as the integer of its bytes (0x9F70 -> b'\\x9f\\x70')."""
    if tag <= 0 or tag > 0xFFFFFFFF:
        raise BadValueError("tag out of range", -1, None)
    return tag.to_bytes((tag.bit_length() + 7) // 8, "big")


cdef void tlv_put_length(bytearray out, Py_ssize_t length):
    """Append the shortest definite BER length."""
    if length < 0x80:
        out.append(length)
    elif length <= 0xFF:
        out.append(0x81)
        out.append(length)
    elif length <= 0xFFFF:
        out.append(0x82)
        out.append(length >> 8)
        out.append(length & 0xFF)
    else:
        out += ber_encode_length(length)


def ber_encode_length(length):
    """Shortest definite BER length (ISO/IEC 7816-4 §5.2.2.2): 1 byte below 128, else 81..84."""
    if length < 0 or length > 0xFFFFFFFF:
        raise BadValueError("length out of range", -1, None)
    if length < 0x80:
        return bytes((length,))
    n = (length.bit_length() + 7) // 8
    return bytes((0x80 | n,)) + length.to_bytes(n, "big")


cdef inline bint _constructed(unsigned long tag):
    if tag == 0x22 or tag == 0x23:  # TS 102 226 C-APDU/R-APDU TLVs hold APDUs, not TLVs
        return False
    while tag > 0xFF:
        tag >>= 8
    return (tag & 0x20) != 0


def ber_decode_one(buf, offset=0):
    """One TLV at `offset`, value not decoded: (tag, value bytes, offset after it)."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef unsigned long tag = 0
    cdef long long length = 0
    cdef Py_ssize_t n = len(b)
    cdef Py_ssize_t pos = tlv_ber_tag(p, offset, n, &tag)
    cdef Py_ssize_t vpos = tlv_ber_length(p, pos, n, tag, &length)
    if length < 0:
        raise LengthError("indefinite length not allowed here", pos, tag)
    if vpos + length > n:
        raise TruncatedError("value truncated", pos, tag)
    return tag, PyBytes_FromStringAndSize(<const char*>p + vpos, length), vpos + length


@cython.boundscheck(False)
@cython.wraparound(False)
cdef list _ber_items(bytes buf, Py_ssize_t pos, Py_ssize_t end, int depth, int max_depth,
                     bint indefinite, object outer_tag, Py_ssize_t* after):
    """Decode TLVs in buf[pos:end]; with `indefinite`, stop after the end-of-contents 00 00."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t total = len(buf)
    cdef Py_ssize_t start, vpos, vend, lpos
    cdef unsigned long tag = 0
    cdef long long length = 0
    cdef list items = []
    cdef object value
    while True:
        if indefinite:
            if pos + 1 < end and p[pos] == 0 and p[pos + 1] == 0:
                after[0] = pos + 2
                return items
            if pos >= end or (pos + 1 >= end and p[pos] == 0):
                raise TruncatedError("end-of-contents missing", end, outer_tag)
        elif pos >= end:
            after[0] = pos
            return items
        start = pos
        lpos = tlv_ber_tag(p, pos, end, &tag)
        vpos = tlv_ber_length(p, lpos, end, tag, &length)
        if _constructed(tag) and depth + 1 > max_depth:
            raise BadTagError("nesting too deep", start, tag)
        if length < 0:
            if tag != 0xAE and tag != 0xAF:
                raise LengthError("indefinite length not allowed", lpos, tag)
            value = _ber_items(buf, vpos, end, depth + 1, max_depth, True, tag, &pos)
            items.append((tag, value))
            continue
        vend = vpos + length
        if vend > end:
            if end == total:
                raise TruncatedError("value truncated", lpos, tag)
            raise LengthError("value past the end of its parent", lpos, tag)
        if _constructed(tag):
            value = _ber_items(buf, vpos, vend, depth + 1, max_depth, False, tag, &start)
        else:
            value = PyBytes_FromStringAndSize(<const char*>p + vpos, vend - vpos)
        items.append((tag, value))
        pos = vend


def ber_decode(buf, max_depth=MAX_DEPTH):
    """Decode a sequence of BER-TLVs: [(tag, value)], value bytes or, if constructed, a list."""
    cdef bytes b = tlv_bytes(buf)
    cdef Py_ssize_t after = 0
    return _ber_items(b, 0, len(b), 0, max_depth, False, None, &after)


cdef _ber_encode_into(bytearray out, list items, int depth):
    cdef bytearray inner
    if depth > MAX_DEPTH:
        raise BadValueError("nesting too deep", -1, None)
    for tag, value in items:
        out += ber_encode_tag(tag)
        if isinstance(value, list):
            if tag == 0xAE or tag == 0xAF:  # TS 102 226 §5.2.2: indefinite form
                out.append(0x80)
                _ber_encode_into(out, value, depth + 1)
                out += b"\x00\x00"
                continue
            inner = bytearray()
            _ber_encode_into(inner, value, depth + 1)
            value = inner
        tlv_put_length(out, len(value))
        out += value


def ber_encode(items):
    """Inverse of `ber_decode`: encode(decode(x)) == x for every canonical x."""
    cdef bytearray out = bytearray()
    _ber_encode_into(out, list(items), 0)
    return bytes(out)


# --- COMPREHENSION-TLV (ETSI TS 102 223 §7.1.1, TS 101 220 §7.1.1) -------------------------------

@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t tlv_ctag(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                         unsigned int* tag, bint* cr) except -1:
    cdef unsigned char b
    if off >= end:
        raise TruncatedError("tag missing", off)
    b = p[off]
    if b == 0x7F:  # three-byte format: 7F, CR + 15-bit tag value
        if off + 3 > end:
            raise TruncatedError("tag truncated", off)
        tag[0] = ((p[off + 1] & 0x7F) << 8) | p[off + 2]
        cr[0] = (p[off + 1] & 0x80) != 0
        return off + 3
    if b == 0x00 or b == 0x80 or b == 0xFF:
        raise BadTagError("invalid tag byte", off)
    tag[0] = b & 0x7F
    cr[0] = (b & 0x80) != 0
    return off + 1


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t tlv_clength(const unsigned char* p, Py_ssize_t off, Py_ssize_t end,
                            unsigned int tag, Py_ssize_t* length) except -1:
    cdef unsigned char b
    cdef int n, i
    if off >= end:
        raise TruncatedError("length missing", off, tag)
    b = p[off]
    if b < 0x80:
        length[0] = b
        return off + 1
    n = b - 0x80
    if n < 1 or n > 3:
        raise LengthError("bad length form", off, tag)
    if off + 1 + n > end:
        raise TruncatedError("length truncated", off, tag)
    length[0] = 0
    for i in range(n):
        length[0] = (length[0] << 8) | p[off + 1 + i]
    return off + 1 + n


def ctlv_read_tag(buf, offset=0):
    """Read a COMPREHENSION-TLV tag: (tag value, CR bit, offset after it); 1- or 3-byte format."""
    cdef bytes b = tlv_bytes(buf)
    cdef unsigned int tag = 0
    cdef bint cr = False
    cdef Py_ssize_t pos = tlv_ctag(b, offset, len(b), &tag, &cr)
    return tag, cr, pos


def ctlv_encode_tag(tag, cr=False):
    """Tag bytes: one byte for 0x01..0x7E, else the three-byte format."""
    if tag <= 0 or tag > 0x7FFF:
        raise BadValueError("tag out of range", -1, None)
    if tag < 0x7F:
        return bytes((tag | (0x80 if cr else 0),))
    return bytes((0x7F, (tag >> 8) | (0x80 if cr else 0), tag & 0xFF))


@cython.boundscheck(False)
@cython.wraparound(False)
def ctlv_decode(buf, Py_ssize_t offset=0, Py_ssize_t end=-1):
    """Decode COMPREHENSION-TLVs in buf[offset:end]: [(tag, cr, value bytes)]."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t total = len(b)
    cdef Py_ssize_t pos = offset, vpos, length = 0
    cdef unsigned int tag = 0
    cdef bint cr = False
    cdef list items = []
    if end < 0 or end > total:
        end = total
    while pos < end:
        pos = tlv_ctag(p, pos, end, &tag, &cr)
        vpos = tlv_clength(p, pos, end, tag, &length)
        if vpos + length > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        items.append((tag, cr, PyBytes_FromStringAndSize(<const char*>p + vpos, length)))
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
    cdef bytearray out = bytearray()
    for tag, cr, value in items:
        out += ctlv_encode_tag(tag, cr)
        out += ctlv_encode_length(len(value))
        out += value
    return bytes(out)


# --- COMPACT-TLV (ISO/IEC 7816-4 §8.1.1.2) and DGI lengths (GlobalPlatform) -----------------------

def compact_decode(buf, Py_ssize_t offset=0):
    """COMPACT-TLV: one byte tag nibble | length nibble, then the value: [(tag, value)]."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t pos = offset, n = len(b), length
    cdef list items = []
    while pos < n:
        length = p[pos] & 0x0F
        if pos + 1 + length > n:
            raise TruncatedError("value truncated", pos, p[pos] >> 4)
        items.append((p[pos] >> 4, PyBytes_FromStringAndSize(<const char*>p + pos + 1, length)))
        pos += 1 + length
    return items


def compact_encode(items):
    """Inverse of `compact_decode`."""
    cdef bytearray out = bytearray()
    for tag, value in items:
        if not 0 <= tag <= 15 or len(value) > 15:
            raise BadValueError("compact TLV tag or length beyond a nibble", -1, tag)
        out.append((tag << 4) | len(value))
        out += value
    return bytes(out)


def dgi_read_length(buf, Py_ssize_t offset=0):
    """GlobalPlatform DGI length: 1 byte below FF, else FF and 2 bytes: (length, offset after)."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    if offset >= len(b):
        raise TruncatedError("length missing", offset)
    if p[offset] != 0xFF:
        return p[offset], offset + 1
    if offset + 3 > len(b):
        raise TruncatedError("length truncated", offset)
    return (p[offset + 1] << 8) | p[offset + 2], offset + 3


def dgi_encode_length(length):
    """Inverse of `dgi_read_length`; 0..65535."""
    if length < 0 or length > 0xFFFF:
        raise BadValueError("DGI length out of range", -1, None)
    if length < 0xFF:
        return bytes((length,))
    return bytes((0xFF, length >> 8, length & 0xFF))


# --- APDUs (ISO/IEC 7816-4 §5.1) ---------------------------------------------------------------------

def apdu_parse(buf):
    """C-APDU cases 1-4, short or extended: (cla, ins, p1, p2, data, le, extended); le None if absent."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t n = len(b), x, lc
    if n < 4:
        raise TruncatedError("C-APDU shorter than its header", n)
    if n == 4:
        return p[0], p[1], p[2], p[3], b"", None, False
    if p[4] == 0 and n >= 7:  # extended forms, introduced by a 00 byte
        x = (p[5] << 8) | p[6]
        if n == 7:
            return p[0], p[1], p[2], p[3], b"", (x or 65536), True
        if x != 0 and n == 7 + x:
            return p[0], p[1], p[2], p[3], b[7:], None, True
        if x != 0 and n == 9 + x:
            return p[0], p[1], p[2], p[3], b[7:7 + x], (((p[n - 2] << 8) | p[n - 1]) or 65536), True
    if n == 5:
        return p[0], p[1], p[2], p[3], b"", (p[4] or 256), False
    lc = p[4] or 256  # short forms; P3=00 + 256 bytes is the T=0 convention
    if n == 5 + lc:
        return p[0], p[1], p[2], p[3], b[5:], None, False
    if n == 6 + lc:
        return p[0], p[1], p[2], p[3], b[5:5 + lc], (p[n - 1] or 256), False
    raise LengthError("C-APDU length does not match Lc/Le", 4)


def apdu_build(cla, ins, p1, p2, data=b"", le=None, extended=None):
    """Encode a C-APDU; `extended` None picks short when Lc <= 255 and Le <= 256."""
    cdef Py_ssize_t nc = len(data)
    if extended is None:
        extended = nc > 255 or (le is not None and le > 256)
    if nc > (65535 if extended else 256) or (le is not None and not 1 <= le <= (65536 if extended else 256)):
        raise BadValueError("Lc or Le out of range", -1, None)
    cdef bytearray out = bytearray((cla, ins, p1, p2))
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
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t n = len(b)
    if n < 2:
        raise TruncatedError("R-APDU shorter than SW1 SW2", n)
    return b[:n - 2], (p[n - 2] << 8) | p[n - 1]


def rapdu_build(data, sw):
    """Inverse of `rapdu_parse`."""
    if not 0 <= sw <= 0xFFFF:
        raise BadValueError("status word out of range", -1, None)
    return bytes(data) + bytes((sw >> 8, sw & 0xFF))
