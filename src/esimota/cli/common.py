"""What every `esimota` command shares: printing results and typed errors, exit codes, staff checks (DESIGN §7)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any, Awaitable, Callable

from ..errors import ConfigError, EsimotaError, ImportRejected, InvalidArgument
from . import output

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def staff_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--json` and `--as USER` (default ESIMOTA_STAFF), as every admin and operations command takes them."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--as", dest="as_", default=None, help="staff username (default: ESIMOTA_STAFF)")
    return p


def emit(args: argparse.Namespace, payload: dict, text: str | None = None) -> None:
    """Print a command's result: JSON only with --json; else `text`, or the payload as readable text
    and tables (cli.output: times in +08:00, and it parses back)."""
    if getattr(args, "json", False):
        print(output.to_json(payload))
    else:
        print(text if text is not None else output.text(payload))


def fail(args: argparse.Namespace, exc: EsimotaError) -> int:
    """Report a typed error: every problem listed (file and line for imports), exit 2 on bad input."""
    if isinstance(exc, ImportRejected):
        problems = [{"line": ln, "reason": reason, "detail": detail} for ln, reason, detail in exc.problems]
        if getattr(args, "json", False):
            print(output.to_json({"ok": False, "error": exc.reason, "message": exc.message,
                                  "problems": problems}))
        else:
            print(f"esimota: {exc.message}", file=sys.stderr)
            for p in problems:
                print(f"  {exc.source}:{p['line']}: {p['reason']}: {p['detail']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "json", False):
        print(output.to_json({"ok": False, "error": exc.reason, "message": exc.message}))
    else:
        print(f"esimota: {exc.reason}: {exc.message}", file=sys.stderr)
    return EXIT_FAIL if isinstance(exc, ConfigError) else EXIT_BAD_INPUT


def run_async(fn: Callable[[argparse.Namespace], "asyncio.Future[int] | object"]) -> Callable[[argparse.Namespace], int]:
    """Adapt an async command body to the sync CLI."""
    def runner(args: argparse.Namespace) -> int:
        return asyncio.run(fn(args))  # type: ignore[arg-type]
    return runner


async def open_pool():
    """A small pool for one command."""
    from .. import runtime
    return await runtime.open_pool(min_size=1, max_size=2)


async def as_staff(args: argparse.Namespace, action: str, body: Callable[[Any, str], Awaitable[Any]]) -> Any:
    """`body(pool, actor)` once `--as` (or ESIMOTA_STAFF) may do `action`; a refusal changes nothing (R28)."""
    from ..service import staff
    pool = await open_pool()
    try:
        actor = await staff.authorize(pool, args.as_, action)
        return await body(pool, actor)
    finally:
        await pool.close()


async def _with_pool(fn, args: argparse.Namespace) -> Any:
    pool = await open_pool()
    try:
        return await fn(pool, args)
    finally:
        await pool.close()


def run_with_pool(fn, text=None):
    """A command whose body is `fn(pool, args) -> payload`, printed by `emit` (with `text(payload)`)."""
    def runner(args: argparse.Namespace) -> int:
        payload = asyncio.run(_with_pool(fn, args))
        emit(args, payload, text(payload) if text else None)
        return 0
    return runner


def read_file(path: str | None) -> str | None:
    """The text of a file the operator named; FILE_UNREADABLE if it cannot be read; None for no path."""
    if path is None:
        return None
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidArgument(f"cannot read {path}: {exc.strerror}", reason="FILE_UNREADABLE") from None


def numbered_lines(path: str, header: str) -> tuple[list[str], list[int]]:
    """The values of a one-value-a-line file and their line numbers: blank lines skipped, and a first line
    equal to `header` (so that every problem is told as FILE:LINE)."""
    values, lines = [], []
    for number, raw in enumerate((read_file(path) or "").splitlines(), start=1):
        value = raw.strip().lstrip("\ufeff")
        if value and not (number == 1 and value.lower() == header):
            values.append(value)
            lines.append(number)
    return values, lines
