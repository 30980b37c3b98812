"""The compiled CAT decoders' layout path (records of a kept shape, memoised values) matches the twin."""

from __future__ import annotations

import gc
import itertools
import random
import sys
from collections.abc import Mapping
from pathlib import Path

import pytest

from esimota.errors import CodecError

from .conftest import implementation
from .corpus import OPEN_CHANNEL

pytestmark = pytest.mark.pure_twin
PURE, COMPILED = implementation("pure").cat, implementation("compiled").cat

#: one valid value per element tag (TS 102 223 §8), for building inputs of many layouts
SAMPLES = {0x02: "8281", 0x03: "00", 0x04: "0105", 0x05: "4869", 0x06: "912143", 0x0D: "04616263",
           0x1E: "0001", 0x35: "020304", 0x37: "10", 0x38: "8100", 0x39: "0578", 0x3C: "021e14",
           0x3E: "21c0a80101", 0x47: "05636d696f74"}


def _tlv(tag: int, value: str, cr: bool = False) -> bytes:
    raw = bytes.fromhex(value)
    return bytes([tag | (0x80 if cr else 0), len(raw)]) + raw


def _proactive(*elements: bytes) -> bytes:
    body = b"".join(elements)
    return b"\xd0" + (bytes([len(body)]) if len(body) < 0x80 else bytes([0x81, len(body)])) + body


def _details(command: int = 0x40) -> bytes:
    return _tlv(0x01, f"01{command:02x}01", cr=True)


def _shape(x):
    """Values with their types and key order, so that 1 != True and order counts."""
    if isinstance(x, Mapping):
        return (type(x).__name__, [(k, _shape(v)) for k, v in x.items()])
    if isinstance(x, list):
        return ("list", [_shape(v) for v in x])
    return (type(x).__name__, x)


def _outcome(fn, raw):
    try:
        return "ok", _shape(fn(raw))
    except CodecError as exc:
        return "error", (type(exc).__name__, exc.detail, exc.offset, exc.tag)


def _agree(name: str, raw: bytes):
    a, b = _outcome(getattr(PURE, name), raw), _outcome(getattr(COMPILED, name), raw)
    assert a == b, f"{name}({raw.hex()}): pure {a} compiled {b}"
    return b


def _lists(x):
    """Every mutable object in a result: its lists (records are read-only)."""
    if isinstance(x, list):
        yield x
    for v in (x.values() if isinstance(x, Mapping) else x if isinstance(x, list) else ()):
        yield from _lists(v)


def test_only_the_public_c_api():
    """No private dict calls and no writes into CPython's dict tables (a layout-dependent poke
    was backed out, 307e3b5): records are a tuple and a shared key set."""
    source = (Path(__file__).resolve().parents[3] / "ext" / "esimota" / "_ext" / "cat.pyx").read_text()
    for private in ("_PyDict_", "PyDictKeysObject", "PyDictObject", "ma_keys", "ma_values", "dk_"):
        assert private not in source, private


@pytest.mark.parametrize("impl", [PURE, COMPILED], ids=["pure", "compiled"])
def test_results_are_read_only_and_share_no_mutable_object(impl):
    """Records may be shared between results (the compiled memo does), so none can be changed in
    place; the one mutable part, the list of CR names, is each result's own."""
    first, second = impl.decode_proactive(OPEN_CHANNEL), impl.decode_proactive(OPEN_CHANNEL)
    assert len(list(_lists(first))) == 1
    assert not {id(c) for c in _lists(first)} & {id(c) for c in _lists(second)}
    with pytest.raises(TypeError):
        first["command_details"]["command_number"] = 99
    with pytest.raises(TypeError):
        first["extra"] = 1
    with pytest.raises(TypeError):
        del first["buffer_size"]
    with pytest.raises(TypeError):
        first.__init__({"command": "close_channel"})
    with pytest.raises(AttributeError):
        first._d = {}
    first["comprehension_required"].append("network_access_name")
    assert _agree("decode_proactive", OPEN_CHANNEL) == ("ok", _shape(second))
    assert gc.is_tracked(second) and second == PURE.decode_proactive(OPEN_CHANNEL)


@pytest.mark.parametrize("raw", [
    OPEN_CHANNEL,
    # OPEN CHANNEL names by place: local address, login, password, destination address (§6.6.27)
    _proactive(_details(), _tlv(0x02, "8182", True), _tlv(0x3E, "21c0a80102"), _tlv(0x35, "02"),
               _tlv(0x0D, "0475736572"), _tlv(0x0D, "087000770064"), _tlv(0x3C, "021e14"),
               _tlv(0x3E, "21c0a80101")),
    # the same tags in CLOSE CHANNEL: plain names, repeats get _2 (key by key)
    _proactive(_details(0x41), _tlv(0x02, "8182", True), _tlv(0x3E, "21c0a80102"), _tlv(0x35, "02"),
               _tlv(0x0D, "0475736572"), _tlv(0x0D, "087000770064"), _tlv(0x3C, "021e14"),
               _tlv(0x3E, "21c0a80101")),
    _proactive(_details(), _tlv(0x60, "abcd")),                                  # unnamed tag: tag_60
    _proactive(_details(), _tlv(0x05, "41" * 40), _tlv(0x47, "03616263" * 4)),  # values past the memo's 8 bytes
    _proactive(_details(), _tlv(0x36, "00" * 130)),                              # two-byte length form
    _proactive(_details(), *[_tlv(0x60 + i, "00") for i in range(20)]),          # more elements than a layout holds
    _proactive(_details(), _tlv(0x3E, "")),                                      # dynamic address: None
    _proactive(_details(0x05), _tlv(0x19, "0a0b"), _tlv(0x02, "8182")),          # event list: a list value
    _proactive(_tlv(0x02, "8182"), _details()),                                  # Command details not first
    _proactive(),
])
def test_proactive_commands_agree(raw):
    _agree("decode_proactive", raw)
    _agree("decode_proactive", raw)  # the second time from the kept layout and values


@pytest.mark.parametrize("hexs", [
    "d60e99010982028281b8028100b701ff", "d60699010a82028281", "d600", "d1078202838106020304",
    "d60e19010982028281b8028100b701ff",  # without the CR bits
    "d615810301400182028182bc03021e14be0521c0a80101",  # OPEN CHANNEL details: names by place
    "d60481020140",                                     # Command details of the wrong size
])
def test_envelopes_agree(hexs):
    _agree("decode_envelope", bytes.fromhex(hexs))
    _agree("decode_envelope", bytes.fromhex(hexs))


@pytest.mark.parametrize("hexs", [
    "810301400382028281830100b8028100b50103b9020400be0521c0a80102",
    "8103014300820282818301003704",
    "81030144008202828183010038028100380282003802830a",  # three Channel status: _2, _3
    "82028281810301400083010030",                      # Command details second
    "",
])
def test_terminal_responses_agree(hexs):
    _agree("decode_terminal_response", bytes.fromhex(hexs))
    _agree("decode_terminal_response", bytes.fromhex(hexs))


def test_many_layouts_in_turn_agree():
    """More layouts than the compiled decoder keeps, revisited: slots are replaced, never confused."""
    rng = random.Random("layouts")
    inputs = []
    for _ in range(300):
        tags = rng.sample(sorted(SAMPLES), rng.randint(0, len(SAMPLES)))
        command = rng.choice((0x40, 0x41, 0x43, 0x44))
        inputs.append(_proactive(_details(command), *[_tlv(t, SAMPLES[t], rng.random() < 0.3) for t in tags]))
    for raw in inputs + inputs[::-1] + inputs:
        assert _agree("decode_proactive", raw)[0] == "ok"


def test_bad_value_in_a_plain_layout_raises_and_leaks_nothing():
    good = _proactive(_details(), _tlv(0x47, "05636d696f74"), _tlv(0x3C, "021e14"))
    bad = _proactive(_details(), _tlv(0x47, "05636d696f74"), _tlv(0x3C, "021e"))  # transport level of 2 bytes
    apn = COMPILED.decode_proactive(good)["network_access_name"]  # the memo's shared str
    before = sys.getrefcount(apn)
    for _ in range(200):
        assert _agree("decode_proactive", bad)[0] == "error"
    assert sys.getrefcount(apn) == before


def test_decodes_reentered_from_the_gc_agree():
    """A collection inside a decode may run code that decodes too (finalizers, gc callbacks) and
    so replaces layout and value slots in use: results must not change."""
    rng = random.Random("reentry")
    inputs = [_proactive(_details(rng.choice((0x40, 0x41))),
                         *[_tlv(t, SAMPLES[t]) for t in rng.sample(sorted(SAMPLES), rng.randint(1, 8))])
              for _ in range(150)]
    others = itertools.cycle(inputs[::-1])
    runs = []

    def decode_during_gc(phase, info):
        if phase == "start":
            runs.append(COMPILED.decode_proactive(next(others)))

    threshold = gc.get_threshold()
    gc.callbacks.append(decode_during_gc)
    gc.set_threshold(1)
    try:
        for raw in inputs * 2:
            _agree("decode_proactive", raw)
    finally:
        gc.callbacks.remove(decode_during_gc)
        gc.set_threshold(*threshold)
    assert runs
