"""One error tree for the whole platform, shared by the compiled core and its pure twin (STYLE 7)."""

from __future__ import annotations


class EsimotaError(Exception):
    """Base of every error the platform raises on purpose.

    `reason` is a stable, upper-case reason code that clients and tests can rely on;
    the message is for people and may change.
    """

    reason = "INTERNAL"

    def __init__(self, message: str = "", *, reason: str | None = None) -> None:
        super().__init__(message or self.__class__.__doc__ or self.__class__.__name__)
        if reason is not None:
            self.reason = reason

    @property
    def message(self) -> str:
        return str(self.args[0]) if self.args else ""


# --- codec -----------------------------------------------------------------------------------

class CodecError(EsimotaError, ValueError):
    """Malformed bytes: carries the byte offset where decoding failed and the tag, if known."""

    reason = "CODEC_ERROR"

    def __init__(self, message: str, offset: int = -1, tag: int | None = None, *,
                 reason: str | None = None) -> None:
        self.offset = offset
        self.tag = tag
        where = []
        if offset >= 0:
            where.append(f"at offset {offset}")
        if tag is not None:
            where.append(f"(tag 0x{tag:02X})")
        full = f"{message} {' '.join(where)}".rstrip() if where else message
        super().__init__(full, reason=reason)
        self.detail = message

    def __reduce__(self):  # keep offset/tag across pickling (multiprocess fuzzing, workers)
        return (_rebuild_codec_error, (self.__class__, self.detail, self.offset, self.tag, self.reason))

    def __eq__(self, other: object) -> bool:  # differential tests compare errors, not identities
        return (type(self) is type(other) and self.detail == other.detail  # type: ignore[attr-defined]
                and self.offset == other.offset and self.tag == other.tag)  # type: ignore[attr-defined]

    __hash__ = Exception.__hash__


def _rebuild_codec_error(cls, detail, offset, tag, reason):
    return cls(detail, offset, tag, reason=reason)


class TruncatedError(CodecError):
    """The input ends before the structure does."""

    reason = "TRUNCATED"


class LengthError(CodecError):
    """A length field is malformed, points past the end, or disagrees with the content."""

    reason = "BAD_LENGTH"


class BadTagError(CodecError):
    """A tag is malformed, unexpected at this place, or nested too deep."""

    reason = "BAD_TAG"


class BadValueError(CodecError):
    """A field's value is outside what the specification allows."""

    reason = "BAD_VALUE"


class SecurityError(CodecError):
    """A MAC or cryptographic checksum does not verify, padding is wrong, or a counter is stale."""

    reason = "SECURITY"


class BadMacError(SecurityError):
    """A MAC or cryptographic checksum (CC) does not verify."""

    reason = "BAD_MAC"


class BadPaddingError(SecurityError):
    """Deciphered data has an impossible padding count."""

    reason = "BAD_PADDING"


class StaleCounterError(SecurityError):
    """A counter does not exceed the last one seen (replay)."""

    reason = "STALE_COUNTER"


# --- protocol, domain, infrastructure --------------------------------------------------------

class ProtocolError(EsimotaError):
    """A peer broke the channel protocol (BCP/1): unexpected frame, frame too large, timeout."""

    reason = "PROTOCOL_ERROR"


class DomainError(EsimotaError):
    """A rule of the standard refuses the request; `reason` says which (e.g. EID_INVALID)."""

    reason = "DOMAIN_ERROR"


class InvalidArgument(DomainError):
    """A parameter is missing or malformed."""

    reason = "INVALID_ARGUMENT"


class NotFound(DomainError):
    """The EID, task, number or client does not exist."""

    reason = "NOT_FOUND"


class PermissionDenied(DomainError):
    """The caller may not do this (permission, whitelist, or the card's state does not allow it)."""

    reason = "PERMISSION_DENIED"


class Conflict(DomainError):
    """The request conflicts with one already accepted."""

    reason = "CONFLICT"


class Unauthenticated(DomainError):
    """Bad client credentials or token."""

    reason = "UNAUTHENTICATED"


class RateLimited(DomainError):
    """Too many calls; `retry_after` says when to come back (seconds)."""

    reason = "RATE_LIMITED"

    def __init__(self, message: str = "", *, retry_after: float = 1.0, reason: str | None = None) -> None:
        super().__init__(message, reason=reason)
        self.retry_after = retry_after


class ImportRejected(DomainError):
    """An operator's file has bad rows; nothing was imported. `problems` lists (line, reason, text)."""

    reason = "IMPORT_REJECTED"

    def __init__(self, problems: list[tuple[int, str, str]], *, source: str = "") -> None:
        self.problems = problems
        self.source = source
        rows = len({p[0] for p in problems})
        super().__init__(f"{len(problems)} problem(s) in {rows} bad row(s) of {source or 'input'}; nothing imported")


class ConfigError(EsimotaError):
    """The platform is misconfigured or a required program is missing."""

    reason = "CONFIG"


class Unavailable(EsimotaError):
    """A dependency (the database) is unavailable right now; retry later."""

    reason = "UNAVAILABLE"
