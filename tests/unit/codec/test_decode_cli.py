"""`esimota decode`: recognises the input, prints indented text (JSON with --json), exits 2 with one line on
bad input."""

from __future__ import annotations

import argparse
import json

import pytest

from esimota.cli import decode as decode_cli
from esimota.codec import bcp, frames

from .corpus import KEY, OPEN_CHANNEL

AES_KIC, AES_KID = "200102030405060708090a0b0c0d0e0f", "201102030405060708090a0b0c0d0e0f"
AES_POR = "027100002412b00011ebc6b497e2cad7aedf36ace0e3a29b38853f0fe9ccde81913be5702b73abce1f"


def _run(capsys, *argv):
    parser = argparse.ArgumentParser(prog="esimota")
    decode_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["decode", "--json", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    return code, json.loads(out), err


def test_text_on_a_terminal_json_only_with_the_flag(capsys):
    """Issue 17: readable text by default; the same fields, nested records indented."""
    parser = argparse.ArgumentParser(prog="esimota")
    decode_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["decode", OPEN_CHANNEL.hex()])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)
    lines = out.splitlines()
    assert "command: open_channel" in lines and "network_access_name: cmiot" in lines
    assert lines[lines.index("data_destination_address:") + 2] == "  address: 192.168.1.1"


def test_open_channel_to_named_fields(capsys):
    code, out, _ = _run(capsys, OPEN_CHANNEL.hex())
    assert code == 0 and out["kind"] == "proactive_command" and out["command"] == "open_channel"
    assert out["network_access_name"] == "cmiot"
    assert out["data_destination_address"] == {"type_of_address": "ipv4", "address": "192.168.1.1"}
    assert out["uicc_terminal_interface_transport_level"]["port_number"] == 7700


def test_por_with_keys_down_to_the_status_word(capsys):
    code, out, _ = _run(capsys, "--kic", AES_KIC, "--kid", AES_KID, AES_POR)
    assert code == 0 and out["status_name"] == "por_ok"
    assert out["compact_response"] == {"number_of_commands": 1, "last_sw": "6132", "last_data": ""}


def test_frame_with_keys_down_to_the_apdus(capsys):
    from esimota.codec import packet, script
    apdus = [bytes.fromhex("00A4000C023F00"), bytes.fromhex("00B000000A")]
    frame = frames.encode_command(packet.wrap_command(KEY, KEY, b"EWA", 3, script.build_command_script(apdus)))
    code, out, _ = _run(capsys, "--kic", KEY.hex(), "--kid", KEY.hex(), frame.hex())
    assert code == 0 and out["kind"] == "frame" and out["type"] == "command"
    assert out["packet"]["command_script"] == [{"c_apdu": a.hex()} for a in apdus]
    hello = frames.encode_hello(KEY, bytes(16), bytes(10), 1, 512, bcp.HELLO_POWER_ON)
    code, out, _ = _run(capsys, "--kid", KEY.hex(), hello.hex())
    assert out["mac_verified"] is True and out["buffer_size"] == 512


@pytest.mark.parametrize("argv, needle", [
    (["zz"], "not hexadecimal"),
    (["d02a81"], "TRUNCATED"),
    (["--kic", "00", "--kid", "00", "00"], "16 or 24 bytes"),
    (["--kic", "c21dd66acac13cb3bc8b331b24afb57b", "--kid", "12110c78e678c25408233076aa033615",
      "027100001612b000110000000000000055f47118381175fb02612f"], "BAD_MAC"),
    (["--as", "frame", OPEN_CHANNEL.hex()], "frame"),
])
def test_bad_input_exits_2_with_one_line(capsys, argv, needle):
    parser = argparse.ArgumentParser(prog="esimota")
    decode_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["decode", *argv])
    code = args.func(args)
    out, err = capsys.readouterr()
    assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err and out == ""
    code, out, err = _run(capsys, *argv)  # with --json: the error as JSON on stdout
    assert code == 2 and err == "" and out["ok"] is False and needle in out["error"] + out["message"]
