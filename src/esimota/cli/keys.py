"""`esimota keys rotate`: a new at-rest data key, re-encryption online, optional re-wrap (checked against R28)."""

from __future__ import annotations

import argparse
from dataclasses import asdict

from ..errors import InvalidArgument
from .common import as_staff, emit, read_file, run_async, staff_flags


def _new_master(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        key = bytes.fromhex(read_file(path).strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidArgument("the new master key must be 64 hex digits", reason="MASTER_KEY_INVALID")
    return key


async def _keys_rotate(args: argparse.Namespace) -> int:
    from .. import config
    from ..store import audit, keys

    async def body(pool, actor):
        new_master = _new_master(args.new_master_key_file)
        res = await keys.rotate(pool, config.master_key(), new_master=new_master)
        await audit.record(pool, actor, "keys.rotate", f"v{res.version}", reencrypted=res.reencrypted,
                           rewrapped=res.rewrapped)
        return res
    res = await as_staff(args, "keys.rotate", body)
    emit(args, {"ok": True, **asdict(res)})
    return 0


def register(sub) -> None:
    keys = sub.add_parser("keys", help="at-rest encryption keys")
    rotate = staff_flags(keys.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
                         .add_parser("rotate", help="new data key; re-encrypt online; optionally re-wrap"))
    rotate.add_argument("--new-master-key-file", help="re-wrap every data key under this master key (64 hex)")
    rotate.set_defaults(func=run_async(_keys_rotate))
