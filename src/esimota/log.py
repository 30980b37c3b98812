"""JSON-lines logging with secrets redacted before anything is written."""

from __future__ import annotations

import contextvars
import json
import logging
import os
import re
import sys
import time
from typing import Any

# Field names whose values are never logged (Ki, OPc, keys, secrets, tokens, passwords).
SECRET_KEYS = re.compile(r"(^|_)(ki|opc|kic|kid|dek|key|keys|secret|password|passwd|token|sign|authorization|master_key)$",
                         re.IGNORECASE)
_INLINE = [
    # key=value and "key": "value" pairs in free text
    (re.compile(r"(?i)\b(ki|opc|kic|kid|dek|client_secret|callback_secret|secret|password|token|master_key)"
                r"(\s*[=:]\s*\"?)([^\s\"&,;]+)"), r"\1\2***"),
    # passwords inside URLs of any scheme (a DATABASE_URL written mysql:// or http:// by mistake too)
    (re.compile(r"(\b[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]+:)[^@\s]+@"), r"\1***@"),
    # bearer tokens
    (re.compile(r"(?i)(bearer\s+)[A-Za-z0-9._~+/=-]+"), r"\1***"),
]
#: The id of the HTTP or gRPC call being served (X-Request-Id), on every log line written meanwhile.
REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar("esimota_request_id", default=None)
_STD_ATTRS = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def redact_text(text: str) -> str:
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` with every secret-named field replaced by '***'."""
    if key and SECRET_KEYS.search(key):
        return "***"
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"<{len(value)} bytes>"
    if isinstance(value, str):
        return redact_text(value)
    return value


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ts, level, logger, msg, pid and the record's extra fields."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created)) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": redact_text(record.getMessage()),
            "pid": record.process,
        }
        request_id = REQUEST_ID.get()
        if request_id is not None:
            out["request_id"] = request_id
        for k, v in record.__dict__.items():
            if k not in _STD_ATTRS and not k.startswith("_"):
                out[k] = redact(v, k)
        if record.exc_info:
            out["exc"] = redact_text(self.formatException(record.exc_info))
        return json.dumps(out, ensure_ascii=False, default=str)


def setup(level: str | None = None, stream=None) -> None:
    """Route every logger to one JSON-lines handler (stderr by default); idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_esimota", False):
            root.removeHandler(h)
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._esimota = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("ESIMOTA_LOG_LEVEL", "INFO")).upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
