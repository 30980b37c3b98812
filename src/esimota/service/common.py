"""Helpers shared by the use cases: a connection from a pool or connection, clock, permission checks."""

from __future__ import annotations

import contextlib
import datetime as dt
from typing import Any, AsyncIterator

from ..errors import PermissionDenied
from ..store import chips as chip_store
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
    """A chip not allocated to this client (another's, or no one's) is answered exactly as an unknown EID
    (DESIGN §6: 404 EID_NOT_FOUND, the same message), so the API tells no one which EIDs exist."""
    if chip is None or chip["owner_client_id"] != client.id:
        raise chip_store.unknown_eid()
