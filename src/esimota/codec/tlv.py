"""BER-TLV, COMPREHENSION-TLV, COMPACT-TLV and DGI lengths: facade over the compiled core or its twin.

Public API (same in esimota._ext.tlv and esimota.codec._tlv_py; errors from esimota.errors):
    ber_decode(buf, max_depth=16) -> [(tag, value)]   value bytes, or a list when constructed
    ber_encode(items) -> bytes                        encode(decode(x)) == x for canonical x
    ber_decode_one(buf, offset=0) -> (tag, value, next_offset)
    ber_read_tag(buf, offset=0) -> (tag, next)        tag = integer of its bytes (0x9F70)
    ber_read_length(buf, offset=0, tag=None) -> (length or -1 if indefinite, next)
    ber_encode_tag(tag), ber_encode_length(n) -> bytes
    ctlv_decode(buf, offset=0, end=-1) -> [(tag, cr, value)]; ctlv_encode(items) -> bytes
    ctlv_read_tag(buf, offset=0) -> (tag, cr, next); ctlv_encode_tag(tag, cr=False) -> bytes
    compact_decode(buf, offset=0) / compact_encode(items); dgi_read_length / dgi_encode_length
    tag_info(tag) -> (class 0..3, constructed, number)
"""

from __future__ import annotations

from esimota._impl import load

IMPL = load("esimota._ext.tlv", "esimota.codec._tlv_py")

MAX_DEPTH = 16
ber_decode = IMPL.ber_decode
ber_encode = IMPL.ber_encode
ber_decode_one = IMPL.ber_decode_one
ber_read_tag = IMPL.ber_read_tag
ber_read_length = IMPL.ber_read_length
ber_encode_tag = IMPL.ber_encode_tag
ber_encode_length = IMPL.ber_encode_length
ctlv_decode = IMPL.ctlv_decode
ctlv_encode = IMPL.ctlv_encode
ctlv_read_tag = IMPL.ctlv_read_tag
ctlv_encode_tag = IMPL.ctlv_encode_tag
ctlv_encode_length = IMPL.ctlv_encode_length
compact_decode = IMPL.compact_decode
compact_encode = IMPL.compact_encode
dgi_read_length = IMPL.dgi_read_length
dgi_encode_length = IMPL.dgi_encode_length


def tag_info(tag: int) -> tuple[int, bool, int]:
    """(class, constructed, tag number) of a BER tag given as the integer of its bytes."""
    raw = tag.to_bytes(max(1, (tag.bit_length() + 7) // 8), "big")
    number = raw[0] & 0x1F
    if number == 0x1F:
        number = 0
        for b in raw[1:]:
            number = (number << 7) | (b & 0x7F)
    return raw[0] >> 6, bool(raw[0] & 0x20), number
