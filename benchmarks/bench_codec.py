"""Codec benchmarks (DESIGN §8, issue 3): compiled core and pure twin side by side.

Run: .venv/bin/python -m pytest benchmarks/bench_codec.py --benchmark-only
"""

from __future__ import annotations

import importlib

import pytest

TWINS = {"pure": "esimota.codec._{}_py", "compiled": "esimota._ext.{}"}
OPEN_CHANNEL = bytes.fromhex("D02A810301400182028182350702030403041F0239020578470605636D696F74"
                             "3C03021E143E0521C0A80101")
KIC, KID = bytes(range(16)), bytes(range(16, 32))


def _mod(impl: str, name: str):
    return importlib.import_module(TWINS[impl].format(name))


@pytest.fixture(params=["pure", "compiled"])
def impl(request) -> str:
    return request.param


def _personalisation_apdus() -> list[bytes]:
    """24 C-APDUs shaped like the write script of DESIGN §5.4 (selects, updates, reads, commit)."""
    select = [bytes.fromhex("00A4000C02") + bytes.fromhex(f) for f in
              ("3F00", "2FE2", "6F07", "6F78", "6F40", "6F7E", "6F73", "6FE3", "3F00", "2FE2", "6F07")]
    updates = [bytes.fromhex("00D600000A") + bytes(10), bytes.fromhex("00D6000009") + bytes(9),
               bytes.fromhex("00D6000002") + bytes(2), bytes.fromhex("00DC01040F") + bytes(15),
               bytes.fromhex("00D600000B") + bytes(11), bytes.fromhex("00D600000E") + bytes(14),
               bytes.fromhex("00D6000012") + bytes(18),
               bytes.fromhex("80E280002B8101") + bytes(41)]
    usim = [bytes.fromhex("00A4040C07A0000000871002")] * 2
    reads = [bytes.fromhex("00B000000A"), bytes.fromhex("00B0000009")]
    return (select + updates + usim + reads + [bytes.fromhex("807E0000")])[:24]


def test_open_channel_decode(benchmark, impl):
    cat = _mod(impl, "cat")
    fields = benchmark(cat.decode_proactive, OPEN_CHANNEL)
    assert fields["network_access_name"] == "cmiot"


def test_open_channel_encode(benchmark, impl):
    cat = _mod(impl, "cat")
    fields = cat.decode_proactive(OPEN_CHANNEL)
    assert benchmark(cat.encode_proactive, fields) == OPEN_CHANNEL


def test_script_decode_24_apdus(benchmark, impl):
    script = _mod(impl, "script")
    apdus = _personalisation_apdus()
    raw = script.build_command_script(apdus)
    items = benchmark(script.parse_command_script, raw)
    assert [v for _, v in items] == apdus and len(items) == 24


def test_wrap_unwrap_350_byte_script(benchmark, impl):
    packet = _mod(impl, "packet")
    data = _mod(impl, "script").build_command_script([bytes.fromhex("00D6000050") + bytes(80)] * 4)[:350]
    assert len(data) == 350

    def round_trip():
        raw = packet.wrap_command(KIC, KID, b"EWA", 42, data)
        return packet.unwrap_command(KIC, KID, raw, 41)

    assert benchmark(round_trip).secured_data == data


def test_hello_decode_and_verify(benchmark, impl):
    frames = _mod(impl, "frames")
    hello = frames.encode_hello(KID, bytes.fromhex("89049032123451234512345678901235"), bytes(10),
                                7, 1024, 1, bytes.fromhex("356938035643809f"))
    ftype, fields = benchmark(frames.decode_frame, hello, KID, 6)
    assert ftype == 1 and fields["counter"] == 7
