"""JSON-lines logging with secrets redacted before anything is written."""

from __future__ import annotations

import contextvars
import functools
import json
import logging
import os
import re
import sys
import threading
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
_ENCODER = json.JSONEncoder(ensure_ascii=False, default=str)  # one encoder: json.dumps with options builds one per call


def redact_text(text: str) -> str:
    # every pattern needs a '=' or ':' (key=value, "key": value, scheme://user:pw@) or the word bearer: text
    # without them (most log values: EIDs, names, reasons) is returned as it is, without three regex scans
    if ":" not in text and "=" not in text and "bearer" not in text.lower():
        return text
    for pattern, repl in _INLINE:
        text = pattern.sub(repl, text)
    return text


@functools.lru_cache(maxsize=4096)
def secret_name(key: str) -> bool:
    """Whether a field of this name is never logged (the few names a program uses, judged once each)."""
    return bool(SECRET_KEYS.search(key))


_PLAIN = (int, float, bool, type(None))


def redact(value: Any, key: str = "") -> Any:
    """A copy of `value` with every secret-named field replaced by '***'."""
    if key and secret_name(key):
        return "***"
    if type(value) in _PLAIN:
        return value
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

    _second, _stamp = -1, ""  # the last second formatted (a busy worker logs many lines within one)

    def format(self, record: logging.LogRecord) -> str:
        second = int(record.created)
        if second != self._second:
            self._second, self._stamp = second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
        out: dict[str, Any] = {
            "ts": f"{self._stamp}.{int(record.msecs):03d}Z",
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
        return _ENCODER.encode(out)


class LineWriter(logging.Handler):
    """Formats each record on the caller's thread and writes from a thread of its own, so that a slow
    reader of stderr (a full pipe, a busy journald) never stalls a worker's event loop: a fleet's
    40,000 session lines cost the loop their formatting, not 40,000 blocking writes.

    Lines keep their order. INFO and below are written within FLUSH_S (at once when BATCH is full),
    one write per batch; a WARNING or worse is written at once, after everything queued before it.
    Bounded: past MAX_QUEUED
    characters the caller waits for the writer (back-pressure, as a plain StreamHandler would block).
    `flush()` (called by logging.shutdown at exit, and by `flush()` below) returns when every line
    queued so far is written; a process killed with SIGKILL loses at most FLUSH_S of INFO lines."""

    FLUSH_S = 0.05
    BATCH = 1 << 16  # a pipe's capacity: written at once, without waiting for FLUSH_S
    MAX_QUEUED = 1 << 20

    def __init__(self, stream) -> None:
        super().__init__()
        self.stream = stream
        self.queued: list[str] = []
        self.size = 0
        self.taken = self.written = 0  # lines taken for writing / written, counted from the start
        self.cond = threading.Condition()
        self.write_lock = threading.Lock()  # one writer at a time, each taking the queue's head: order kept
        self.closing = False
        self.thread = threading.Thread(target=self._run, name="esimota-log", daemon=True)
        self.thread.start()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record) + "\n"
        except Exception:
            self.handleError(record)
            return
        with self.cond:
            if self.size > self.MAX_QUEUED and not self.closing:
                self.cond.wait_for(lambda: self.size <= self.MAX_QUEUED or self.closing, timeout=5.0)
            before = self.size
            self.queued.append(line)
            self.size += len(line)
            if before == 0 or before <= self.BATCH < self.size:  # the first line, or a batch is full
                self.cond.notify_all()
        if record.levelno >= logging.WARNING or self.closing:
            self._write_queued()

    def _write_queued(self) -> None:
        with self.write_lock:
            with self.cond:
                lines, self.queued, self.size = self.queued, [], 0
                self.taken += len(lines)
                self.cond.notify_all()
            if lines:
                try:
                    self.stream.write("".join(lines))
                    self.stream.flush()
                except Exception:  # a closed or broken stream: the lines are dropped, the program goes on
                    pass
            with self.cond:
                self.written += len(lines)
                self.cond.notify_all()

    def _run(self) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(lambda: self.queued or self.closing)
                if self.closing and not self.queued:
                    return
                # let a burst gather into one write, unless a batch is full already
                self.cond.wait_for(lambda: self.size > self.BATCH or self.closing, timeout=self.FLUSH_S)
            self._write_queued()

    def flush(self) -> None:
        with self.cond:
            target = self.taken + len(self.queued)
        self._write_queued()
        with self.cond:
            self.cond.wait_for(lambda: self.written >= target, timeout=5.0)

    def close(self) -> None:
        with self.cond:
            self.closing = True
            self.cond.notify_all()
        self.flush()
        super().close()


def flush() -> None:
    """Write every log line queued so far (before a line printed straight to stderr, or an exit)."""
    for h in logging.getLogger().handlers:
        if getattr(h, "_esimota", False):
            h.flush()


def setup(level: str | None = None, stream=None) -> None:
    """Route every logger to one JSON-lines handler (stderr by default); idempotent."""
    root = logging.getLogger()
    for h in list(root.handlers):
        if getattr(h, "_esimota", False):
            root.removeHandler(h)
            h.close()
    # the records' caller, thread and process names are never printed: not looked up for each line
    logging._srcfile = None  # type: ignore[attr-defined]  # the logging HOWTO's "Optimization"
    logging.logThreads = False
    logging.logMultiprocessing = False
    handler = LineWriter(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler._esimota = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel((level or os.environ.get("ESIMOTA_LOG_LEVEL", "INFO")).upper())
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
