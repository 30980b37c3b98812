"""`esimota decode [--kic HEX --kid HEX] [--as KIND] HEX` (DESIGN §7): any codec input as JSON."""

from __future__ import annotations

import argparse
import json
import sys

from esimota.codec.describe import KINDS, describe
from esimota.errors import CodecError

EXIT_OK, EXIT_BAD_INPUT = 0, 2


def _hex(text: str, what: str) -> bytes:
    cleaned = "".join(text.split()).replace(":", "")
    try:
        return bytes.fromhex(cleaned)
    except ValueError:
        raise ValueError(f"{what} is not hexadecimal") from None


def run(args: argparse.Namespace) -> int:
    """Decode and print JSON; one clear line on stderr and exit 2 on bad input."""
    try:
        raw = _hex(args.hex, "input")
        kic = _hex(args.kic, "--kic") if args.kic else None
        kid = _hex(args.kid, "--kid") if args.kid else None
        for name, key in (("--kic", kic), ("--kid", kid)):
            if key is not None and len(key) not in (16, 24):
                raise ValueError(f"{name} must be 16 or 24 bytes")
        result = describe(raw, args.kind, kic, kid)
    except CodecError as exc:
        print(f"esimota decode: {exc.reason}: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except ValueError as exc:
        print(f"esimota decode: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    print(json.dumps(result, ensure_ascii=False, indent=2))
    return EXIT_OK


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `decode` sub-command to an argparse subparsers object."""
    p = subparsers.add_parser("decode", help="decode a frame, packet, script, APDU, TLV or CAT command",
                              description="Decode hex bytes into JSON with the specs' element names.")
    p.add_argument("hex", help="the bytes, in hexadecimal")
    p.add_argument("--kic", help="K_IC (hex) to decipher packets")
    p.add_argument("--kid", help="K_ID (hex) to check CC and MACs")
    p.add_argument("--as", dest="kind", choices=KINDS, help="decode as this kind instead of guessing")
    p.set_defaults(func=run)
    return p

