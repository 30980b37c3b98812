"""The request id of every HTTP and gRPC call: the caller's X-Request-Id if it is sane, else a new one."""

from __future__ import annotations

import re
import secrets

HEADER = "X-Request-Id"
METADATA = "x-request-id"
_SANE = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def accept(value: str | None) -> str:
    """The caller's id when it is 8–64 characters of [A-Za-z0-9._:-] (a proxy's or a client's, so that
    one call is followed across systems), else a fresh random one; nothing else reaches logs or headers."""
    if value and _SANE.fullmatch(value):
        return value
    return secrets.token_hex(12)
