"""Compiled BIP proactive commands, terminal responses and envelopes, TS 102 223 (twin: codec/_cat_py.py)."""

# Decoding walks the COMPREHENSION-TLVs once over the raw buffer and builds the named fields
# directly; the encoder is shared with the twin (it is mostly Python objects, not byte walking).
# The hot path (issue 3: OPEN CHANNEL to named fields in ≤ 2 µs) makes no Python-level lookups:
# element, device, bearer, transport and command names come from C arrays indexed by the code
# byte, repeats are found with a C "seen" array, and text is written straight into new str objects.

cimport cython
from cpython.bytes cimport PyBytes_FromStringAndSize
from cpython.dict cimport PyDict_Contains, PyDict_SetItem
from cpython.list cimport PyList_Append, PyList_GetSlice
from cpython.object cimport PyObject
from cpython.ref cimport Py_INCREF, Py_XDECREF
from cpython.tuple cimport PyTuple_New, PyTuple_SET_ITEM
from cpython.unicode cimport PyUnicode_1BYTE_DATA, PyUnicode_New
from libc.string cimport memcmp, memcpy, memset

from esimota._ext.tlv cimport tlv_ber_length, tlv_ber_tag, tlv_bytes, tlv_clength, tlv_ctag

import ipaddress
from collections.abc import ItemsView, KeysView, Mapping, ValuesView

from esimota.codec import _cat_py as _twin
from esimota.codec import _cat_tables as T
from esimota.codec._types import plain as _plain
from esimota.errors import BadTagError, BadValueError, LengthError, TruncatedError

cdef extern from *:
    """
    /* The first n (<= 8) bytes at p as a little-endian integer; `wide`: 8 bytes may be read. */
    static CYTHON_INLINE unsigned long long cat_load_le(const unsigned char *p, Py_ssize_t n, int wide)
    {
        unsigned long long v = 0;
        Py_ssize_t i;
    #if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        if (wide) {
            memcpy(&v, p, 8);
            return n == 8 ? v : v & ((1ULL << (8 * n)) - 1);
        }
    #endif
        for (i = 0; i < n; i++)
            v |= (unsigned long long)p[i] << (8 * i);
        return v;
    }
    """
    unsigned long long cat_load_le(const unsigned char* p, Py_ssize_t n, bint wide) noexcept

cdef extern from "Python.h":
    const Py_ssize_t PY_SSIZE_T_MAX

cdef dict ENVELOPES = T.ENVELOPES
cdef str GSM = T.GSM_ALPHABET, BCD = T.BCD_DIGITS

# the encoder is not byte walking: one implementation, shared with the twin (STYLE 3)
encode_value = _twin.encode_value
encode_proactive = _twin.encode_proactive
encode_terminal_response = _twin.encode_terminal_response
encode_envelope = _twin.encode_envelope


# --- results: Fields, a read-only mapping of a shared key set and a tuple of values -----------------
# Same behaviour as the twin's esimota.codec._types.Fields (a dict inside). Here a record is its
# shape (_Keys: the names in order and where each is, shared by every record of that shape) and a
# tuple of values: one object and one tuple per record instead of a dict table, and, being
# read-only, a record of immutable values can be shared (the value memo below hands them out).

@cython.final
@cython.no_gc
cdef class _Keys:
    """Names of one record shape, in order, and the position of each."""
    cdef tuple names
    cdef dict index


cdef _Keys _keys(tuple names):
    cdef _Keys k = _Keys.__new__(_Keys)
    k.names, k.index = names, {name: i for i, name in enumerate(names)}
    return k


cdef _Keys NO_KEYS = _keys(())


@cython.final
@cython.freelist(64)
cdef class Fields:
    """Named fields of a decoded CAT structure (TS 102 223): a read-only mapping, keys in wire order.

    What a card or terminal sent is a fact, so its decoded form cannot be changed in place: an
    element that repeats from command to command may be one shared record. `to_dict()` gives
    plain dicts and lists (to change, or for JSON); `Fields(mapping)` builds one, and the encoders
    take any mapping. Equal to any mapping with the same items, like a dict (order aside).
    """
    cdef _Keys _k
    cdef tuple _v

    def __cinit__(self, *args, **kwargs):
        self._k, self._v = NO_KEYS, ()

    def __init__(self, data=()):
        if self._k is not NO_KEYS:
            raise TypeError("Fields is read-only")
        d = dict(data)
        self._k, self._v = _keys(tuple(d)), tuple(d.values())

    def __getitem__(self, key):
        return self._v[<Py_ssize_t>self._k.index[key]]

    def __len__(self):
        return len(self._v)

    def __iter__(self):
        return iter(self._k.names)

    def __contains__(self, key):
        return key in self._k.index

    def get(self, key, default=None):
        i = self._k.index.get(key)
        return default if i is None else self._v[<Py_ssize_t>i]

    def keys(self):
        return KeysView(self)

    def items(self):
        return _Items(self)

    def values(self):
        return ValuesView(self)

    def _pairs(self):
        return zip(self._k.names, self._v)

    def __eq__(self, other):
        cdef Fields o
        if type(other) is Fields:
            o = <Fields>other
            if o._k is self._k:
                return self._v == o._v
        elif not isinstance(other, Mapping):
            return NotImplemented
        if len(other) != len(self._v):
            return False
        for k, v in zip(self._k.names, self._v):
            if k not in other or not (other[k] == v):
                return False
        return True

    def __ne__(self, other):
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None

    def __repr__(self):
        return f"Fields({dict(zip(self._k.names, self._v))!r})"

    def __reduce__(self):
        return Fields, (dict(zip(self._k.names, self._v)),)

    def to_dict(self):
        """Plain dicts and lists all the way down (a copy: changing it changes nothing here)."""
        return {k: _plain(v) for k, v in zip(self._k.names, self._v)}


class _Items(ItemsView):
    """items() of a Fields: a set-like view that iterates without a lookup per key."""
    __slots__ = ()

    def __iter__(self):
        return self._mapping._pairs()


Mapping.register(Fields)


cdef inline Fields _rec(_Keys keys, tuple values):
    cdef Fields f = Fields.__new__(Fields)
    f._k, f._v = keys, values
    return f


cdef Fields _from_dict(dict d):
    """A record of a dict's items (the general walk: a shape of its own, not kept)."""
    return _rec(_keys(tuple(d)), tuple(d.values()))


cdef _Keys K_COMMAND_DETAILS = _keys(("command_number", "type_of_command", "command_qualifier"))
cdef _Keys K_DEVICES = _keys(("source_device_identity", "destination_device_identity"))
cdef _Keys K_DURATION = _keys(("time_unit", "time_interval"))
cdef _Keys K_ICON = _keys(("icon_qualifier", "icon_identifier"))
cdef _Keys K_STATUS = _keys(("channel_id", "link_established", "status_bits", "further_info"))
cdef _Keys K_RESULT = _keys(("general_result", "additional_information"))
cdef _Keys K_FILES = _keys(("number_of_files", "files"))
cdef _Keys K_BEARER = _keys(("bearer_type", "bearer_parameters"))
cdef _Keys K_TRANSPORT = _keys(("transport_protocol_type", "port_number"))
cdef _Keys K_TEXT = _keys(("data_coding_scheme", "text"))
cdef _Keys K_TEXT_DATA = _keys(("data_coding_scheme", "data"))
cdef _Keys K_ADDRESS = _keys(("ton_npi", "dialling_number"))
cdef _Keys K_OTHER_ADDRESS = _keys(("type_of_address", "address"))


# --- name tables: code byte -> borrowed name, NULL when the spec table has none ------------------

# Name ids of the "seen" array: an element's tag (every named tag is below 0x80), then the four
# positional names of OPEN CHANNEL (TS 102 223 §6.6.27).
cdef enum:
    ID_LOCAL = 128
    ID_DESTINATION = 129
    ID_LOGIN = 130
    ID_PASSWORD = 131
    N_IDS = 132

cdef PyObject* ELEMENT_NAMES[128]       # §9.3 tags
cdef PyObject* DEVICE_NAMES[256]        # §8.7
cdef PyObject* EVENT_NAMES[256]         # §8.25
cdef PyObject* BEARER_NAMES[256]        # §8.52
cdef PyObject* TRANSPORT_NAMES[256]     # §8.59
cdef PyObject* COMMAND_NAMES[256]       # §9.4
cdef list _PINNED = []                  # owns every name the arrays borrow


cdef void _fill(PyObject** table, Py_ssize_t size, dict names):
    cdef Py_ssize_t i
    for i in range(size):
        table[i] = NULL
    for code, name in names.items():
        if 0 <= code < size:
            _PINNED.append(name)
            table[<Py_ssize_t>code] = <PyObject*>name


_fill(ELEMENT_NAMES, 128, T.ELEMENTS)
_fill(DEVICE_NAMES, 256, T.DEVICES)
_fill(EVENT_NAMES, 256, T.EVENTS)
_fill(BEARER_NAMES, 256, T.BEARERS)
_fill(TRANSPORT_NAMES, 256, T.TRANSPORTS)
_fill(COMMAND_NAMES, 256, T.COMMAND_TYPES)
cdef str LOCAL = T.LOCAL_ADDRESS, DESTINATION = T.DESTINATION_ADDRESS
cdef str LOGIN = T.USER_LOGIN, PASSWORD = T.USER_PASSWORD


cdef inline object _named(PyObject** table, unsigned char code):
    """The name of `code`, or the code itself (small ints are cached by CPython)."""
    cdef PyObject* hit = table[code]
    if hit is NULL:
        return code
    return <object>hit


cdef inline int _need(Py_ssize_t length, Py_ssize_t size, Py_ssize_t voff, int tag) except -1:
    if length != size:
        raise LengthError(f"element must be {size} bytes", voff, tag)
    return 0


# --- text: written straight into a new compact ASCII str (no bytes object in between) ------------

cdef const char* _HEXC = b"0123456789abcdef"


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _hex(const unsigned char* p, Py_ssize_t n):
    """Lower-case hex text of n bytes."""
    cdef str out = PyUnicode_New(2 * n, 127)
    cdef unsigned char* q = PyUnicode_1BYTE_DATA(out)
    cdef Py_ssize_t i
    for i in range(n):
        q[2 * i] = _HEXC[p[i] >> 4]
        q[2 * i + 1] = _HEXC[p[i] & 0x0F]
    return out


cdef inline str _ascii(const char* p, Py_ssize_t n):
    """str of n ASCII bytes already checked by the caller."""
    cdef str out = PyUnicode_New(n, 127)
    memcpy(PyUnicode_1BYTE_DATA(out), p, n)
    return out


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
    return _ascii(out, k)


# --- element values (TS 102 223 §8) ---------------------------------------------------------------

@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _small(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Fixed-size elements: command details, device identities, duration, icon, sizes, status."""
    if tag == 0x01:
        _need(n, 3, voff, tag)
        return _rec(K_COMMAND_DETAILS, (p[0], p[1], p[2]))
    if tag == 0x02:
        _need(n, 2, voff, tag)
        return _rec(K_DEVICES, (_named(DEVICE_NAMES, p[0]), _named(DEVICE_NAMES, p[1])))
    if tag == 0x04:
        _need(n, 2, voff, tag)
        return _rec(K_DURATION, (p[0], p[1]))
    if tag == 0x1E:
        _need(n, 2, voff, tag)
        return _rec(K_ICON, (p[0], p[1]))
    if tag == 0x37:
        _need(n, 1, voff, tag)
        return p[0]
    if tag == 0x39:
        _need(n, 2, voff, tag)
        return (p[0] << 8) | p[1]
    _need(n, 2, voff, tag)  # 0x38 channel status (§8.56)
    return _rec(K_STATUS, (p[0] & 0x07, (p[0] & 0x80) != 0, (p[0] >> 3) & 0x0F, p[1]))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _structured(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Variable-size structured elements: result, file list, event list, bearer, transport level."""
    cdef Py_ssize_t i
    cdef list events
    if tag == 0x03:
        if n == 0:
            raise LengthError("empty result", voff, tag)
        return _rec(K_RESULT, (p[0], _hex(p + 1, n - 1)))
    if tag == 0x12:
        if n == 0:
            raise LengthError("empty file list", voff, tag)
        return _rec(K_FILES, (p[0], _hex(p + 1, n - 1)))
    if tag == 0x19:
        events = []
        for i in range(n):
            PyList_Append(events, _named(EVENT_NAMES, p[i]))
        return events
    if tag == 0x35:
        if n == 0:
            raise LengthError("empty bearer description", voff, tag)
        return _rec(K_BEARER, (_named(BEARER_NAMES, p[0]), _hex(p + 1, n - 1)))
    _need(n, 3, voff, tag)  # 0x3C UICC/terminal interface transport level (§8.59)
    return _rec(K_TRANSPORT, (_named(TRANSPORT_NAMES, p[0]), (p[1] << 8) | p[2]))


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
    if p[0] == 0x04:
        return _rec(K_TEXT, (p[0], (<const char*>p)[1:n].decode("latin-1")))
    if p[0] == 0x08 and (n - 1) % 2 == 0:
        return _rec(K_TEXT, (p[0], (<const char*>p)[1:n].decode("utf-16-be", "surrogatepass")))
    return _rec(K_TEXT_DATA, (p[0], _hex(p + 1, n - 1)))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Fields _address(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
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
    return _rec(K_ADDRESS, (p[0], "".join(digits)))


cdef object _other_address(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Other address (TS 102 223 §8.58): type, then IPv4 or IPv6 as text; empty = dynamic."""
    if n == 0:
        return None
    if p[0] == 0x21:
        if n != 5:
            raise LengthError("address of the wrong size", voff, tag)
        return _rec(K_OTHER_ADDRESS, ("ipv4", _dotted(p + 1)))
    if p[0] == 0x57:
        if n != 17:
            raise LengthError("address of the wrong size", voff, tag)
        raw = PyBytes_FromStringAndSize(<const char*>p + 1, 16)
        return _rec(K_OTHER_ADDRESS, ("ipv6", ipaddress.IPv6Address(raw).compressed))
    return _rec(K_OTHER_ADDRESS, (p[0], _hex(p + 1, n - 1)))


@cython.boundscheck(False)
@cython.wraparound(False)
cdef str _apn(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, int tag):
    """Network access name (TS 102 223 §8.61, TS 23.003 §9.1): labels -> dotted text.

    The text is exactly n - 1 characters (every later length byte becomes a dot), so it is
    written in place into its str once every label has been checked.
    """
    cdef Py_ssize_t pos = 0, i, size
    cdef str out
    cdef unsigned char* q
    while pos < n:
        size = p[pos]
        if size == 0:
            raise BadValueError("empty APN label", voff + pos, tag)
        if pos + 1 + size > n:
            raise LengthError("APN label past the end", voff + pos, tag)
        for i in range(pos + 1, pos + 1 + size):
            if p[i] <= 0x20 or p[i] >= 0x7F or p[i] == 0x2E:
                raise BadValueError("bad character in APN", voff + i, tag)
        pos += 1 + size
    out = PyUnicode_New(n - 1 if n else 0, 127)
    q = <unsigned char*>PyUnicode_1BYTE_DATA(out)
    for i in range(1, n):
        q[i - 1] = p[i]
    pos = 0
    while n and pos + 1 + p[pos] < n:  # the length byte of every later label becomes a dot
        pos += 1 + p[pos]
        q[pos - 1] = 0x2E
    return out


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


# --- memo of decoded values -------------------------------------------------------------------------
# An element's named form depends only on its tag and value bytes, and most BIP elements are a
# few bytes that repeat from command to command (command details, device identities, bearer,
# transport level, address, APN). Values of up to 8 bytes are kept in a small direct-mapped table
# of templates: str, int, None and Fields of those are immutable and shared; a list (the event
# list, of names) is handed out as a copy, so no caller ever holds a mutable template. Errors
# are never cached: a miss decodes (and raises) exactly as before.

cdef struct MemoSlot:
    unsigned long long value_bytes
    unsigned int meta               # ((tag << 4) | length) + 1; 0 = empty slot
    PyObject* template              # owned reference

cdef enum:
    MEMO_SIZE = 512                 # a power of two
    MEMO_MAX_LENGTH = 8

cdef MemoSlot MEMO[MEMO_SIZE]       # static storage: zeroed, so every slot starts empty


cdef inline object _handout(object template):
    """The template itself when immutable, else a copy (a flat list)."""
    if type(template) is list:
        return PyList_GetSlice(template, 0, PY_SSIZE_T_MAX)
    return template


@cython.boundscheck(False)
@cython.wraparound(False)
cdef object _memo_value(const unsigned char* p, Py_ssize_t n, Py_ssize_t voff, unsigned int tag,
                        bint wide):
    """_value through the memo for short values; longer ones are decoded every time.

    `wide`: 8 bytes may be read at p (the value's bytes are then loaded as one word).
    """
    cdef unsigned long long key
    cdef unsigned int meta
    cdef MemoSlot* slot
    cdef PyObject* old
    if n > MEMO_MAX_LENGTH or tag > 0x7FFF:
        return _value(p, n, voff, tag)
    key = cat_load_le(p, n, wide)
    meta = ((tag << 4) | <unsigned int>n) + 1
    slot = &MEMO[((key ^ (<unsigned long long>meta << 40)) * 0x9E3779B97F4A7C15ULL) >> 55]
    if slot.meta == meta and slot.value_bytes == key:
        return _handout(<object>slot.template)
    value = _value(p, n, voff, tag)
    old = slot.template
    Py_INCREF(value)
    slot.template, slot.meta, slot.value_bytes = <PyObject*>value, meta, key
    Py_XDECREF(old)
    return _handout(value)


def decode_value(tag, value, voff):
    """One element's value -> its named form (hex text for opaque or unknown elements)."""
    cdef bytes b = tlv_bytes(value)
    return _value(b, len(b), voff, tag)


# --- the element walk (TS 102 223 §6.6, §6.8, §7: COMPREHENSION-TLVs in wire order) -------------

cdef object _key(unsigned int tag, int command, bint* state, dict fields, unsigned char* seen):
    """Element key: positional names in OPEN CHANNEL, _2/_3 suffixes for repeats.

    `seen` (NULL when `fields` came from the caller) marks the names already used, so the first
    use of a named element needs no dict lookup; repeats and tag_XX names ask `fields`.
    """
    cdef PyObject* hit = ELEMENT_NAMES[tag] if tag < 128 else NULL
    cdef object name
    cdef int i, nid = tag
    if hit is NULL:
        name = f"tag_{tag:02x}"
        nid = -1
    else:
        name = <object>hit
    if command == 0x40:  # OPEN CHANNEL (§6.6.27) names two of its elements by place
        if tag == 0x3C:
            state[0] = True
        elif tag == 0x3E:
            name = DESTINATION if state[0] else LOCAL
            nid = ID_DESTINATION if state[0] else ID_LOCAL
        elif tag == 0x0D:
            name = PASSWORD if state[1] else LOGIN
            nid = ID_PASSWORD if state[1] else ID_LOGIN
            state[1] = True
    if seen is not NULL and nid >= 0 and not seen[nid]:
        seen[nid] = 1
        return name
    if PyDict_Contains(fields, name):
        i = 2
        while f"{name}_{i}" in fields:
            i += 1
        name = f"{name}_{i}"
    return name


@cython.boundscheck(False)
@cython.wraparound(False)
cdef list _elements(bytes buf, Py_ssize_t pos, Py_ssize_t end, dict out, bint own,
                    int* first_tag, int* command):
    """COMPREHENSION-TLVs of buf[pos:end] into `out` (named values); returns the CR names.

    `own`: `out` holds no element name yet (the decoders' own dicts), so `seen` may stand in for
    the dict lookups. `command` receives the type of command of the first Command details.
    """
    cdef const unsigned char* p = buf
    cdef Py_ssize_t total = len(buf), vpos, length = 0
    cdef unsigned int tag = 0
    cdef unsigned char b
    cdef bint cr = False
    cdef bint[2] state = [False, False]
    cdef unsigned char[N_IDS] seen
    cdef list cr_names = []
    memset(seen, 0, N_IDS)
    while pos < end:
        b = p[pos]
        if pos + 1 < end and b != 0x00 and b != 0x7F and b != 0x80 and b != 0xFF \
                and p[pos + 1] < 0x80:
            # §7.1.1.1 one-byte tag and one-byte length, the common case, read in place
            tag, cr, length = b & 0x7F, b >> 7, p[pos + 1]
            pos, vpos = pos + 1, pos + 2
        else:
            pos = tlv_ctag(p, pos, end, &tag, &cr)
            vpos = tlv_clength(p, pos, end, tag, &length)
        if vpos + length > end:
            if end == total:
                raise TruncatedError("value truncated", pos, tag)
            raise LengthError("value past the end of its parent", pos, tag)
        if first_tag[0] < 0:
            first_tag[0] = tag
        name = _key(tag, command[0], state, out, seen if own else NULL)
        value = _memo_value(p + vpos, length, vpos, tag, vpos + 8 <= total)
        if tag == 0x01 and command[0] < 0:
            command[0] = p[vpos + 1]
        PyDict_SetItem(out, name, value)
        if cr:
            PyList_Append(cr_names, name)
        pos = vpos + length
    return cr_names


def decode_elements(buf, pos, end, out):
    """COMPREHENSION-TLVs of buf[pos:end] into `out` (named values); returns the CR names."""
    cdef int first = -1, command = -1
    return _elements(tlv_bytes(buf), pos, end, out, False, &first, &command)


cdef Py_ssize_t _outer(bytes buf, bint proactive, str what, Py_ssize_t* end) except -1:
    """Open the BER-TLV around a proactive command or envelope: returns the content start."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t n = len(buf), pos, vpos
    cdef unsigned long tag = 0
    cdef long long length = 0
    if n >= 2 and p[1] < 0x80 and (p[0] == 0xD0 if proactive else p[0] == 0xD1 or p[0] == 0xD6):
        tag, length, pos, vpos = p[0], p[1], 1, 2  # one-byte tag, short length: read in place
    else:
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


# --- key layouts ------------------------------------------------------------------------------------
# A result's keys, in order, depend only on its kind (command or envelope), its type of command
# and the sequence of its element tags with their CR bits, and a handful of such layouts cover BIP
# traffic. Each layout keeps the shape of its results (_Keys) and its CR names: a decode makes the
# tuple of values (the head, the elements in wire order, a fresh list of the CR names) and one
# Fields around it. A decode holds its own reference to its layout, so a re-entrant decode (a GC
# callback) that evicts the slot cannot change the result. Inputs that do not fit (a long tag or
# length, more than LAYOUT_MAX elements, anything truncated, Command details not first) take the
# general walk, which also raises every error.

cdef enum:
    LAYOUT_SLOTS = 64               # a power of two: direct-mapped, a new layout evicts the old
    LAYOUT_MAX = 16                 # elements per layout
    KIND_COMMAND = 1                # "command" first, then elements, then CR names
    KIND_ENVELOPE = 2               # "envelope" first, then elements, then CR names


@cython.final
@cython.no_gc
cdef class _Layout:
    """One element layout: its tags, the shape of its results, its CR names."""
    cdef int kind, command
    cdef Py_ssize_t n
    cdef unsigned char tags[LAYOUT_MAX]
    cdef _Keys keys                 # head, element names, "comprehension_required"
    cdef list cr                    # CR names, handed out as a copy


cdef PyObject* LAYOUTS[LAYOUT_SLOTS]    # owned references; static storage starts NULL


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Py_ssize_t _scan(const unsigned char* p, Py_ssize_t pos, Py_ssize_t end, unsigned char* tags,
                      Py_ssize_t* vpos, int* command):
    """Tag bytes and value offsets of the elements in p[pos:end], and the type of command of the
    first Command details; -1 if an element does not fit a layout (then the general walk runs)."""
    cdef Py_ssize_t n = 0
    cdef unsigned char b
    command[0] = -1
    while pos < end:
        if n == LAYOUT_MAX or pos + 1 >= end:
            return -1
        b = p[pos]
        if b == 0x00 or b == 0x7F or b == 0x80 or b == 0xFF or p[pos + 1] >= 0x80 \
                or pos + 2 + p[pos + 1] > end:
            return -1
        if (b & 0x7F) == 0x01 and command[0] < 0:
            if p[pos + 1] != 3:
                return -1  # the general walk raises the length error where the twin does
            command[0] = p[pos + 3]
        tags[n], vpos[n] = b, pos + 2
        n += 1
        pos += 2 + p[pos + 1]
    return n


cdef _Layout _new_layout(int kind, int command, const unsigned char* tags, Py_ssize_t n):
    """The keys the general walk would set for these elements, in its order (see _elements)."""
    cdef _Layout lay = _Layout.__new__(_Layout)
    cdef dict t = {}
    cdef list cr = []
    cdef bint[2] state = [False, False]
    cdef unsigned char[N_IDS] seen
    cdef int cmd = -1
    cdef Py_ssize_t i
    memset(seen, 0, N_IDS)
    t["command" if kind == KIND_COMMAND else "envelope"] = None
    for i in range(n):
        name = _key(tags[i] & 0x7F, cmd, state, t, seen)
        if (tags[i] & 0x7F) == 0x01 and cmd < 0:
            cmd = command
        t[name] = None
        if tags[i] & 0x80:
            cr.append(name)
    t["comprehension_required"] = None
    lay.kind, lay.command, lay.n = kind, command, n
    memcpy(lay.tags, tags, n)
    lay.keys, lay.cr = _keys(tuple(t)), cr
    return lay


cdef _Layout _layout(int kind, int command, const unsigned char* tags, Py_ssize_t n):
    """The layout of these elements, made on first sight (evicting its slot's previous one)."""
    cdef unsigned long long h = 0xCBF29CE484222325ULL ^ <unsigned long long>(kind * 512 + command + 1)
    cdef Py_ssize_t i
    cdef PyObject* old
    cdef _Layout lay
    for i in range(n):  # FNV-1a over the tag bytes
        h = (h ^ tags[i]) * 0x100000001B3ULL
    i = <Py_ssize_t>(((h ^ <unsigned long long>n) * 0x9E3779B97F4A7C15ULL) >> 58)
    old = LAYOUTS[i]
    if old is not NULL:
        lay = <_Layout>old
        if lay.kind == kind and lay.command == command and lay.n == n \
                and memcmp(lay.tags, tags, n) == 0:
            return lay
    lay = _new_layout(kind, command, tags, n)
    old = LAYOUTS[i]
    Py_INCREF(lay)
    LAYOUTS[i] = <PyObject*>lay
    Py_XDECREF(old)
    return lay


cdef inline void _put(tuple values, Py_ssize_t i, object value):
    Py_INCREF(value)
    PyTuple_SET_ITEM(values, i, value)


@cython.boundscheck(False)
@cython.wraparound(False)
cdef Fields _filled(_Layout lay, bytes buf, const Py_ssize_t* vpos, object head):
    """The layout's record: the head, every element's value in wire order, the CR names."""
    cdef const unsigned char* p = buf
    cdef Py_ssize_t total = len(buf), i, v
    cdef tuple values = PyTuple_New(lay.n + 2)   # unset items are NULL: a raise frees it safely
    _put(values, 0, head)
    for i in range(lay.n):
        v = vpos[i]
        _put(values, i + 1, _memo_value(p + v, p[v - 1], v, lay.tags[i] & 0x7F, v + 8 <= total))
    _put(values, lay.n + 1, PyList_GetSlice(lay.cr, 0, PY_SSIZE_T_MAX))
    return _rec(lay.keys, values)


cdef Fields _with_command(bytes buf, Py_ssize_t pos, Py_ssize_t end):
    """Proactive command or terminal response: Command details must be the first element."""
    cdef unsigned char[LAYOUT_MAX] tags
    cdef Py_ssize_t[LAYOUT_MAX] vpos
    cdef int first = -1, command = -1
    cdef Py_ssize_t n = _scan(buf, pos, end, tags, vpos, &command)
    cdef dict out
    cdef list cr
    if n > 0 and (tags[0] & 0x7F) == 0x01:
        return _filled(_layout(KIND_COMMAND, command, tags, n), buf, vpos,
                       _named(COMMAND_NAMES, <unsigned char>command))
    out = {"command": None}  # first key: the type of command, named below
    cr = _elements(buf, pos, end, out, True, &first, &command)
    if first != 0x01:
        raise BadTagError("command details must come first", pos, 0x01)
    PyDict_SetItem(out, "command", _named(COMMAND_NAMES, <unsigned char>command))
    PyDict_SetItem(out, "comprehension_required", cr)
    return _from_dict(out)


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
    cdef unsigned char[LAYOUT_MAX] tags
    cdef Py_ssize_t[LAYOUT_MAX] vpos
    cdef int first = -1, command = -1
    cdef Py_ssize_t n = _scan(b, pos, end, tags, vpos, &command)
    cdef dict out
    if n >= 0:
        return _filled(_layout(KIND_ENVELOPE, command, tags, n), b, vpos, ENVELOPES[b[0]])
    out = {"envelope": ENVELOPES[b[0]]}
    PyDict_SetItem(out, "comprehension_required", _elements(b, pos, end, out, True, &first, &command))
    return _from_dict(out)
