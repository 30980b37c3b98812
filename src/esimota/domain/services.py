"""Service profile of operational numbers (R30, DESIGN §2): data plus directed voice/SMS only."""

from __future__ import annotations

from ..errors import InvalidArgument

ALLOWED = ("data", "directed_voice", "directed_sms")


def parse_services(text: str) -> tuple[str, ...]:
    """`+`-joined services, in canonical order; anything not data/directed_* is refused (R30)."""
    parts = [p.strip() for p in text.split("+")] if isinstance(text, str) else []
    bad = [p for p in parts if p not in ALLOWED]
    if bad:
        raise InvalidArgument(f"service {bad[0]!r} is not allowed for IoT numbers (data, directed_voice, "
                              "directed_sms only)", reason="SERVICE_NOT_ALLOWED")
    if "data" not in parts:
        # every operational number is a data number first (R30)
        raise InvalidArgument("services must include data", reason="SERVICE_NOT_ALLOWED")
    if len(set(parts)) != len(parts):
        raise InvalidArgument("a service is listed twice", reason="SERVICE_NOT_ALLOWED")
    return tuple(s for s in ALLOWED if s in parts)
