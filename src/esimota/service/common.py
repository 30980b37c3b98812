"""Helpers shared by the use cases: a connection from a pool or connection, clock, permission checks."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, AsyncIterator

from ..errors import PermissionDenied
from ..store.clients import Client

CST = dt.timezone(dt.timedelta(hours=8))  # times go out with +08:00 (DESIGN §6)


def now() -> dt.datetime:
    return dt.datetime.now(CST)


@contextlib.asynccontextmanager
async def connection(db: Any) -> AsyncIterator[Any]:
    """A connection from a pool, or the connection itself (so callers can group work in one transaction)."""
    if hasattr(db, "acquire"):
        async with db.acquire() as conn:
            yield conn
    else:
        yield db


def require(client: Client, permission: str) -> None:
    """Per-API permission (DESIGN §6: write, chip, number) and not disabled (R15, R28)."""
    if client.disabled:
        raise PermissionDenied("the client is disabled", reason="CLIENT_DISABLED")
    if permission not in client.permissions:
        raise PermissionDenied(f"the client has no {permission} permission", reason="NO_PERMISSION")


def check_owner(client: Client, chip: Any) -> None:
    """A chip that belongs to another client is not this client's business (R31)."""
    owner = chip["owner_client_id"]
    if owner is not None and owner != client.id:
        raise PermissionDenied("the chip belongs to another client", reason="NOT_OWNER")
