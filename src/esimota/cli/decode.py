"""`esimota decode [--kic HEX --kid HEX] [--as KIND] [--json] HEX` (DESIGN §7): any codec input with the specs'
element names, as indented text on a terminal and as JSON with --json."""

from __future__ import annotations

import argparse
import sys

from esimota.codec.describe import KINDS, describe
from esimota.errors import CodecError

from . import output

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"{what} is not hexadecimal") from None


def run(args: argparse.Namespace) -> int:
    """Decode and print the fields (JSON with --json); exit 2 on bad input with one clear line on stderr
    (with --json, `{"ok": false, …}` on stdout)."""
    try:
        raw = _hex(args.hex, "input")
        kic = _hex(args.kic, "--kic") if args.kic else None
        kid = _hex(args.kid, "--kid") if args.kid else None
        for name, key in (("--kic", kic), ("--kid", kid)):
            if key is not None and len(key) not in (16, 24):
                raise ValueError(f"{name} must be 16 or 24 bytes")
        result = describe(raw, args.kind, kic, kid)
    except CodecError as exc:
        return _bad(args, exc.reason, f"{exc.reason}: {exc}")
    except ValueError as exc:
        return _bad(args, "INVALID_ARGUMENT", str(exc))
    print(output.to_json(result) if args.json else output.tree(result))
    return EXIT_OK


def _bad(args: argparse.Namespace, reason: str, message: str) -> int:
    if args.json:
        print(output.to_json({"ok": False, "error": reason, "message": message}))
    else:
        print(f"esimota decode: {message}", file=sys.stderr)
    return EXIT_BAD_INPUT


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `decode` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser("decode", help="decode a frame, packet, script, APDU, TLV or CAT command",
                              description="Decode hex bytes into the specs' element names (JSON with --json).")
    p.add_argument("hex", help="the bytes, in hexadecimal")
    p.add_argument("--kic", help="K_IC (hex) to decipher packets")
    p.add_argument("--kid", help="K_ID (hex) to check CC and MACs")
    p.add_argument("--as", dest="kind", choices=KINDS, help="decode as this kind instead of guessing")
    p.add_argument("--json", action="store_true", help="print JSON (default: indented text)")
    p.set_defaults(func=run)
    return p

