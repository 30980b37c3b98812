"""What `esimota serve` checks before it serves anything: each refusal is one clear line and exit 2 (issue 17).

In this order, before a worker starts: the listeners can bind, the database answers within a
bounded wait (ESIMOTA_DB_WAIT seconds, default 30), its schema is not newer than this code, and the
at-rest master key unwraps every data key the database holds. Only then are migrations applied.
A platform that started anyway would report itself healthy and then refuse every card (CLOSE 07).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import asyncpg

from . import config
from .errors import ConfigError
from .log import redact_text
from .store import crypto, migrate

EXIT_REFUSED = 2


class Refused(Exception):
    """A reason not to start, said in one line."""


@dataclass
class Prepared:
    """What the checks found: the schema version reached and the migrations applied now."""

    schema: int
    applied: list[int]


def db_wait_seconds() -> float:
    raw = os.environ.get("ESIMOTA_DB_WAIT", "")
    try:
        return max(0.0, float(raw)) if raw else 30.0
    except ValueError:
        raise Refused(f"ESIMOTA_DB_WAIT must be a number of seconds, not {raw!r}") from None


def check_listeners(listeners: list[tuple[str, str, int, str]]) -> None:
    """(name, host, port, flag) each: the port must be free. Bound without SO_REUSEPORT, so that another
    process sharing the port with it (an esimota left running) is found too; port 0 is not checked."""
    for name, host, port, flag in listeners:
        if not port:
            continue
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError as exc:
                raise Refused(f"cannot listen on {host}:{port} for {name}: {exc.strerror or exc} "
                              f"(is another esimota or service running there? choose another with {flag})") from None


def check_database_url(url: str) -> None:
    """A DATABASE_URL that cannot name a PostgreSQL server is refused at once: no wait can mend it, and a
    port out of range or not a number reached the socket layer as a traceback (OverflowError, ValueError)."""
    parts = urlsplit(url)
    if parts.scheme not in ("postgresql", "postgres"):
        raise Refused(f"DATABASE_URL {redact_text(url)} is not a PostgreSQL URL: it must begin postgresql://")
    for hostport in parts.netloc.rpartition("@")[2].split(","):  # asyncpg takes host1:p1,host2:p2
        host_end = hostport.rpartition("]")[2]  # [::1]:5432
        port = host_end.rpartition(":")[2] if ":" in host_end else ""
        if port and not (port.isdigit() and 0 < int(port) < 65536):
            raise Refused(f"DATABASE_URL {redact_text(url)} names port {port!r}: a port is a number from 1 to 65535")


async def wait_for_database(url: str, seconds: float) -> asyncpg.Connection:
    """A connection, retried until `seconds` have passed; Refused names the database without its password."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return await asyncpg.connect(url, timeout=max(1.0, min(5.0, deadline - time.monotonic())))
        except (asyncpg.InvalidAuthorizationSpecificationError, asyncpg.InvalidCatalogNameError) as exc:
            # the server answered: a wrong password or user, or no such database; waiting will not change it
            detail = redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
            raise Refused(f"database {redact_text(url)} refused the connection: {detail} (check DATABASE_URL)") from None
        except (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            if time.monotonic() >= deadline:
                detail = redact_text(str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
                raise Refused(f"database {redact_text(url)} unreachable after {seconds:g} s: {detail} "
                              "(check DATABASE_URL and that PostgreSQL runs; ESIMOTA_DB_WAIT sets the wait)") from None
            await asyncio.sleep(0.5)


async def check_schema(conn: asyncpg.Connection, known: int) -> int:
    """The database's newest migration; Refused when it is newer than the newest this code knows."""
    newest = await migrate.schema_version(conn)
    if newest > known:
        raise Refused(f"the database schema is at migration {newest:04d}, newer than this esimota knows "
                      f"({known:04d}): run the release that migrated it (or restore a backup made with this one)")
    return newest


def _master_source() -> str:
    return "ESIMOTA_MASTER_KEY" if os.environ.get("ESIMOTA_MASTER_KEY") else str(config.home() / "master.key")


async def check_master_key(conn: asyncpg.Connection) -> None:
    """Every data key (and blind-index key) the database holds unwraps under the master key.

    A database with keys and no master key at all is refused before one is generated: a new key could
    never read it."""
    tables = [t for t in ("data_keys", "index_keys") if await migrate.has_table(conn, t)]
    keys = await conn.fetch(crypto.SELECT_KEYS) if "data_keys" in tables else []
    index = await conn.fetch(crypto.SELECT_INDEX_KEYS) if "index_keys" in tables else []
    if not keys and not index:
        return
    if not os.environ.get("ESIMOTA_MASTER_KEY") and not (config.home() / "master.key").exists():
        raise Refused(f"the database holds {len(keys)} data key(s) but there is no at-rest master key "
                      f"(ESIMOTA_MASTER_KEY or {config.home() / 'master.key'}): restore the one kept with "
                      "this database's backup (docs/operations.md, Keys)")
    master = config.master_key()
    try:
        for row in keys:
            crypto.unwrap(master, row["version"], row["wrapped"])
        for row in index:
            crypto.unwrap_index_key(master, row["purpose"], row["wrapped"])
    except ConfigError as exc:
        raise Refused(f"the at-rest master key ({_master_source()}) does not unwrap the database's keys "
                      f"({exc.message.split(':')[0]}): this database was made with another master key; restore "
                      "the one kept with its backup (docs/operations.md, Keys)") from None


async def prepare_database(url: str, wait_s: float) -> Prepared:
    """Wait for the database, check schema and master key, then apply the migrations this code has."""
    check_database_url(url)
    conn = await wait_for_database(url, wait_s)
    try:
        known = len(migrate.load())
        await check_schema(conn, known)
        await check_master_key(conn)
        applied = await migrate.migrate(conn)
        return Prepared(schema=known, applied=applied)
    finally:
        await conn.close()
