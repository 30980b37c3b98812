"""Facades load the compiled core (unless ESIMOTA_PURE=1); keys, key wrap and BCD identifiers."""

from __future__ import annotations

import importlib
import os

import pytest
from cryptography.hazmat.primitives import cmac
from cryptography.hazmat.primitives.ciphers import algorithms

from esimota import _impl
from esimota.codec import apdu, cat, frames, ids, keys, packet, script, tlv
from esimota.errors import BadMacError, BadValueError

FACADES = {"esimota._ext.tlv": tlv, "esimota._ext.script": script, "esimota._ext.packet": packet,
           "esimota._ext.frames": frames, "esimota._ext.cat": cat}


def test_ci_loads_the_compiled_core():
    """In CI the compiled extension must be the one in use unless the pure leg asked for the twin."""
    if os.environ.get("CI") != "true" or os.environ.get("ESIMOTA_PURE") == "1":
        pytest.skip("only checked in CI's compiled leg")
    for name, facade in FACADES.items():
        assert _impl.kind(facade.IMPL) == "compiled", f"{name}: the pure twin was loaded"
        assert facade.IMPL.__name__ == name


def test_facades_follow_the_switch():
    expected = "pure" if _impl.PURE else "compiled"
    for name, facade in FACADES.items():
        assert _impl.kind(facade.IMPL) == expected
        assert facade.IMPL is importlib.import_module(name if not _impl.PURE else facade.IMPL.__name__)


def test_both_implementations_are_importable_by_name():
    for name in FACADES:
        assert importlib.import_module(name).__name__ == name
        twin = "esimota.codec._" + name.rsplit(".", 1)[1] + "_py"
        assert importlib.import_module(twin).__name__ == twin


def _cmac(key, data):
    c = cmac.CMAC(algorithms.AES(key))
    c.update(data)
    return c.finalize()


def test_key_derivation_is_sp800_108_counter_mode():
    master, eid = bytes(range(16)), ids.eid_to_bytes("89049032123451234512345678901235")
    kic, kid, dek = keys.derive_keys(master, eid)
    for label, key in ((b"KIC", kic), (b"KID", kid), (b"DEK", dek)):
        # counter (8 bits) first, label, 00 separator, context, L = 128 in 16 bits (DESIGN §5.2)
        assert key == _cmac(master, b"\x01" + label + b"\x00" + eid + b"\x00\x80")
    assert len({kic, kid, dek}) == 3
    assert keys.derive_keys(master, bytes(16))[0] != kic


def test_key_wrap_of_ki_opc():
    dek, ki, opc = bytes(range(16)), b"\x11" * 16, b"\x22" * 16
    wrapped = keys.wrap_ki_opc(dek, ki, opc)
    assert len(wrapped) == 40 and keys.unwrap_ki_opc(dek, wrapped) == (ki, opc)
    with pytest.raises(BadMacError):
        keys.unwrap_ki_opc(dek, wrapped[:-1] + bytes([wrapped[-1] ^ 1]))
    assert wrapped[:8] != bytes.fromhex("A6A6A6A6A6A6A6A6")  # the IV is checked, not carried


def test_identifiers():
    assert ids.iccid_to_bytes("89860012345678901234").hex() == "98680021436587092143"
    assert ids.iccid_from_bytes(bytes.fromhex("98680021436587092143")) == "89860012345678901234"
    assert ids.eid_to_bytes("89049032123451234512345678901235").hex() == "89049032123451234512345678901235"
    assert ids.imei_to_bytes("356938035643809").hex() == "356938035643809f"
    assert ids.imei_from_bytes(bytes.fromhex("356938035643809f")) == "356938035643809"
    assert ids.eid_valid("89049032123451234512345678901235")
    assert not ids.eid_valid("89049032123451234512345678901234")
    assert ids.swapped_bcd("8613800138000", 10).hex() == "683108108300f0ffffff"
    with pytest.raises(BadValueError):
        ids.iccid_to_bytes("8986")


def test_apdu_case_helper():
    assert [apdu.apdu_case(b"", None), apdu.apdu_case(b"", 256), apdu.apdu_case(b"x", None),
            apdu.apdu_case(b"x", 1)] == [1, 2, 3, 4]
