"""The ONE mapping from errors to HTTP status, gRPC code and JSON envelope (DESIGN §6, §7.1.1, STYLE 7)."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import asyncpg
import grpc

from .. import errors

logger = logging.getLogger("esimota.api")

# Error class → (HTTP status, gRPC code); the first matching class in this order wins (§7.1.1, DESIGN §6).
_BY_CLASS: tuple[tuple[type, int, grpc.StatusCode], ...] = (
    (errors.InvalidArgument, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.ImportRejected, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated, 401, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied, 403, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound, 404, grpc.StatusCode.NOT_FOUND),
    (errors.Conflict, 409, grpc.StatusCode.ABORTED),
    (errors.RateLimited, 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable, 503, grpc.StatusCode.UNAVAILABLE),
    (errors.CodecError, 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.DomainError, 400, grpc.StatusCode.FAILED_PRECONDITION),
)
# Database trouble that is not the caller's fault and will pass: 503, retry later.
DATABASE_DOWN = (OSError, asyncpg.PostgresConnectionError, asyncpg.InterfaceError,
                asyncpg.CannotConnectNowError, asyncpg.TooManyConnectionsError)
HTTP_TO_GRPC = {status: code for _, status, code in _BY_CLASS} | {500: grpc.StatusCode.INTERNAL}
GRPC_TO_HTTP = {code: status for _, status, code in _BY_CLASS} | {grpc.StatusCode.INTERNAL: 500}


@dataclass(frozen=True)
class Outcome:
    """What a failed call answers: HTTP status, gRPC code, stable reason code, message, retry-after."""

    http: int
    grpc: grpc.StatusCode
    reason: str
    message: str
    retry_after: float | None = None


def outcome(exc: BaseException) -> Outcome:
    """Map any exception; unknown ones are 500 INTERNAL with no detail (never a traceback to a client)."""
    for cls, http, code in _BY_CLASS:
        if isinstance(exc, cls):
            return Outcome(http, code, exc.reason, exc.message, getattr(exc, "retry_after", None))
    if isinstance(exc, asyncpg.DataError):  # a value PostgreSQL refuses (class 22): the caller's input
        return Outcome(400, grpc.StatusCode.INVALID_ARGUMENT, "PARAM_INVALID", "a parameter is malformed")
    if isinstance(exc, DATABASE_DOWN):
        return Outcome(503, grpc.StatusCode.UNAVAILABLE, "UNAVAILABLE", "the service is unavailable; retry later", 1.0)
    logger.error("internal error", exc_info=exc)
    return Outcome(500, grpc.StatusCode.INTERNAL, "INTERNAL", "internal error")


def ok_envelope(fields: dict) -> dict:
    """DESIGN §6: `{"code": 200, "message": "success", <fields>}`."""
    return {"code": 200, "message": "success", **fields}


def error_envelope(o: Outcome) -> dict:
    """DESIGN §6: errors add `"error": "<REASON_CODE>"`; code equals the HTTP status."""
    return {"code": o.http, "message": o.message, "error": o.reason}
