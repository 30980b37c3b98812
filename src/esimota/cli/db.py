"""`esimota db start|stop|migrate|url`: the embedded PostgreSQL cluster and migrations (DESIGN §7)."""

from __future__ import annotations

import argparse
import asyncio

from . import output
from .common import EXIT_OK, emit


def _db_command(args: argparse.Namespace) -> int:
    from .. import config, runtime
    from ..store import embedded, migrate

    if args.db_action == "start":
        url = runtime.database_url()
        emit(args, {"ok": True, "running": True, "url": _redact_url(url)})
    elif args.db_action == "stop":
        was = embedded.Cluster(config.home()).stop()
        emit(args, {"ok": True, "stopped": was})
    elif args.db_action == "migrate":
        applied = asyncio.run(migrate.migrate_url(runtime.database_url()))
        emit(args, {"ok": True, "applied": applied})
    elif args.db_action == "url":  # the bare URL, for `export DATABASE_URL=$(esimota db url)`
        url = runtime.database_url()
        print(output.to_json({"ok": True, "url": url}) if args.json else url)
    return EXIT_OK


def _redact_url(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def register(sub) -> None:
    db = sub.add_parser("db", help="the embedded PostgreSQL cluster and migrations",
                        description="start|stop the embedded cluster under ESIMOTA_HOME, migrate the schema, or "
                                    "print the database URL (DATABASE_URL when set)")
    db.add_argument("db_action", choices=["start", "stop", "migrate", "url"])
    db.add_argument("--json", action="store_true", help="print JSON")
    db.set_defaults(func=_db_command)
