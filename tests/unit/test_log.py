"""JSON-lines logging never writes a secret (Ki, OPc, keys, client secrets, tokens, DB passwords)."""

import io
import json
import logging

from esimota import log


def _emit(*args, **extra) -> dict:
    buf = io.StringIO()
    log.setup("DEBUG", stream=buf)
    logging.getLogger("esimota.test").info(*args, extra=extra)
    log.flush()
    line = buf.getvalue().strip().splitlines()[-1]
    return json.loads(line)


def test_one_json_object_per_line_with_fields():
    rec = _emit("chip %s imported", "89860000000000000000000000000001", batch="B1")
    assert rec["msg"] == "chip 89860000000000000000000000000001 imported"
    assert rec["batch"] == "B1" and rec["level"] == "info" and rec["logger"] == "esimota.test"


def test_secret_fields_are_redacted():
    ki = "000102030405060708090a0b0c0d0e0f"
    rec = _emit("number loaded", ki=ki, opc=ki, client_secret="s3cr3t", nested={"master_key": ki, "iccid": "8986"})
    text = json.dumps(rec)
    assert ki not in text and "s3cr3t" not in text
    assert rec["ki"] == "***" and rec["nested"]["master_key"] == "***" and rec["nested"]["iccid"] == "8986"


def test_secrets_inside_messages_are_redacted():
    rec = _emit("connect postgresql://esimota:hunter2@127.0.0.1:5432/x with token=abc.def and Bearer xyz123 ki=00ff")
    assert "hunter2" not in rec["msg"] and "abc.def" not in rec["msg"] and "xyz123" not in rec["msg"]
    assert "00ff" not in rec["msg"]
    assert "postgresql://esimota:***@127.0.0.1:5432/x" in rec["msg"]


def test_bytes_are_never_dumped():
    rec = _emit("frame", payload=b"\x01\x02\x03secret")
    assert rec["payload"] == "<9 bytes>"


def test_the_request_id_of_the_call_is_on_every_line_written_meanwhile():
    """Issue 17: the id set by the HTTP middleware / gRPC interceptor goes on each line of the call."""
    assert "request_id" not in _emit("outside any call")
    token = log.REQUEST_ID.set("partner-7f3a-0001")
    try:
        assert _emit("inside a call")["request_id"] == "partner-7f3a-0001"
    finally:
        log.REQUEST_ID.reset(token)


def test_start_up_database_line_has_no_password():
    url = "postgresql://esimota:uRbtACcF0_K08@127.0.0.1:5432/esimota"
    rec = _emit("database ready", database=log.redact_text(url))
    assert "uRbtACcF0_K08" not in json.dumps(rec) and rec["database"].startswith("postgresql://esimota:***@")
    rec = _emit("database ready", database=url)  # even if a caller forgot to redact it
    assert "uRbtACcF0_K08" not in json.dumps(rec)


# -- the writer thread: a slow reader of stderr never stalls the caller (fleet: 40,000 session lines) --------

def _lines(text: str) -> list[dict]:
    return [json.loads(ln) for ln in text.splitlines()]


def test_lines_keep_their_order_and_a_warning_is_written_at_once():
    buf = io.StringIO()
    log.setup("INFO", stream=buf)
    lg = logging.getLogger("esimota.test")
    for i in range(50):
        lg.info("step", extra={"i": i})
    lg.warning("something to see", extra={"i": 50})
    # no flush: the warning went out with everything queued before it, in order
    assert [r["i"] for r in _lines(buf.getvalue())] == list(range(51))
    lg.info("after", extra={"i": 51})
    log.flush()
    assert [r["i"] for r in _lines(buf.getvalue())] == list(range(52))


def test_a_reader_that_does_not_read_does_not_block_the_caller():
    """A pipe nobody reads holds 64 KiB: 600 KB of INFO lines are queued, not written by the caller, and all
    arrive, in order, once the reader reads."""
    import os
    import threading

    r, w = os.pipe()
    stream = os.fdopen(w, "w", encoding="utf-8")
    log.setup("INFO", stream=stream)
    lg = logging.getLogger("esimota.test")
    done = threading.Event()

    def produce():
        for i in range(2000):
            lg.info("bip session end", extra={"i": i, "pad": "x" * 250})
        done.set()

    t = threading.Thread(target=produce, daemon=True)
    t.start()
    assert done.wait(60), "the caller was blocked by the unread pipe"
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(os.fdopen(r, "rb").read()), daemon=True)
    reader.start()
    log.flush()
    log.setup("INFO", stream=io.StringIO())  # closes the pipe's handler (everything written)
    stream.close()
    reader.join(60)
    assert [x["i"] for x in _lines(got[0].decode())] == list(range(2000))
