"""Fields, the decoded form of CAT structures (DESIGN §4; R-numbers n/a: a codec result type).

One behaviour in both implementations (STYLE 5): a read-only mapping in wire order, equal to
any mapping with the same items, turned into plain dicts for JSON or for changes, and accepted
back by the encoders.
"""

from __future__ import annotations

import json
import pickle
from collections.abc import Mapping

import pytest

from .conftest import implementation
from .corpus import OPEN_CHANNEL

pytestmark = pytest.mark.pure_twin
PURE, COMPILED = implementation("pure").cat, implementation("compiled").cat
BOTH = pytest.mark.parametrize("cat", [PURE, COMPILED], ids=["pure", "compiled"])

EXPECTED_KEYS = ["command", "command_details", "device_identities", "bearer_description", "buffer_size",
                 "network_access_name", "uicc_terminal_interface_transport_level",
                 "data_destination_address", "comprehension_required"]


@BOTH
def test_a_read_only_mapping_in_wire_order(cat):
    f = cat.decode_proactive(OPEN_CHANNEL)
    assert isinstance(f, Mapping) and isinstance(f, cat.Fields)
    assert list(f) == list(f.keys()) == EXPECTED_KEYS and len(f) == len(EXPECTED_KEYS)
    assert [k for k, _ in f.items()] == EXPECTED_KEYS
    assert list(f.values())[4:6] == [1400, "cmiot"]
    assert f["buffer_size"] == 1400 and f.get("buffer_size") == 1400
    assert f.get("alpha_identifier") is None and f.get("alpha_identifier", 7) == 7
    assert "network_access_name" in f and "alpha_identifier" not in f
    with pytest.raises(KeyError):
        f["alpha_identifier"]
    with pytest.raises(TypeError):
        f[["unhashable"]]
    assert f["uicc_terminal_interface_transport_level"]["port_number"] == 7700
    with pytest.raises(TypeError):
        hash(f)
    assert f.keys() & {"buffer_size", "x"} == {"buffer_size"}


@BOTH
def test_equal_like_a_dict(cat):
    f = cat.decode_proactive(OPEN_CHANNEL)
    plain = f.to_dict()
    assert f == plain and plain == f and not (f != plain)
    assert f == dict(reversed(plain.items()))  # order aside, as dicts compare
    changed = dict(plain, buffer_size=1500)
    assert f != changed and changed != f
    assert f != {k: v for k, v in plain.items() if k != "buffer_size"}
    assert f != dict(plain, extra=None)
    assert f != list(plain) and f != "open_channel" and f != 1
    assert cat.Fields({"a": 1}) == {"a": 1} and cat.Fields({"a": 1}) != {"a": True, "b": 2}


def test_the_two_implementations_are_equal_and_print_alike():
    pure, compiled = PURE.decode_proactive(OPEN_CHANNEL), COMPILED.decode_proactive(OPEN_CHANNEL)
    assert pure == compiled and compiled == pure
    assert repr(pure) == repr(compiled) and repr(pure).startswith("Fields({'command': 'open_channel'")
    assert pure.to_dict() == compiled.to_dict()


@BOTH
def test_to_dict_is_plain_and_a_copy(cat):
    f = cat.decode_proactive(OPEN_CHANNEL)
    plain = f.to_dict()

    def kinds(x):
        if isinstance(x, Mapping):
            yield type(x)
            for v in x.values():
                yield from kinds(v)
        elif isinstance(x, list):
            yield list
            for v in x:
                yield from kinds(v)

    assert set(kinds(plain)) == {dict, list}
    assert json.loads(json.dumps(plain)) == f
    plain["command_details"]["command_number"] = 9
    plain["comprehension_required"].append("buffer_size")
    assert f["command_details"]["command_number"] == 1
    assert f["comprehension_required"] == ["command_details", "device_identities"]


@BOTH
def test_built_from_a_mapping_and_pickled(cat):
    built = cat.Fields({"general_result": 0, "additional_information": ""})
    assert list(built) == ["general_result", "additional_information"] and built["general_result"] == 0
    assert cat.Fields([("a", 1), ("b", 2)]) == {"a": 1, "b": 2}
    assert cat.Fields() == {} and len(cat.Fields()) == 0
    f = cat.decode_proactive(OPEN_CHANNEL)
    back = pickle.loads(pickle.dumps(f))
    assert back == f and type(back) is type(f) and list(back) == list(f)


@BOTH
def test_encoders_take_fields_dicts_and_edited_copies(cat):
    f = cat.decode_proactive(OPEN_CHANNEL)
    assert cat.encode_proactive(f) == OPEN_CHANNEL
    assert cat.encode_proactive(f.to_dict()) == OPEN_CHANNEL
    edited = f.to_dict()
    edited["buffer_size"] = 0x0400
    raw = cat.encode_proactive(edited)
    assert raw == OPEN_CHANNEL.replace(bytes.fromhex("39020578"), bytes.fromhex("39020400"))
    assert cat.decode_proactive(raw)["buffer_size"] == 0x0400


def test_the_compiled_memo_shares_records_never_lists():
    """Repeated element values come back as one shared record (they cannot change); the list of
    CR names and an event list are copies each time."""
    first, second = COMPILED.decode_proactive(OPEN_CHANNEL), COMPILED.decode_proactive(OPEN_CHANNEL)
    assert first["command_details"] is second["command_details"]
    assert first["comprehension_required"] is not second["comprehension_required"]
    events = bytes.fromhex("d00c810301050082028182990103")  # SET UP EVENT LIST, one event
    a, b = COMPILED.decode_proactive(events), COMPILED.decode_proactive(events)
    assert a["event_list"] == b["event_list"] and a["event_list"] is not b["event_list"]
    a["event_list"].append("x")
    assert COMPILED.decode_proactive(events)["event_list"] == PURE.decode_proactive(events)["event_list"]


@pytest.mark.parametrize("module", ["tlv", "script", "packet", "frames", "cat"])
def test_every_compiled_function_has_a_twin_of_the_same_signature(module):
    """Issue 3: a pure-Python twin with the same signature for each compiled function."""
    import importlib
    import inspect

    compiled = importlib.import_module(f"esimota._ext.{module}")
    twin = importlib.import_module(f"esimota.codec._{module}_py")
    public = [n for n in dir(compiled) if not n.startswith("_") and callable(getattr(compiled, n))
              and inspect.isroutine(getattr(compiled, n))]
    assert public
    for name in public:
        assert hasattr(twin, name), f"{module}.{name} has no twin"
        assert inspect.signature(getattr(compiled, name)) == inspect.signature(getattr(twin, name)), name
    if module == "cat":
        assert isinstance(twin.Fields, type) and isinstance(compiled.Fields, type)
