"""Malformed input gets a typed error with the offset and tag where decoding failed, in both twins."""

from __future__ import annotations

import pytest

from esimota.errors import (BadMacError, BadPaddingError, BadTagError, BadValueError, LengthError,
                            StaleCounterError, TruncatedError)

from .corpus import KEY, OPEN_CHANNEL

pytestmark = pytest.mark.pure_twin


def _raises(exc, offset, tag, fn, *args, **kw):
    with pytest.raises(exc) as err:
        fn(*args, **kw)
    assert (err.value.offset, err.value.tag) == (offset, tag), str(err.value)
    return err.value


@pytest.mark.parametrize("hexs, exc, offset, tag", [
    ("", None, None, None),
    ("81", TruncatedError, 1, 0x81),              # length missing
    ("8105aa", TruncatedError, 1, 0x81),          # value past the end of the buffer
    ("a5038102aa00", LengthError, 3, 0x81),       # child past the end of its parent
    ("1f", TruncatedError, 0, None),              # multi-byte tag cut short
    ("1f818181810100", BadTagError, 0, None),     # tag longer than 4 bytes
    ("0001aa", BadTagError, 0, None),             # '00' is no tag
    ("8185000000000000", LengthError, 1, 0x81),   # 5-byte length form
    ("a580", LengthError, 1, 0xA5),               # indefinite only for AE/AF
    ("ae802201aa", TruncatedError, 5, 0xAE),      # end-of-contents missing
])
def test_ber_errors(codec, hexs, exc, offset, tag):
    if exc is None:
        assert codec.tlv.ber_decode(b"") == []
        return
    _raises(exc, offset, tag, codec.tlv.ber_decode, bytes.fromhex(hexs))


def test_nesting_bomb_is_refused_quickly(codec):
    bomb, heads = b"\x80\x00", []
    for _ in range(10_000):  # 10k nested templates, each a well-formed TLV
        head = b"\xa5" + codec.tlv.ber_encode_length(len(bomb))
        heads.insert(0, len(head))
        bomb = head + bomb
    err = _raises(BadTagError, sum(heads[:16]), 0xA5, codec.tlv.ber_decode, bomb)
    assert "nesting" in str(err)
    indefinite = b"\xae\x80" * 100_000
    _raises(BadTagError, 32, 0xAE, codec.tlv.ber_decode, indefinite)


def test_huge_declared_length_allocates_nothing(codec):
    _raises(TruncatedError, 1, 0x81, codec.tlv.ber_decode, b"\x81\x84\xff\xff\xff\xff")
    _raises(LengthError, 1, 0x01, codec.tlv.ctlv_decode, b"\x01\x84\xff\xff\xff\xff")


def test_comprehension_errors(codec):
    _raises(BadTagError, 0, None, codec.tlv.ctlv_decode, b"\x80\x00")
    _raises(TruncatedError, 0, None, codec.tlv.ctlv_decode, b"\x7f\x01")
    _raises(TruncatedError, 1, 0x01, codec.tlv.ctlv_decode, b"\x01\x05\x00")


def test_cat_errors(codec):
    _raises(BadTagError, 0, 0xD1, codec.cat.decode_proactive, b"\xd1\x00")
    _raises(TruncatedError, 1, 0xD0, codec.cat.decode_proactive, OPEN_CHANNEL[:-1])
    _raises(LengthError, len(OPEN_CHANNEL), 0xD0, codec.cat.decode_proactive, OPEN_CHANNEL + b"\x00")
    bad_ip = OPEN_CHANNEL[:1] + bytes([OPEN_CHANNEL[1] - 1]) + OPEN_CHANNEL[2:-7] + b"\x3e\x04\x21\xc0\xa8\x01"
    _raises(LengthError, len(bad_ip) - 4, 0x3E, codec.cat.decode_proactive, bad_ip)
    _raises(BadTagError, 2, 0x01, codec.cat.decode_proactive, bytes.fromhex("d00482028182"))
    _raises(LengthError, 2, 0x01, codec.cat.decode_terminal_response, bytes.fromhex("81020140"))
    _raises(BadValueError, 17, 0x47, codec.cat.decode_proactive,
            bytes.fromhex("d011810301400182028182470605636d692e74"))


def test_apdu_errors(codec):
    _raises(TruncatedError, 3, None, codec.tlv.apdu_parse, b"\x00\xa4\x00")
    _raises(LengthError, 4, None, codec.tlv.apdu_parse, bytes.fromhex("00a4000003aabb"))
    _raises(TruncatedError, 1, None, codec.tlv.rapdu_parse, b"\x90")


def test_script_errors(codec):
    _raises(BadTagError, 0, 0xAB, codec.script.parse_command_script, b"\xab\x00")
    _raises(BadTagError, 2, 0x23, codec.script.parse_command_script, b"\xaa\x03\x23\x01\x00")
    _raises(LengthError, 5, 0xAA, codec.script.parse_command_script, b"\xaa\x03\x22\x01\x00\x00")
    _raises(TruncatedError, 6, 0xAE, codec.script.parse_command_script, b"\xae\x80\x22\x02\x00\xa4")
    _raises(BadTagError, 2, 0x80, codec.script.parse_response_script, b"\xab\x04\x23\x02\x90\x00")
    _raises(TruncatedError, 7, None, codec.script.parse_compact, bytes.fromhex("00a4000c023f00" "00a4"))
    with pytest.raises(BadValueError):
        codec.script.chunk_apdus([bytes(300)], 200)


def test_packet_security_errors(codec):
    raw = codec.packet.wrap_command(KEY, KEY, b"EWA", 7, b"\xaa\x00")
    tampered = raw[:-1] + bytes([raw[-1] ^ 1])
    _raises(BadMacError, 16, None, codec.packet.unwrap_command, KEY, KEY, tampered)
    _raises(BadMacError, 16, None, codec.packet.unwrap_command, bytes(16), KEY, raw)  # wrong K_IC
    _raises(StaleCounterError, 10, None, codec.packet.unwrap_command, KEY, KEY, raw, 7)
    assert codec.packet.unwrap_command(KEY, KEY, raw, 6).cntr == 7
    _raises(TruncatedError, 0, None, codec.packet.unwrap_command, KEY, KEY, raw[:-1])
    _raises(LengthError, 10, None, codec.packet.unwrap_command, KEY, KEY,
            bytes([0, raw[1] - 1]) + raw[2:-1])  # ciphered part not whole blocks


def test_bad_padding_count(codec):
    # unciphered, CC-less packet claiming one padding byte: the padding count cannot be right
    raw = bytes.fromhex("0014" "0d" "0001" "00" "00" "454741" "0000000001" "01" "aabbccdd")
    raw = bytes([0, len(raw) - 2]) + raw[2:]
    _raises(BadPaddingError, 15, None, codec.packet.unwrap_command, KEY, KEY, raw)


def test_response_must_match_the_command(codec):
    raw = codec.packet.wrap_response(KEY, KEY, b"EWA", 7, 0, b"")
    _raises(BadValueError, 6, None, codec.packet.unwrap_response, KEY, KEY, raw, cntr=8)
    _raises(BadValueError, 3, None, codec.packet.unwrap_response, KEY, KEY, raw, tar=b"ABC")


def test_frame_errors(codec):
    hello = codec.frames.encode_hello(KEY, bytes(16), bytes(10), 5, 1024, 1)
    _raises(BadMacError, len(hello) - 8, 0xCF, codec.frames.decode_frame, hello, kid=bytes(16))
    _raises(StaleCounterError, 35, 0xC3, codec.frames.decode_frame, hello, kid=KEY, last_counter=5)
    _raises(TruncatedError, 0, None, codec.frames.decode_frame, hello[:-1])
    _raises(LengthError, len(hello), None, codec.frames.decode_frame, hello + b"\x00")
    swapped = hello[:3] + hello[21:33] + hello[3:21] + hello[33:]
    _raises(BadTagError, 3, 0xC1, codec.frames.decode_frame, swapped)
    _raises(BadValueError, 3, None, codec.frames.decode_frame, b"\x00\x04\x05\x09\x00\x00")
    _raises(BadValueError, 2, None, codec.frames.decode_frame, b"\x00\x01\x09")
