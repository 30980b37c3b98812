"""The `esimota` command (DESIGN §7): admin commands print JSON with --json, exit 2 on bad input."""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import sys
from typing import Callable, Sequence

from .errors import ConfigError, EsimotaError, ImportRejected

# Modules that add sub-commands: each has register(subparsers). Absent ones are skipped.
PLUGINS = (
    "esimota.codec.decode_cli",
    "esimota.store.admin_cli",
    "esimota.sim.cli",
    "esimota.jobs.report_cli",
    "esimota.api.cli",
)

EXIT_OK, EXIT_FAIL, EXIT_BAD_INPUT = 0, 1, 2


def staff_flags(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """`--json` and `--as USER` (default ESIMOTA_STAFF), as every admin and operations command takes them."""
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--as", dest="as_", default=None, help="staff username (default: ESIMOTA_STAFF)")
    return p


def emit(args: argparse.Namespace, payload: dict, text: str | None = None) -> None:
    """Print a command's result: JSON with --json, else the human line (or the JSON)."""
    if getattr(args, "json", False) or text is None:
        print(json.dumps(payload, ensure_ascii=False, indent=None, default=str))
    else:
        print(text)


def fail(args: argparse.Namespace, exc: EsimotaError) -> int:
    """Report a typed error: every problem listed (file and line for imports), exit 2 on bad input."""
    if isinstance(exc, ImportRejected):
        problems = [{"line": ln, "reason": reason, "detail": detail} for ln, reason, detail in exc.problems]
        if getattr(args, "json", False):
            print(json.dumps({"ok": False, "error": exc.reason, "message": exc.message,
                              "problems": problems}, ensure_ascii=False))
        else:
            print(f"esimota: {exc.message}", file=sys.stderr)
            for p in problems:
                print(f"  {exc.source}:{p['line']}: {p['reason']}: {p['detail']}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if getattr(args, "json", False):
        print(json.dumps({"ok": False, "error": exc.reason, "message": exc.message}, ensure_ascii=False))
    else:
        print(f"esimota: {exc.reason}: {exc.message}", file=sys.stderr)
    return EXIT_FAIL if isinstance(exc, ConfigError) else EXIT_BAD_INPUT


def run_async(fn: Callable[[argparse.Namespace], "asyncio.Future[int] | object"]) -> Callable[[argparse.Namespace], int]:
    """Adapt an async command body to the sync CLI."""
    def runner(args: argparse.Namespace) -> int:
        return asyncio.run(fn(args))  # type: ignore[arg-type]
    return runner


def _db_command(args: argparse.Namespace) -> int:
    from . import config, runtime
    from .store import embedded, migrate

    if args.db_action == "start":
        url = runtime.database_url()
        emit(args, {"ok": True, "url": _redact_url(url)}, "database running")
    elif args.db_action == "stop":
        was = embedded.Cluster(config.home()).stop()
        emit(args, {"ok": True, "stopped": was}, "database stopped" if was else "database was not running")
    elif args.db_action == "migrate":
        applied = asyncio.run(migrate.migrate_url(runtime.database_url()))
        emit(args, {"ok": True, "applied": applied},
             f"applied {len(applied)} migration(s)" if applied else "schema up to date")
    elif args.db_action == "url":
        print(runtime.database_url())
    return EXIT_OK


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def _serve_command(args: argparse.Namespace) -> int:
    from .server import serve_main

    return serve_main(args)


def _plugin_broken(name: str, exc: Exception) -> None:
    print(f"esimota: commands of {name} unavailable: {exc}", file=sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="esimota", description="IoT eSIM over-the-air write platform")
    parser.add_argument("--version", action="version", version=f"esimota {__import__('esimota').__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    serve = sub.add_parser("serve", help="run the platform: HTTPS bridge, gRPC, BIP endpoint, jobs")
    serve.add_argument("--host", default=None, help="address of the HTTP and gRPC listeners (default 127.0.0.1)")
    serve.add_argument("--http-port", type=int, default=None, help="HTTP bridge port (default 8080)")
    serve.add_argument("--grpc-port", type=int, default=None, help="gRPC port (default 50051)")
    serve.add_argument("--bip-port", type=int, default=None, help="BIP endpoint port (default 7700)")
    serve.add_argument("--workers", type=int, default=None, help="worker processes sharing the ports")
    serve.add_argument("--no-tls", action="store_true", help="plain HTTP/gRPC behind a TLS proxy")
    serve.set_defaults(func=_serve_command)

    db = sub.add_parser("db", help="the embedded PostgreSQL cluster and migrations")
    db.add_argument("db_action", choices=["start", "stop", "migrate", "url"])
    db.add_argument("--json", action="store_true")
    db.set_defaults(func=_db_command)

    for name in PLUGINS:
        try:
            module = importlib.import_module(name)
            module.register(sub)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                _plugin_broken(name, exc)
        except ImportError as exc:  # one broken command set must not take `serve` down with it
            _plugin_broken(name, exc)
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
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    console()
