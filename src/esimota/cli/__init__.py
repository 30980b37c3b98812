"""The `esimota` command (DESIGN §7): admin commands print JSON with --json, exit 2 on bad input.

One module per command group, each adding its sub-commands with register(subparsers), in help order.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

# Before grpc is imported (below): the platform never forks a process that goes on using gRPC (it only
# runs other programs: pg_ctl, pg_dump), so gRPC's fork handlers are not wanted; with them on, stopping
# the embedded PostgreSQL printed grpc's non-JSON "skipping fork() handlers" lines into the log.
os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "false")

from ..errors import EsimotaError
from . import api, backup, chips, client, db, decode, find, keys, monitor, project, report, serve, sim, staff
from .common import EXIT_BAD_INPUT, EXIT_FAIL, EXIT_OK, emit, fail, run_async, staff_flags

__all__ = ["EXIT_BAD_INPUT", "EXIT_FAIL", "EXIT_OK", "build_parser", "console", "emit", "fail", "main",
           "run_async", "staff_flags"]

#: The command groups in the order `esimota --help` lists them.
GROUPS = (serve, db, decode, chips, client, keys, sim, report, staff, monitor, backup, project, api, find)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esimota", description="IoT eSIM over-the-air write platform")
    parser.add_argument("--version", action="version", version=f"esimota {__import__('esimota').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for group in GROUPS:
        group.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EsimotaError as exc:
        return fail(args, exc)
    except KeyboardInterrupt:
        return 130


def console() -> None:
    """Console-script entry point. Output cut short by a closed pipe (`esimota … | head`) ends quietly,
    exit 141 like other tools killed by SIGPIPE, never with a traceback."""
    try:
        try:
            code = main()
        except SystemExit as exc:  # --help, --version, argparse errors: their output is flushed below
            code = exc.code
        sys.stdout.flush()
    except BrokenPipeError:
        devnull = os.open(os.devnull, os.O_WRONLY)  # Python flushes stdout again at exit: not into the pipe
        os.dup2(devnull, sys.stdout.fileno())
        code = 141
    sys.exit(code)
