"""BCP/1 frames (DESIGN §5.1): HELLO, COMMAND, RESPONSE, REPORT, CLOSE and their MACs: facade.

Public API:
    decode_frame(buf, kid=None, last_counter=None) -> (type, fields)
        HELLO  {eid, iccid, imei|None, counter, buffer_size, reason, mac}
        REPORT {eid, iccid, counter, result, diagnostic|None, mac}
        COMMAND/RESPONSE {packet}; CLOSE {reason, retry_after}
        with kid: BadMacError unless the MAC verifies; with last_counter: StaleCounterError
    verify_frame_mac(kid, frame) -> None
    hello_mac(kid, mac_input) -> 8 bytes    (TYPE and the TLVs before 'CF')
    encode_hello(kid, eid, iccid, counter, buffer_size, reason, imei=None) -> bytes
    encode_report(kid, eid, iccid, counter, result, diagnostic=None) -> bytes
    encode_close(reason, retry_after=0) -> bytes
    encode_frame(type, body) -> bytes;  frame_size(buf) -> int (0 until 2 bytes are there)
    encode_command(packet), encode_response(packet) -> bytes
"""

from __future__ import annotations

from esimota._impl import load
from esimota.codec.bcp import COMMAND, RESPONSE  # frame types, CLOSE reasons, REPORT results: codec/bcp.py

IMPL = load("esimota._ext.frames", "esimota.codec._frames_py")


decode_frame = IMPL.decode_frame
verify_frame_mac = IMPL.verify_frame_mac
hello_mac = IMPL.hello_mac
encode_hello = IMPL.encode_hello
encode_report = IMPL.encode_report
encode_close = IMPL.encode_close
encode_frame = IMPL.encode_frame
frame_size = IMPL.frame_size


def encode_command(packet: bytes) -> bytes:
    """COMMAND frame around a command packet."""
    return encode_frame(COMMAND, packet)


def encode_response(packet: bytes) -> bytes:
    """RESPONSE frame around a response packet."""
    return encode_frame(RESPONSE, packet)
