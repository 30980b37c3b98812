"""`esimota batch|chips|numbers`: chip batches, seed chips and operational numbers — each checked against staff roles (R28)."""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path

from ..errors import InvalidArgument
from . import find, formats
from .common import as_staff, emit, numbered_lines, read_file, run_async, staff_flags

RAW = argparse.RawDescriptionHelpFormatter


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


def _check_csv(path: str) -> str:
    if not Path(path).is_file():
        raise InvalidArgument(f"no such file: {path}", reason="FILE_UNREADABLE")
    return path


async def _batch(args: argparse.Namespace) -> int:
    from ..service import admin

    async def body(pool, actor):
        key = read_file(args.master_key_file).strip()
        return await admin.create_batch(pool, args.name, key, actor=actor)
    batch_id = await as_staff(args, "resources.import", body)
    emit(args, {"ok": True, "batch": args.name, "id": batch_id})
    return 0


async def _chips_import(args: argparse.Namespace) -> int:
    from ..service import imports

    async def body(pool, actor):
        return await imports.import_chips(pool, _check_csv(args.file), args.batch, actor=actor,
                                          progress=_progress_bar("chips"))
    res = await as_staff(args, "resources.import", body)
    emit(args, {"ok": True, **asdict(res)})
    return 0


async def _numbers_import(args: argparse.Namespace) -> int:
    from ..service import imports

    async def body(pool, actor):
        return await imports.import_numbers(pool, _check_csv(args.file), actor=actor,
                                            progress=_progress_bar("numbers"))
    res = await as_staff(args, "resources.import", body)
    emit(args, {"ok": True, **asdict(res)})
    return 0


async def _numbers_allocate(args: argparse.Namespace) -> int:
    from ..service import admin

    async def body(pool, actor):
        iccids, where = list(args.iccid or []), {}
        if args.file:
            from_file, lines = numbered_lines(args.file, "iccid")
            if not iccids:  # problems told as FILE:LINE
                where = {"lines": lines, "source": args.file}
            iccids += from_file
        if not iccids:
            raise InvalidArgument("give --iccid or --file", reason="NUMBER_REQUIRED")
        return await admin.allocate_numbers(pool, args.client, iccids, actor=actor, **where)
    done = await as_staff(args, "resources.import", body)
    emit(args, {"ok": True, "client_id": args.client, "allocated": len(done)})
    return 0


def _eids_named(args: argparse.Namespace) -> tuple[list[str] | None, dict]:
    """--eid EID… or --file FILE (one EID a line, an `eid` header allowed); None with --batch. With the
    EIDs, where they come from: a file's line numbers, so that every problem is told as FILE:LINE."""
    if args.batch:
        return None, {}
    if args.file and not args.eid:
        eids, lines = numbered_lines(args.file, "eid")
        return eids, {"lines": lines, "source": args.file}
    return list(args.eid or []), {}


async def _chips_allocation(args: argparse.Namespace) -> int:
    """`chips allocate|release --client C (--eid…|--file|--batch)` (§6.2.1.1 分配数据资源)."""
    from ..service import admin

    release = args.chips_action == "release"

    async def body(pool, actor):
        use = admin.release_chips if release else admin.allocate_chips
        eids, where = _eids_named(args)
        return await use(pool, args.client, eids, batch=args.batch, actor=actor, **where)
    done = await as_staff(args, "resources.import", body)
    emit(args, {"ok": True, "client": args.client, "released" if release else "allocated": len(done)})
    return 0


def register(sub) -> None:
    """Add batch, chips and numbers to the `esimota` command (DESIGN §7)."""
    batch = sub.add_parser("batch", help="chip batches")
    batch_actions = batch.add_subparsers(dest="batch_action", metavar="ACTION", required=True)
    create = staff_flags(batch_actions.add_parser("create", help="register a batch and its master key"))
    create.add_argument("--name", required=True)
    create.add_argument("--master-key-file", required=True, help="file holding 32 hex digits")
    create.set_defaults(func=run_async(_batch))

    chips = sub.add_parser("chips", help="seed chips")
    chip_actions = chips.add_subparsers(dest="chips_action", metavar="ACTION", required=True)
    chips_imp = staff_flags(chip_actions.add_parser("import", help="import chips from CSV", epilog=formats.CHIPS,
                                                    formatter_class=RAW))
    chips_imp.add_argument("file")
    chips_imp.add_argument("--batch", required=True)
    chips_imp.set_defaults(func=run_async(_chips_import))
    for action, text in (("allocate", "allocate chips to the client that may apply for them (分配数据资源)"),
                         ("release", "undo an allocation while no write task is open on the chips")):
        p = staff_flags(chip_actions.add_parser(action, help=text, epilog=formats.EID_LIST, formatter_class=RAW))
        p.add_argument("--client", required=True, help="the client's id or name")
        group = p.add_mutually_exclusive_group(required=True)
        group.add_argument("--eid", nargs="+")
        group.add_argument("--file", help="one EID per line")
        group.add_argument("--batch", help="every chip of this batch")
        p.set_defaults(func=run_async(_chips_allocation))
    find.add_chip_commands(chip_actions)

    numbers = sub.add_parser("numbers", help="operational numbers")
    num_actions = numbers.add_subparsers(dest="numbers_action", metavar="ACTION", required=True)
    num_imp = staff_flags(num_actions.add_parser("import", help="import numbers from CSV", epilog=formats.NUMBERS,
                                                 formatter_class=RAW))
    num_imp.add_argument("file")
    num_imp.set_defaults(func=run_async(_numbers_import))
    alloc = staff_flags(num_actions.add_parser("allocate", help="allocate numbers to a client (划拨)",
                                               epilog=formats.ICCID_LIST, formatter_class=RAW))
    alloc.add_argument("--client", required=True, help="the client's id or name")
    group = alloc.add_mutually_exclusive_group(required=True)
    group.add_argument("--iccid", nargs="+")
    group.add_argument("--file", help="one ICCID per line")
    alloc.set_defaults(func=run_async(_numbers_allocate))
    find.add_number_commands(num_actions)
