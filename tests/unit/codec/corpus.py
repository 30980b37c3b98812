"""Seed inputs and a mutator shared by the differential test and the fuzzer (no magic inputs)."""

from __future__ import annotations

import random

from esimota.codec import _cat_py, _frames_py, _packet_py, _script_py, _tlv_py, bcp

KEY = bytes(range(16))
OPEN_CHANNEL = bytes.fromhex("D02A810301400182028182350702030403041F0239020578470605636D696F74"
                             "3C03021E143E0521C0A80101")


def seeds() -> dict[str, list[bytes]]:
    """Valid inputs per decoder family, built with the encoders."""
    apdus = [bytes.fromhex("00A4000C023F00"), bytes.fromhex("00B000000A"), bytes(range(40))]
    script = _script_py.build_command_script(apdus)
    return {
        "ber": [bytes.fromhex("622c8202782183023f00a50c80017183040003a7388701018a01058b032f0601c6"
                              "0c90016083010183010a83010b"), _script_py.build_command_script(apdus, True)],
        "ctlv": [OPEN_CHANNEL[2:], bytes.fromhex("810301400382028281830100b8028100b50103b9020400")],
        "apdu": apdus + [bytes.fromhex("00A4040000000701020304050607")],
        "script": [script, _script_py.build_response_script(2, [b"\x90\x00", b"\x01\x02\x90\x00"], True)],
        "compact": [b"".join(apdus[:2])],
        "cat": [OPEN_CHANNEL, bytes.fromhex("d60e99010982028281b8028100b701ff"),
                bytes.fromhex("d027810301400182028182b50103b9020578c70908696e7465726e6574bc030201bbbe0521c0a80001")],
        "tr": [bytes.fromhex("810301400382028281830100b8028100b50103b9020400be0521c0a80102")],
        "frame": [_frames_py.encode_hello(KEY, bytes(16), bytes(10), 9, 1024, bcp.HELLO_POWER_ON, bytes(8)),
                  _frames_py.encode_report(KEY, bytes(16), bytes(10), 10, bcp.REPORT_SUCCESS, "ok"),
                  _frames_py.encode_close(bcp.CLOSE_BUSY, 60)],
        "command": [_packet_py.wrap_command(KEY, KEY, b"EWA", 5, script)],
        "response": [_packet_py.wrap_response(KEY, KEY, b"EWA", 5, 0, b"\xab\x07\x80\x01\x01\x23\x02\x90\x00")],
    }


def mutate(rng: random.Random, data: bytes) -> bytes:
    """A few random edits: flip, set, insert, delete, truncate, duplicate a slice."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(6)
        i = rng.randrange(len(buf) + 1)
        if op == 0 and buf:
            buf[min(i, len(buf) - 1)] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            buf[min(i, len(buf) - 1)] = rng.choice((0, 0x7F, 0x80, 0x81, 0x82, 0xFF, rng.randrange(256)))
        elif op == 2:
            buf[i:i] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 3)))
        elif op == 3 and buf:
            del buf[i:i + rng.randint(1, 3)]
        elif op == 4:
            del buf[i:]
        else:
            j = rng.randrange(len(buf) + 1)
            buf[i:i] = buf[min(i, j):max(i, j)][:64]
    return bytes(buf)


def decoders(ns) -> dict[str, list]:
    """Per family, the decode calls of one implementation (a namespace of its modules)."""
    return {
        "ber": [ns.tlv.ber_decode], "ctlv": [ns.tlv.ctlv_decode], "apdu": [ns.tlv.apdu_parse],
        "script": [ns.script.parse_command_script, ns.script.parse_response_script],
        "compact": [ns.script.parse_compact, ns.tlv.compact_decode],
        "cat": [ns.cat.decode_proactive, ns.cat.decode_envelope],
        "tr": [ns.cat.decode_terminal_response],
        "frame": [ns.frames.decode_frame, lambda b: ns.frames.decode_frame(b, kid=KEY, last_counter=9)],
        "command": [lambda b: ns.packet.unwrap_command(KEY, KEY, b, 4)],
        "response": [lambda b: ns.packet.unwrap_response(KEY, KEY, b)],
    }
