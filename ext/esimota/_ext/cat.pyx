"""Compiled BIP proactive commands, terminal responses and envelopes, TS 102 223 (twin: codec/_cat_py.py)."""

# Decoding walks the COMPREHENSION-TLVs once over the raw buffer and builds the named fields
# directly; the encoder is shared with the twin (it is mostly Python objects, not byte walking).

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_GetItem
from cpython.object cimport PyObject
from cpython.unicode cimport PyUnicode_DecodeASCII

from esimota._ext.tlv cimport tlv_ber_length, tlv_ber_tag, tlv_bytes, tlv_clength, tlv_ctag

import ipaddress

from esimota.codec import _cat_py as _twin
from esimota.codec import _cat_tables as T
from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

cdef dict DEVICES = T.DEVICES, EVENTS = T.EVENTS, BEARERS = T.BEARERS
cdef dict TRANSPORTS = T.TRANSPORTS, ADDRESS_TYPES = T.ADDRESS_TYPES, ELEMENTS = T.ELEMENTS
cdef dict COMMAND_TYPES = T.COMMAND_TYPES, ENVELOPES = T.ENVELOPES
cdef str GSM = T.GSM_ALPHABET, BCD = T.BCD_DIGITS
cdef str _HEXDIGITS = "0123456789abcdef"

# the encoder is not byte walking: one implementation, shared with the twin (STYLE 3)
encode_value = _twin.encode_value
encode_proactive = _twin.encode_proactive
encode_terminal_response = _twin.encode_terminal_response
encode_envelope = _twin.encode_envelope


cdef inline object _named(dict table, int code):
    cdef PyObject* hit = PyDict_GetItem(table, code)
    if hit is NULL:
        return code
    return <object>hit


cdef inline int _need(Py_ssize_t length, Py_ssize_t size, Py_ssize_t voff, int tag) except -1:
    if length != size:
        raise LengthError(f"element must be {size} bytes", voff, tag)
    return 0


cdef const char* _HEXC = b"0123456789abcdef"


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _hex(const unsigned char* p, Py_ssize_t n):
    """Lower-case hex text; short values are formatted on the stack."""
    cdef char[128] out
    cdef Py_ssize_t i
    if n > 64:
        return PyBytes_FromStringAndSize(<const char*>p, n).hex()
    for i in range(n):
        out[2 * i] = _HEXC[p[i] >> 4]
        out[2 * i + 1] = _HEXC[p[i] & 0x0F]
    return PyUnicode_DecodeASCII(out, 2 * n, NULL)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _dotted(const unsigned char* p):
    """IPv4 dotted-quad text of 4 bytes."""
    cdef char[16] out
    cdef int i, k = 0, v
    for i in range(4):
        v = p[i]
        if v >= 100:
            out[k] = 48 + v // 100
            k += 1
        if v >= 10:
            out[k] = 48 + (v // 10) % 10
            k += 1
        out[k] = 48 + v % 10
        k += 1
        if i < 3:
            out[k] = 46
            k += 1
    return PyUnicode_DecodeASCII(out, k, NULL)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _small(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Fixed-size elements: command details, device identities, duration, icon, sizes, status."""
    if tag == 0x01:
        _need(n, 3, voff, tag)
        return {"command_number": p[0], "type_of_command": p[1], "command_qualifier": p[2]}
    if tag == 0x02:
        _need(n, 2, voff, tag)
        return {"source_device_identity": _named(DEVICES, p[0]),
                "destination_device_identity": _named(DEVICES, p[1])}
    if tag == 0x04:
        _need(n, 2, voff, tag)
        return {"time_unit": p[0], "time_interval": p[1]}
    if tag == 0x1E:
        _need(n, 2, voff, tag)
        return {"icon_qualifier": p[0], "icon_identifier": p[1]}
    if tag == 0x37:
        _need(n, 1, voff, tag)
        return p[0]
    if tag == 0x39:
        _need(n, 2, voff, tag)
        return (p[0] << 8) | p[1]
    _need(n, 2, voff, tag)  # 0x38 channel status (§8.56)
    return {"channel_id": p[0] & 0x07, "link_established": (p[0] & 0x80) != 0,
            "status_bits": (p[0] >> 3) & 0x0F, "further_info": p[1]}


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _structured(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Variable-size structured elements: result, file list, event list, bearer, transport level."""
    cdef Py_ssize_t i
    if tag == 0x03:
        if n == 0:
            raise LengthError("empty result", voff, tag)
        return {"general_result": p[0], "additional_information": _hex(p + 1, n - 1)}
    if tag == 0x12:
        if n == 0:
            raise LengthError("empty file list", voff, tag)
        return {"number_of_files": p[0], "files": _hex(p + 1, n - 1)}
    if tag == 0x19:
        return [_named(EVENTS, p[i]) for i in range(n)]
    if tag == 0x35:
        if n == 0:
            raise LengthError("empty bearer description", voff, tag)
        return {"bearer_type": _named(BEARERS, p[0]), "bearer_parameters": _hex(p + 1, n - 1)}
    _need(n, 3, voff, tag)  # 0x3C UICC/terminal interface transport level (§8.59)
    return {"transport_protocol_type": _named(TRANSPORTS, p[0]), "port_number": (p[1] << 8) | p[2]}


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _alpha(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Alpha identifier (TS 102 223 §8.2): GSM default alphabet, or '80' + UCS2."""
    cdef Py_ssize_t i
    if n and p[0] == 0x80:
        if n % 2 != 1:
            raise BadValueError("UCS2 text of odd length", voff, tag)
        return PyBytes_FromStringAndSize(<const char*>p + 1, n - 1).decode("utf-16-be", "surrogatepass")
    for i in range(n):
        if p[i] > 0x7F:
            raise BadValueError("not in the GSM default alphabet", voff + i, tag)
    return "".join([GSM[p[i]] for i in range(n)])


cdef object _text_string(const unsigned char* p, Py_ssize_t n):
    """Text string (TS 102 223 §8.15): DCS 04 8-bit (as Latin-1), 08 UCS2, else raw hex."""
    if n == 0:
        return None
    body = PyBytes_FromStringAndSize(<const char*>p + 1, n - 1)
    if p[0] == 0x04:
        return {"data_coding_scheme": p[0], "text": body.decode("latin-1")}
    if p[0] == 0x08 and (n - 1) % 2 == 0:
        return {"data_coding_scheme": p[0], "text": body.decode("utf-16-be", "surrogatepass")}
    return {"data_coding_scheme": p[0], "data": body.hex()}


@cython.boundscheck(False)
@cython.wraparound(False)
cdef dict _address(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Address (TS 102 223 §8.1): TON/NPI, then swapped BCD digits, 'F' filler last."""
    cdef Py_ssize_t i
    cdef int lo, hi
    cdef list digits = []
    if n == 0:
        raise LengthError("empty address", voff, tag)
    for i in range(1, n):
        lo, hi = p[i] & 0x0F, p[i] >> 4
        if lo == 0x0F:
            raise BadValueError("filler inside the number", voff + i, tag)
        digits.append(BCD[lo])
        if hi == 0x0F:
            if i != n - 1:
                raise BadValueError("filler inside the number", voff + i, tag)
        else:
            digits.append(BCD[hi])
    return {"ton_npi": p[0], "dialling_number": "".join(digits)}


cdef object _other_address(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Other address (TS 102 223 §8.58): type, then IPv4 or IPv6 as text; empty = dynamic."""
    if n == 0:
        return None
    if p[0] == 0x21:
        if n != 5:
            raise LengthError("address of the wrong size", voff, tag)
        return {"type_of_address": "ipv4", "address": _dotted(p + 1)}
    if p[0] == 0x57:
        if n != 17:
            raise LengthError("address of the wrong size", voff, tag)
        raw = PyBytes_FromStringAndSize(<const char*>p + 1, 16)
        return {"type_of_address": "ipv6", "address": ipaddress.IPv6Address(raw).compressed}
    return {"type_of_address": p[0], "address": _hex(p + 1, n - 1)}


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _apn(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Network access name (TS 102 223 §8.61, TS 23.003 §9.1): labels -> dotted text."""
    cdef Py_ssize_t pos = 0, i, size
    cdef bytes out = PyBytes_FromStringAndSize(NULL, n - 1 if n else 0)
    cdef char* q = out
    while pos < n:
        size = p[pos]
        if size == 0:
            raise BadValueError("empty APN label", voff + pos, tag)
        if pos + 1 + size > n:
            raise LengthError("APN label past the end", voff + pos, tag)
        for i in range(pos + 1, pos + 1 + size):
            if p[i] <= 0x20 or p[i] >= 0x7F or p[i] == 0x2E:
                raise BadValueError("bad character in APN", voff + i, tag)
        if pos:
            q[pos - 1] = 0x2E  # the length byte of every later label becomes a dot
        for i in range(pos + 1, pos + 1 + size):
            q[i - 1] = p[i]
        pos += 1 + size
    return PyUnicode_DecodeASCII(q, n - 1 if n else 0, NULL)


cdef object _value(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """One element's value -> its named form (hex text for opaque or unknown elements)."""
    if tag == 0x01 or tag == 0x02 or tag == 0x04 or tag == 0x1E or tag == 0x37 or tag == 0x38 \
            or tag == 0x39:
        return _small(p, n, voff, tag)
    if tag == 0x03 or tag == 0x12 or tag == 0x19 or tag == 0x35 or tag == 0x3C:
        return _structured(p, n, voff, tag)
    if tag == 0x05:
        return _alpha(p, n, voff, tag)
    if tag == 0x06:
        return _address(p, n, voff, tag)
    if tag == 0x0D:
        return _text_string(p, n)
    if tag == 0x3E:
        return _other_address(p, n, voff, tag)
    if tag == 0x47:
        return _apn(p, n, voff, tag)
    return _hex(p, n)


def decode_value(tag, value, voff):
    """One element's value -> its named form (hex text for opaque or unknown elements)."""
    cdef bytes b = tlv_bytes(value)
    return _value(b, len(b), voff, tag)


cdef str _key(int tag, int command, bint* state, dict fields):
    """Element key: positional names in OPEN CHANNEL, _2/_3 suffixes for repeats."""
    cdef PyObject* hit = PyDict_GetItem(ELEMENTS, tag)
    cdef str name = <str>hit if hit is not NULL else f"tag_{tag:02x}"
    cdef int i
    if command == 0x40:
        if tag == 0x3C:
            state[0] = True
        elif tag == 0x3E:
            name = "data_destination_address" if state[0] else "local_address"
        elif tag == 0x0D:
            name = "user_password" if state[1] else "user_login"
            state[1] = True
    if name in fields:
        i = 2
        while f"{name}_{i}" in fields:
            i += 1
        name = f"{name}_{i}"
    return name


@cython.boundscheck(False)
@cython.wraparound(False)
cdef list _elements(bytes buf, Py_ssize_t pos, Py_ssize_t end, dict out, int* first_tag=NULL):
    """COMPREHENSION-TLVs of buf[pos:end] into `out` (named values); returns the CR names."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t total = len(buf), vpos, length = 0
    cdef unsigned int tag = 0
    cdef bint cr = False
    cdef bint[2] state = [False, False]
    cdef int command = -1
    cdef list cr_names = []
    cdef str name
    while pos < end:
        pos = tlv_ctag(p, pos, end, &tag, &cr)
        vpos = tlv_clength(p, pos, end, tag, &length)
        if vpos + length > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        if first_tag is not NULL and first_tag[0] < 0:
            first_tag[0] = tag
        name = _key(tag, command, state, out)
        value = _value(p + vpos, length, vpos, tag)
        if tag == 0x01 and command < 0:
            command = p[vpos + 1]
        out[name] = value
        if cr:
            cr_names.append(name)
        pos = vpos + length
    return cr_names


def decode_elements(buf, pos, end, out):
    """COMPREHENSION-TLVs of buf[pos:end] into `out` (named values); returns the CR names."""
    return _elements(tlv_bytes(buf), pos, end, out)


cdef Py_ssize_t _outer(bytes buf, bint proactive, str what, Py_ssize_t* end) except -1:
    """Open the BER-TLV around a proactive command or envelope: returns the content start."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf), pos, vpos
    cdef unsigned long tag = 0
    cdef long long length = 0
    pos = tlv_ber_tag(p, 0, n, &tag)
    if (proactive and tag != 0xD0) or (not proactive and tag != 0xD1 and tag != 0xD6):
        raise BadTagError(f"not {what}", 0, tag)
    vpos = tlv_ber_length(p, pos, n, tag, &length)
    if length < 0:
        raise LengthError("indefinite length not allowed", pos, tag)
    if vpos + length > n:
        raise TruncatedError("value truncated", pos, tag)
    if vpos + length < n:
        raise LengthError(f"bytes after the {what}", vpos + length, tag)
    end[0] = vpos + length
    return vpos


cdef dict _with_command(bytes buf, Py_ssize_t pos, Py_ssize_t end):
    cdef dict out = {"command": None}
    cdef int first = -1
    cdef list cr = _elements(buf, pos, end, out, &first)
    details = out.get("command_details")
    if details is None or first != 0x01:
        raise BadTagError("command details must come first", pos, 0x01)
    out["command"] = _named(COMMAND_TYPES, details["type_of_command"])
    out["comprehension_required"] = cr
    return out


def decode_proactive(buf):
    """Proactive command 'D0' (TS 102 223 §6.6) -> named fields."""
    cdef bytes b = tlv_bytes(buf)
    cdef Py_ssize_t end = 0
    cdef Py_ssize_t pos = _outer(b, True, "a proactive command", &end)
    return _with_command(b, pos, end)


def decode_terminal_response(buf):
    """TERMINAL RESPONSE (TS 102 223 §6.8): bare COMPREHENSION-TLVs -> named fields."""
    cdef bytes b = tlv_bytes(buf)
    return _with_command(b, 0, len(b))


def decode_envelope(buf):
    """ENVELOPE 'D6' event download or 'D1' SMS-PP download (TS 102 223 §7) -> named fields."""
    cdef bytes b = tlv_bytes(buf)
    cdef Py_ssize_t end = 0
    cdef Py_ssize_t pos = _outer(b, False, "an envelope", &end)
    cdef dict out = {"envelope": ENVELOPES[b[0]]}
    out["comprehension_required"] = _elements(b, pos, end, out)
    return out
