"""Batch apply for partners (§7.2.2.2, R18): up to 100 applies in one call, each judged as a single one."""

from __future__ import annotations

from typing import Any

from ..errors import DomainError, InvalidArgument
from ..store.clients import Client
from . import writing
from .common import require

MAX_ITEMS = 100  # the carriers' usual batch size (issue 15)


async def apply_batch(db: Any, client: Client,
                      requests: list[writing.ApplyRequest | DomainError]) -> list[writing.ApplyResult | DomainError]:
    """Each item in order: its ApplyResult, or the typed error a single apply would raise.

    Items are independent transactions, idempotent per item like single applies (a retried batch
    gets the same tasks back); a refused item does not stop the others. An item the caller could
    not even parse arrives as its DomainError and is answered with it.
    """
    require(client, "write")
    if not requests:
        raise InvalidArgument("items is required (1 to 100 applies)", reason="ITEMS_REQUIRED")
    if len(requests) > MAX_ITEMS:
        raise InvalidArgument(f"at most {MAX_ITEMS} items per batch", reason="TOO_MANY_ITEMS")
    out: list[writing.ApplyResult | DomainError] = []
    for req in requests:
        if isinstance(req, DomainError):
            out.append(req)
            continue
        try:
            out.append(await writing.apply_write(db, client, req))
        except DomainError as exc:
            out.append(exc)
    return out
