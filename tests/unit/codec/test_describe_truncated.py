"""`esimota decode` of bytes that name a structure and are cut short: truncated there, never another kind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from esimota.codec import describe as d
from esimota.errors import TruncatedError

from .corpus import OPEN_CHANNEL


@pytest.mark.parametrize("hexed,where", [
    ("D0FF8103", 4),       # a proactive command (TS 102 223 'D0') promising 255 bytes, 2 given
    ("D00581030101", 1),   # five promised, four given
    ("D60A", 1),           # an event download envelope
    ("AA0522", 1),         # an expanded command script (TS 102 226)
    ("AB03", 1),           # an expanded response script
    ("001001C010", 0),     # a HELLO frame (DESIGN §5.1) whose EID is cut short
    ("000405", 0),         # a CLOSE frame without its reason
    ("0030020" + "02D", 0),  # a COMMAND frame whose packet's CPL agrees with LEN, and nothing after
])
def test_a_named_structure_cut_short_is_truncated(hexed, where):
    with pytest.raises(TruncatedError) as err:
        d.describe(bytes.fromhex(hexed.replace(" ", "")))
    assert err.value.offset == where
    assert "truncated" in str(err.value)


def test_whole_structures_and_apdus_still_decode():
    assert d.describe(OPEN_CHANNEL)["kind"] == "proactive_command"
    select = bytes.fromhex("00A4040C07A0000000871002")  # LEN-looking 00A4 and type-looking 04: an APDU
    assert d.describe(select)["kind"] == "c_apdu"
    assert d.describe(bytes.fromhex("00DC0104"))["kind"] == "c_apdu"


def test_the_command_says_truncated():
    command = Path(sys.executable).parent / "esimota"  # the console script, whatever module it names
    out = subprocess.run([str(command), "decode", "D0FF8103"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 2 and "TRUNCATED" in out.stderr and "c_apdu" not in out.stdout + out.stderr
