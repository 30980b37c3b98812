"""Test databases on the PostgreSQL server the tests are given: create one (empty or from the migrated
template), name its URL, drop it (FORCE: a platform process may still hold connections)."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg


def url_of(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`."""
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


async def _on_server(server_url: str, statement: str) -> None:
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


async def create(server_url: str, prefix: str, *, template: str | None = None) -> str:
    """A new database named `prefix` plus a random suffix (a copy of `template` if given); its name."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    await _on_server(server_url, f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return name


async def drop(server_url: str, name: str) -> None:
    await _on_server(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def via_port(url: str, port: int) -> str:
    """The same database reached at 127.0.0.1:`port` (a fault-injection proxy in front of the server)."""
    parts = urlsplit(url)
    auth = parts.netloc.rsplit("@", 1)[0] + "@" if "@" in parts.netloc else ""
    return urlunsplit(parts._replace(netloc=f"{auth}127.0.0.1:{port}"))
