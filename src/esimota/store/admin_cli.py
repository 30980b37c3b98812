"""The admin commands of DESIGN §7: batch, chips, numbers, client, keys — each checked against staff roles (R28)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import InvalidArgument


def _cli():
    from .. import cli  # imported late: cli imports this module while building its parser
    return cli


async def _pool():
    from .. import runtime
    return await runtime.open_pool(min_size=1, max_size=2)


async def _as_staff(args: argparse.Namespace, action: str, body: Callable[[Any, str], Awaitable[Any]]) -> Any:
    """`body(pool, actor)` once `--as` (or ESIMOTA_STAFF) may do `action`; a refusal changes nothing (R28)."""
    from ..service import staff
    pool = await _pool()
    try:
        actor = await staff.authorize(pool, args.as_, action)
        return await body(pool, actor)
    finally:
        await pool.close()


def _progress_bar(label: str):
    """A progress bar on stderr, only when stderr is a terminal (DESIGN §7)."""
    if not sys.stderr.isatty():
        return None

    def show(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        sys.stderr.write(f"\r{label} [{'#' * (pct // 4):<25}] {pct:3d}%")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()
    return show


def _read_file(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}", reason="FILE_UNREADABLE") from None


def _check_csv(path: str) -> str:
    if not Path(path).is_file():
        raise InvalidArgument(f"no such file: {path}", reason="FILE_UNREADABLE")
    return path


async def _batch(args: argparse.Namespace) -> int:
    from ..service import admin

    async def body(pool, actor):
        key = _read_file(args.master_key_file).strip()
        return await admin.create_batch(pool, args.name, key, actor=actor)
    batch_id = await _as_staff(args, "resources.import", body)
    _cli().emit(args, {"ok": True, "batch": args.name, "id": batch_id}, f"batch {args.name} created")
    return 0


async def _chips_import(args: argparse.Namespace) -> int:
    from ..service import imports

    async def body(pool, actor):
        return await imports.import_chips(pool, _check_csv(args.file), args.batch, actor=actor,
                                          progress=_progress_bar("chips"))
    res = await _as_staff(args, "resources.import", body)
    _cli().emit(args, {"ok": True, **asdict(res)}, f"{res.imported} chip(s) imported, "
                f"{res.already_present} already present")
    return 0


async def _numbers_import(args: argparse.Namespace) -> int:
    from ..service import imports

    async def body(pool, actor):
        return await imports.import_numbers(pool, _check_csv(args.file), actor=actor,
                                            progress=_progress_bar("numbers"))
    res = await _as_staff(args, "resources.import", body)
    _cli().emit(args, {"ok": True, **asdict(res)}, f"{res.imported} number(s) imported, "
                f"{res.already_present} already present")
    return 0


async def _numbers_allocate(args: argparse.Namespace) -> int:
    from ..service import admin

    async def body(pool, actor):
        iccids = list(args.iccid or [])
        if args.file:
            iccids += [ln.strip() for ln in _read_file(args.file).splitlines()
                       if ln.strip() and ln.strip() != "iccid"]
        if not iccids:
            raise InvalidArgument("give --iccid or --file", reason="NUMBER_REQUIRED")
        return await admin.allocate_numbers(pool, args.client, iccids, actor=actor)
    done = await _as_staff(args, "resources.import", body)
    _cli().emit(args, {"ok": True, "client_id": args.client, "allocated": len(done)},
                f"{len(done)} number(s) allocated to {args.client}")
    return 0


def _client_view(client) -> dict:
    return {"client_id": client.client_id, "name": client.name, "phone": client.phone,
            "ip_whitelist": list(client.ip_whitelist), "permissions": list(client.permissions),
            "callback_url": client.callback_url, "rate_limit_per_min": client.rate_limit_per_min,
            "disabled": client.disabled}


async def _client(args: argparse.Namespace) -> int:
    """Only administrators manage clients (R31); the actor is in every audit row."""
    payload = await _as_staff(args, "client.manage", lambda pool, actor: _client_action(pool, args, actor))
    text = "\n".join(f"{k}: {v}" for k, v in payload.items() if k != "ok")
    _cli().emit(args, payload, text)
    return 0


async def _client_action(pool, args: argparse.Namespace, actor: str) -> dict:
    """One `client …` action; secrets are printed once here and never stored in clear (R15, R17)."""
    from ..service import admin
    if args.client_action == "create":
        new = await admin.create_client(pool, name=args.name, phone=args.phone, ip=args.ip,
                                        callback_url=args.callback_url, permissions=args.permissions,
                                        rate_limit_per_min=args.rate_limit, actor=actor)
        return {"ok": True, **_client_view(new.client), "client_secret": new.client_secret,
                "callback_secret": new.callback_secret}
    if args.client_action == "rotate-secret":
        client, secret = await admin.rotate_secret(pool, args.client_id, callback=args.callback, actor=actor)
        key = "callback_secret" if args.callback else "client_secret"
        return {"ok": True, "client_id": client.client_id, key: secret}
    if args.client_action == "whitelist":
        client = await admin.set_whitelist(pool, args.client_id, args.ip, actor=actor)
    elif args.client_action == "permissions":
        client = await admin.set_permissions(pool, args.client_id, args.permissions, actor=actor)
    else:
        client = await admin.disable_client(pool, args.client_id, actor=actor)
    return {"ok": True, **_client_view(client)}


def _new_master(path: str | None) -> bytes | None:
    if not path:
        return None
    try:
        key = bytes.fromhex(_read_file(path).strip())
    except ValueError:
        key = b""
    if len(key) != 32:
        raise InvalidArgument("the new master key must be 64 hex digits", reason="MASTER_KEY_INVALID")
    return key


async def _keys_rotate(args: argparse.Namespace) -> int:
    from .. import config
    from . import audit, keys

    async def body(pool, actor):
        new_master = _new_master(args.new_master_key_file)
        res = await keys.rotate(pool, config.master_key(), new_master=new_master)
        await audit.record(pool, actor, "keys.rotate", f"v{res.version}", reencrypted=res.reencrypted,
                           rewrapped=res.rewrapped)
        return res
    res = await _as_staff(args, "keys.rotate", body)
    _cli().emit(args, {"ok": True, **asdict(res)},
                f"data key v{res.version}: {res.reencrypted} value(s) re-encrypted, {res.rewrapped} key(s) re-wrapped")
    return 0


def _common(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    return _cli().staff_flags(p)


def _client_parsers(sub) -> None:
    client = sub.add_parser("client", help="partner accounts (§6.2.1.1)")
    actions = client.add_subparsers(dest="client_action", metavar="ACTION", required=True)
    create = _common(actions.add_parser("create", help="create a client; prints its secrets once"))
    create.add_argument("--name", required=True)
    create.add_argument("--phone", required=True, help="registered phone number (R15)")
    create.add_argument("--ip", required=True, help="whitelisted CIDR[,CIDR…]")
    create.add_argument("--callback-url", required=True)
    create.add_argument("--permissions", default="write,chip,number")
    create.add_argument("--rate-limit", type=int, default=600, help="calls per minute")
    rotate = _common(actions.add_parser("rotate-secret", help="new client secret (or --callback secret)"))
    rotate.add_argument("client_id")
    rotate.add_argument("--callback", action="store_true", help="rotate the callback signing secret")
    wl = _common(actions.add_parser("whitelist", help="replace the IP whitelist"))
    wl.add_argument("client_id")
    wl.add_argument("--ip", required=True)
    perms = _common(actions.add_parser("permissions", help="replace the API permissions"))
    perms.add_argument("client_id")
    perms.add_argument("--permissions", required=True)
    disable = _common(actions.add_parser("disable", help="revoke a client"))
    disable.add_argument("client_id")
    client.set_defaults(func=_cli().run_async(_client))


def register(sub) -> None:
    """Add batch, chips, numbers, client and keys to the `esimota` command (DESIGN §7)."""
    run = _cli().run_async
    batch = sub.add_parser("batch", help="chip batches")
    batch_actions = batch.add_subparsers(dest="batch_action", metavar="ACTION", required=True)
    create = _common(batch_actions.add_parser("create", help="register a batch and its master key"))
    create.add_argument("--name", required=True)
    create.add_argument("--master-key-file", required=True, help="file holding 32 hex digits")
    create.set_defaults(func=run(_batch))

    chips = sub.add_parser("chips", help="seed chips")
    chips_imp = _common(chips.add_subparsers(dest="chips_action", metavar="ACTION", required=True)
                      .add_parser("import", help="import chips from CSV"))
    chips_imp.add_argument("file")
    chips_imp.add_argument("--batch", required=True)
    chips_imp.set_defaults(func=run(_chips_import))

    numbers = sub.add_parser("numbers", help="operational numbers")
    num_actions = numbers.add_subparsers(dest="numbers_action", metavar="ACTION", required=True)
    num_imp = _common(num_actions.add_parser("import", help="import numbers from CSV"))
    num_imp.add_argument("file")
    num_imp.set_defaults(func=run(_numbers_import))
    alloc = _common(num_actions.add_parser("allocate", help="allocate numbers to a client (划拨)"))
    alloc.add_argument("--client", required=True)
    group = alloc.add_mutually_exclusive_group(required=True)
    group.add_argument("--iccid", nargs="+")
    group.add_argument("--file", help="one ICCID per line")
    alloc.set_defaults(func=run(_numbers_allocate))

    _client_parsers(sub)
    keys = sub.add_parser("keys", help="at-rest encryption keys")
    rotate = _common(keys.add_subparsers(dest="keys_action", metavar="ACTION", required=True)
                   .add_parser("rotate", help="new data key; re-encrypt online; optionally re-wrap"))
    rotate.add_argument("--new-master-key-file", help="re-wrap every data key under this master key (64 hex)")
    rotate.set_defaults(func=run(_keys_rotate))
