"""Compiled TS 102 226 remote APDU scripts, expanded and compact (twin: codec/_script_py.py)."""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from esimota._ext.tlv cimport tlv_ber_length, tlv_ber_tag, tlv_bytes, tlv_put_length

from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

CMD_TEMPLATE, CMD_TEMPLATE_INDEF = 0xAA, 0xAE
RSP_TEMPLATE, RSP_TEMPLATE_INDEF = 0xAB, 0xAF
TAG_CAPDU, TAG_IMMEDIATE, TAG_ERROR_ACTION, TAG_RAPDU, TAG_COUNT = 0x22, 0x81, 0x82, 0x23, 0x80
#: INS of case 2 commands: in the compact format their P3 is Le (TS 102 226 §5.2.1)
CASE2_INS = (0xB0, 0xB2, 0xC0, 0xCA, 0xF2, 0x84, 0x12)


cdef Py_ssize_t _template(const unsigned char* p, Py_ssize_t n, unsigned long definite,
                          unsigned long indefinite, unsigned long* tag, Py_ssize_t* end,
                          bint* indef) except -1:
    """Open the single outer template: returns the start of its content."""
    cdef long long length = 0
    cdef Py_ssize_t pos = tlv_ber_tag(p, 0, n, tag), vpos
    if tag[0] != definite and tag[0] != indefinite:
        raise BadTagError("not a scripting template", 0, tag[0])
    vpos = tlv_ber_length(p, pos, n, tag[0], &length)
    if length < 0:
        if tag[0] != indefinite:
            raise LengthError("indefinite length not allowed", pos, tag[0])
        end[0] = n
        indef[0] = True
        return vpos
    if vpos + length > n:
        raise TruncatedError("value truncated", pos, tag[0])
    if vpos + length < n:
        raise LengthError("bytes after the script", vpos + length, tag[0])
    end[0] = vpos + length
    indef[0] = False
    return vpos


@cython.boundscheck(False)
@cython.wraparound(False)
cdef list _items(bytes buf, Py_ssize_t pos, Py_ssize_t end, bint indef, unsigned long outer,
                 bint response):
    """The TLVs inside a template, [(tag, value)], checking tags and the end-of-contents."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf), start, vpos, lpos
    cdef unsigned long tag = 0
    cdef long long length = 0
    cdef list items = []
    while True:
        if indef:
            if pos + 1 < end and p[pos] == 0 and p[pos + 1] == 0:
                if pos + 2 != end:
                    raise LengthError("bytes after the script", pos + 2, outer)
                return items
            if pos >= end or (pos + 1 >= end and p[pos] == 0):
                raise TruncatedError("end-of-contents missing", end, outer)
        elif pos >= end:
            return items
        start = pos
        lpos = tlv_ber_tag(p, pos, end, &tag)
        if (response and tag != 0x80 and tag != 0x23) or \
                (not response and tag != 0x22 and tag != 0x81 and tag != 0x82):
            raise BadTagError("unexpected tag in script", start, tag)
        vpos = tlv_ber_length(p, lpos, end, tag, &length)
        if length < 0:
            raise LengthError("indefinite length not allowed", lpos, tag)
        if vpos + length > end:
            if end == n:
                raise TruncatedError("value truncated", lpos, tag)
            raise LengthError("value past the end of its parent", lpos, tag)
        items.append((tag, PyBytes_FromStringAndSize(<const char*>p + vpos, length)))
        pos = vpos + length


def parse_command_script(buf):
    """Expanded command script 'AA'/'AE' -> [(tag, value)] with tags 22 C-APDU, 81, 82."""
    cdef bytes b = tlv_bytes(buf)
    cdef unsigned long tag = 0
    cdef Py_ssize_t end = 0
    cdef bint indef = False
    cdef Py_ssize_t pos = _template(b, len(b), 0xAA, 0xAE, &tag, &end, &indef)
    return _items(b, pos, end, indef, tag, False)


cdef bytes _wrap(int tag, bytearray content, bint indefinite):
    cdef bytearray out = bytearray()
    out.append(tag)
    if indefinite:
        out.append(0x80)
        out += content
        out += b"\x00\x00"
    else:
        tlv_put_length(out, len(content))
        out += content
    return bytes(out)


def build_command_script(items, indefinite=False):
    """Encode C-APDUs (bytes) or (tag, value) pairs into 'AA' (or 'AE' with `indefinite`)."""
    cdef bytearray content = bytearray()
    for item in items:
        if isinstance(item, tuple):
            content.append(item[0])
            tlv_put_length(content, len(item[1]))
            content += item[1]
        else:
            content.append(0x22)
            tlv_put_length(content, len(item))
            content += item
    return _wrap(0xAE if indefinite else 0xAA, content, indefinite)


def parse_response_script(buf):
    """Expanded response script 'AB'/'AF' -> (number of executed C-APDUs, [R-APDU bytes])."""
    cdef bytes b = tlv_bytes(buf)
    cdef unsigned long tag = 0
    cdef Py_ssize_t end = 0
    cdef bint indef = False
    cdef Py_ssize_t pos = _template(b, len(b), 0xAB, 0xAF, &tag, &end, &indef)
    cdef list items = _items(b, pos, end, indef, tag, True)
    if not items or items[0][0] != 0x80:
        raise BadTagError("number of executed C-APDUs missing", pos, 0x80)
    if len(items[0][1]) != 1:
        raise LengthError("number of executed C-APDUs is not 1 byte", pos + 1, 0x80)
    rapdus = []
    for t, v in items[1:]:
        if t != 0x23:
            raise BadTagError("repeated number of executed C-APDUs", pos, t)
        rapdus.append(v)
    return items[0][1][0], rapdus


def build_response_script(count, rapdus, indefinite=False):
    """Encode 'AB' (or 'AF'): '80' count, then one '23' per R-APDU."""
    if not 0 <= count <= 255:
        raise BadValueError("number of executed C-APDUs out of range", -1, 0x80)
    cdef bytearray content = bytearray((0x80, 1, count))
    for r in rapdus:
        content.append(0x23)
        tlv_put_length(content, len(r))
        content += r
    return _wrap(0xAF if indefinite else 0xAB, content, indefinite)


@cython.boundscheck(False)
@cython.wraparound(False)
def parse_compact(buf):
    """Compact format (TS 102 226 §5.2.1): concatenated C-APDUs -> [C-APDU bytes]."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t n = len(b), pos = 0, size
    cdef list out = []
    while pos < n:
        if pos + 5 > n:
            if pos + 4 != n:
                raise TruncatedError("C-APDU header truncated", pos)
            size = 4
        elif p[pos + 1] in (0xB0, 0xB2, 0xC0, 0xCA, 0xF2, 0x84, 0x12):
            size = 5
        else:
            size = 5 + p[pos + 4]
            if pos + size > n:
                raise TruncatedError("C-APDU data truncated", pos + 4)
        out.append(PyBytes_FromStringAndSize(<const char*>p + pos, size))
        pos += size
    return out


def build_compact(apdus):
    """Concatenate C-APDUs (compact format)."""
    return b"".join([bytes(a) for a in apdus])


def parse_compact_response(buf):
    """Compact response (TS 102 226 §5.1.2): (number of commands, last SW, last response data)."""
    cdef bytes b = tlv_bytes(buf)
    if len(b) < 3:
        raise TruncatedError("compact response shorter than 3 bytes", len(b))
    return b[0], (b[1] << 8) | b[2], b[3:]


def build_compact_response(count, sw, data=b""):
    """Inverse of `parse_compact_response`."""
    if not 0 <= count <= 255 or not 0 <= sw <= 0xFFFF:
        raise BadValueError("count or status word out of range", -1, None)
    return bytes((count, sw >> 8, sw & 0xFF)) + bytes(data)


cdef inline Py_ssize_t _tlv_size(Py_ssize_t n):
    return 1 + (1 if n < 0x80 else 2 if n <= 0xFF else 3 if n <= 0xFFFF else 4 if n <= 0xFFFFFF else 5) + n


cdef inline Py_ssize_t _wrapped(Py_ssize_t content, bint indefinite):
    if indefinite:
        return 1 + 1 + content + 2
    return _tlv_size(content)


def script_size(apdus, indefinite=False):
    """Encoded size of `build_command_script(apdus, indefinite)` without building it."""
    cdef Py_ssize_t content = 0
    for a in apdus:
        content += _tlv_size(len(a))
    return _wrapped(content, indefinite)


def chunk_apdus(apdus, Py_ssize_t budget, indefinite=False):
    """Split C-APDUs into consecutive groups whose command script fits `budget` bytes (§5.4 step 2)."""
    cdef list chunks = [], current = []
    cdef Py_ssize_t content = 0, size, i = 0
    cdef bint indef = bool(indefinite)
    for a in apdus:
        size = _tlv_size(len(a))
        if _wrapped(content + size, indef) > budget:
            if not current or _wrapped(size, indef) > budget:
                raise BadValueError(f"C-APDU {i} does not fit the buffer", -1, 0x22)
            chunks.append(current)
            current = []
            content = 0
        current.append(a)
        content += size
        i += 1
    if current:
        chunks.append(current)
    return chunks
