"""Compiled BCP/1 frames (DESIGN §5.1) and their MACs (twin: codec/_frames_py.py)."""

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize

from esimota._ext.tlv cimport tlv_bytes

from esimota.codec import _crypto
from esimota.errors import (BadMacError, BadTagError, BadValueError, LengthError,
                            StaleCounterError, TruncatedError)

from esimota.codec.bcp import (CLOSE, COMMAND, HELLO, HELLO_POWER_ON, HELLO_RESUME, MAX_CLOSE_REASON,
                               MAX_REPORT_RESULT, REPORT, RESPONSE)
# DESIGN §5.1 layouts: tag, exact length (-1 variable), optional; names in the same order
cdef int[7][3] _HELLO = [[0xC0, 16, 0], [0xC1, 10, 0], [0xC2, 8, 1], [0xC3, 5, 0],
                         [0xC4, 2, 0], [0xC5, 1, 0], [0xCF, 8, 0]]
cdef int[6][3] _REPORT = [[0xC0, 16, 0], [0xC1, 10, 0], [0xC3, 5, 0], [0xC6, 1, 0],
                          [0xC7, -1, 1], [0xCF, 8, 0]]
_HELLO_NAMES = ("eid", "iccid", "imei", "counter", "buffer_size", "reason", "mac")
_REPORT_NAMES = ("eid", "iccid", "counter", "result", "diagnostic", "mac")
_aes_cmac = _crypto.aes_cmac
_equal = _crypto.equal


def encode_frame(ftype, body):
    """LEN(2) || TYPE || BODY, LEN counting TYPE and BODY."""
    n = 1 + len(body)
    if n > 0xFFFF or not 0 <= ftype <= 255:
        raise BadValueError("frame too long or bad type", -1, None)
    return bytes((n >> 8, n & 0xFF, ftype)) + bytes(body)


def frame_size(buf):
    """Total size of the frame at the start of `buf` (0 while fewer than 2 bytes are there)."""
    if len(buf) < 2:
        return 0
    return 2 + ((buf[0] << 8) | buf[1])


def hello_mac(kid, mac_input):
    """MAC of HELLO and REPORT: first 8 bytes of AES-CMAC under K_ID over TYPE and the TLVs before 'CF'."""
    return _aes_cmac(kid, mac_input)[:8]


cdef void _tlv(bytearray out, int tag, value):
    out.append(tag)
    out.append(len(value))
    out += value


cdef bytes _signed(kid, int ftype, list parts):
    cdef bytearray body = bytearray()
    body.append(ftype)
    for tag, value in parts:
        _tlv(body, tag, value)
    _tlv(body, 0xCF, hello_mac(kid, body))
    n = len(body)
    return bytes((n >> 8, n & 0xFF)) + bytes(body)


def encode_hello(kid, eid, iccid, counter, buffer_size, reason, imei=None):
    """HELLO frame with its MAC; eid 16 bytes, iccid 10 (as in EF_ICCID), imei 8 or None."""
    if len(eid) != 16 or len(iccid) != 10 or (imei is not None and len(imei) != 8):
        raise BadValueError("EID, ICCID or IMEI of the wrong size", -1, None)
    if not 0 <= counter < 1 << 40 or not 0 <= buffer_size <= 0xFFFF or not 1 <= reason <= 2:
        raise BadValueError("counter, buffer size or reason out of range", -1, None)
    parts = [(0xC0, eid), (0xC1, iccid)]
    if imei is not None:
        parts.append((0xC2, imei))
    parts += [(0xC3, counter.to_bytes(5, "big")), (0xC4, buffer_size.to_bytes(2, "big")),
              (0xC5, bytes((reason,)))]
    return _signed(kid, HELLO, parts)


def encode_report(kid, eid, iccid, counter, result, diagnostic=None):
    """REPORT frame with its MAC; `diagnostic` is text (UTF-8 on the wire) or None."""
    if len(eid) != 16 or len(iccid) != 10:
        raise BadValueError("EID or ICCID of the wrong size", -1, None)
    if not 0 <= counter < 1 << 40 or not 0 <= result <= MAX_REPORT_RESULT:
        raise BadValueError("counter or result out of range", -1, None)
    parts = [(0xC0, eid), (0xC1, iccid), (0xC3, counter.to_bytes(5, "big")), (0xC6, bytes((result,)))]
    if diagnostic is not None:
        text = diagnostic.encode("utf-8")
        if len(text) > 127:
            raise BadValueError("diagnostic text longer than 127 bytes", -1, 0xC7)
        parts.append((0xC7, text))
    return _signed(kid, REPORT, parts)


def encode_close(reason, retry_after=0):
    """CLOSE frame: reason (1) and retry-after seconds (2)."""
    if not 0 <= reason <= 255 or not 0 <= retry_after <= 0xFFFF:
        raise BadValueError("reason or retry-after out of range", -1, None)
    return bytes((0, 4, CLOSE, reason, retry_after >> 8, retry_after & 0xFF))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _field(const unsigned char* p, int tag, Py_ssize_t voff, Py_ssize_t length):
    """A field's value: integers for counter/size/reason/result, text for C7, else bytes."""
    cdef long long number = 0
    cdef Py_ssize_t i
    if tag == 0xC3 or tag == 0xC4 or tag == 0xC5 or tag == 0xC6:
        for i in range(length):
            number = (number << 8) | p[voff + i]
        if ((tag == 0xC5 and not HELLO_POWER_ON <= number <= HELLO_RESUME)
                or (tag == 0xC6 and number > MAX_REPORT_RESULT)):
            raise BadValueError("unknown " + ("reason" if tag == 0xC5 else "result"), voff, tag)
        return number
    raw = PyBytes_FromStringAndSize(<const char*>p + voff, length)
    if tag == 0xC7:
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise BadValueError("diagnostic text is not UTF-8", voff, tag) from None
    return raw


@cython.boundscheck(False)
@cython.wraparound(False)
cdef dict _signed_body(const unsigned char* p, Py_ssize_t end, int[][3] layout, int count,
                       tuple names, Py_ssize_t* counter_at):
    """Walk the TLVs of HELLO/REPORT in their fixed order (DESIGN §5.1) -> fields."""
    cdef dict fields = {}
    cdef Py_ssize_t pos = 3, length
    cdef int i, tag, size
    for i in range(count):
        tag, size = layout[i][0], layout[i][1]
        if pos >= end or p[pos] != tag:
            if layout[i][2]:
                fields[names[i]] = None
                continue
            if pos >= end:
                raise TruncatedError("element missing", pos, tag)
            raise BadTagError("unexpected tag", pos, p[pos])
        if pos + 1 >= end:
            raise TruncatedError("length missing", pos + 1, tag)
        length = p[pos + 1]
        if (size >= 0 and length != size) or length > 127:
            raise LengthError("wrong length", pos + 1, tag)
        if pos + 2 + length > end:
            raise TruncatedError("value truncated", pos + 1, tag)
        fields[names[i]] = _field(p, tag, pos + 2, length)
        if tag == 0xC3:
            counter_at[0] = pos + 2
        pos += 2 + length
    if pos != end:
        raise LengthError("bytes after the MAC", pos, 0xCF)
    return fields


def verify_frame_mac(kid, frame):
    """Check the 'CF' MAC that ends a HELLO or REPORT frame; BadMacError if it does not verify."""
    cdef bytes b = tlv_bytes(frame)
    cdef Py_ssize_t n = len(b)
    if n < 13:
        raise TruncatedError("frame too short for a MAC", n)
    if not _equal(_aes_cmac(kid, b[2:n - 10])[:8], b[n - 8:]):
        raise BadMacError("MAC does not verify", n - 8, 0xCF)


def decode_frame(buf, kid=None, last_counter=None):
    """One whole frame -> (type, fields); with `kid`, verify the MAC; with `last_counter`, the counter."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t n = len(b), end, counter_at = -1
    cdef int ftype
    cdef dict fields
    if n < 3:
        raise TruncatedError("frame header truncated", 0)
    end = 2 + ((p[0] << 8) | p[1])
    if end > n:
        raise TruncatedError("frame truncated", 0)
    if end < n:
        raise LengthError("bytes after the frame", end)
    ftype = p[2]
    if ftype == HELLO or ftype == REPORT:
        if ftype == HELLO:
            fields = _signed_body(p, end, _HELLO, 7, _HELLO_NAMES, &counter_at)
        else:
            fields = _signed_body(p, end, _REPORT, 6, _REPORT_NAMES, &counter_at)
        if kid is not None:
            verify_frame_mac(kid, b)
        if last_counter is not None and fields["counter"] <= last_counter:
            raise StaleCounterError("card counter not above the last one seen", counter_at, 0xC3)
        return ftype, fields
    if ftype == COMMAND or ftype == RESPONSE:
        if end == 3:
            raise LengthError("empty packet", 0)
        return ftype, {"packet": b[3:end]}
    if ftype == CLOSE:
        if end != 6:
            raise LengthError("CLOSE body is not 3 bytes", 0)
        if p[3] > MAX_CLOSE_REASON:
            raise BadValueError("unknown CLOSE reason", 3)
        return ftype, {"reason": p[3], "retry_after": (p[4] << 8) | p[5]}
    raise BadValueError("unknown frame type", 2, None)
