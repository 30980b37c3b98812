"""The log line a BIP session end writes (issue 17 wants one per session; a 20,000-device fleet writes
40,000 of them and 20,000 write outcomes), through the handler `esimota serve` installs.

Run: .venv/bin/python -m pytest benchmarks/bench_log.py --benchmark-only

`queued`: what the worker's event loop pays per line (format, queue; the writer thread writes).
`plain`: the same record through logging's own StreamHandler and the same formatter, for the ratio.
Both write into a pipe that a thread of this process drains 4 KiB at a time, as a supervisor reading a
worker's stderr would.
"""

from __future__ import annotations

import io
import logging
import os
import threading

import pytest

from esimota import log

FIELDS = {"eid": "89086001202200000000000000001234", "task": "T202612020000012345", "duration_s": 1.234,
          "frames": 9, "bytes": 1200, "close_reason": "done", "acked": 4, "apdus": 4}


@pytest.fixture(params=["queued", "plain"])
def logger(request):
    r, w = os.pipe()
    sink = os.fdopen(w, "w", encoding="utf-8")
    source = os.fdopen(r, "rb", buffering=0)
    drain = threading.Thread(target=lambda: [None for _ in iter(lambda: source.read(4096), b"")], daemon=True)
    drain.start()
    log.setup("INFO", stream=sink)
    root = logging.getLogger()
    if request.param == "plain":
        for h in list(root.handlers):
            if getattr(h, "_esimota", False):
                root.removeHandler(h)
                h.close()
        plain = logging.StreamHandler(sink)
        plain.setFormatter(log.JsonFormatter())
        root.addHandler(plain)
    yield logging.getLogger("esimota.bip")
    log.setup("INFO", stream=io.StringIO())
    for h in list(root.handlers):
        if not getattr(h, "_esimota", False) and isinstance(h, logging.StreamHandler) and h.stream is sink:
            root.removeHandler(h)
    sink.close()
    drain.join(10)


def test_session_end_line(benchmark, logger):
    benchmark(logger.info, "bip session end", extra=FIELDS)
