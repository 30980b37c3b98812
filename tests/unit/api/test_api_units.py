"""Unit tests of the API's pure parts: tokens (§7.2.1, R17), limits, signatures (§7.3), parameters, status map."""

from __future__ import annotations

import grpc
import pytest

from esimota import errors
from esimota.api import messages, status
from esimota.api.limits import RateLimiter
from esimota.api.registry import METHODS
from esimota.service import auth, callbacks
from esimota.v1 import writing_pb2

MASTER = bytes(range(32))


def test_token_round_trip_expiry_and_tampering():
    """24 h tokens (expire_time 86400) verify without a database; a changed byte or an old one is 401."""
    signer = auth.TokenSigner(MASTER)
    token, ttl = signer.issue("cabc", 42, now=1_000_000)
    assert ttl == 86400 and signer.verify(token, now=1_000_000 + 86399) == ("cabc", 42)
    with pytest.raises(errors.Unauthenticated) as err:
        signer.verify(token, now=1_000_000 + 86400)
    assert err.value.reason == "TOKEN_EXPIRED"
    for bad in (token.replace(".42.", ".43."), token[:-1] + ("A" if token[-1] != "A" else "B"), "", "v1.a.b"):
        with pytest.raises(errors.Unauthenticated):
            signer.verify(bad, now=1_000_000)
    with pytest.raises(errors.Unauthenticated):  # another platform's key
        auth.TokenSigner(bytes(32)).verify(token, now=1_000_000)


def test_rate_limiter_windows_and_headers():
    clock = [120.0]
    limiter = RateLimiter(clock=lambda: clock[0])
    assert [limiter.hit("c", 2).remaining for _ in range(2)] == [1, 0]
    with pytest.raises(errors.RateLimited) as err:
        limiter.hit("c", 2)
    assert err.value.retry_after == 60 and err.value.quota.headers()["RateLimit-Remaining"] == "0"
    clock[0] = 180.5  # the next window
    q = limiter.hit("c", 2)
    assert q.headers() == {"RateLimit-Limit": "2", "RateLimit-Remaining": "1", "RateLimit-Reset": "60",
                           "RateLimit-Policy": "2;w=60"}


def test_callback_signature_of_sorted_pairs():
    """DESIGN §6: hex HMAC-SHA256 of k=v (numbers decimal, strings as they are) sorted, joined by &."""
    import hashlib
    import hmac

    body = {"eid": "89", "card_status": 4, "status_desc": "写卡成功", "timestamp": 1700000000, "sign": "x"}
    text = "card_status=4&eid=89&status_desc=写卡成功&timestamp=1700000000"
    assert callbacks.canonical(body) == text
    want = hmac.new(b"s3cret", text.encode(), hashlib.sha256).hexdigest()
    assert callbacks.sign(body, "s3cret") == want
    signed = callbacks.signed_body({"eid": "89"}, b"k", 5)
    assert callbacks.verify(signed, "k") and not callbacks.verify(dict(signed, eid="88"), "k")


def test_callback_schedule_lasts_24_hours_then_ends():
    total = sum(callbacks.delay_after(n) for n in range(1, len(callbacks.SCHEDULE_S) + 1))
    assert total >= 24 * 3600 and callbacks.delay_after(len(callbacks.SCHEDULE_S) + 1) is None
    assert list(callbacks.SCHEDULE_S) == sorted(callbacks.SCHEDULE_S)


@pytest.mark.parametrize("params, reason", [
    ({"write_type": "x"}, "PARAM_INVALID"), ({"write_type": "99999999999"}, "PARAM_INVALID"),
    ({"write_type": True}, "PARAM_INVALID"), ({"eid": "a\x00b"}, "PARAM_INVALID"),
    ({"eid": "9" * 600}, "PARAM_INVALID"), ({"eid": {"a": 1}}, "PARAM_INVALID"), ({"write_type": "²"}, "PARAM_INVALID"),
])
def test_bad_parameters_are_400(params, reason):
    with pytest.raises(errors.InvalidArgument) as err:
        messages.from_params(writing_pb2.ApplyWriteRequest, params)
    assert err.value.reason == reason and status.outcome(err.value).http == 400


def test_parameters_and_nulls():
    msg = messages.from_params(writing_pb2.ApplyWriteRequest, {"eid": 89, "write_type": "1", "x": "ignored"})
    assert (msg.eid, msg.write_type) == ("89", 1)
    assert not messages.from_params(writing_pb2.ApplyWriteRequest, {}).HasField("write_type")
    d = messages.to_dict(writing_pb2.GetWriteStatusResponse(eid="e", progress=5))
    assert d == {"eid": "e", "task_id": "", "card_status": 0, "status_desc": "", "progress": 5, "write_time": None}


@pytest.mark.parametrize("exc, http, code", [
    (errors.InvalidArgument("x"), 400, grpc.StatusCode.INVALID_ARGUMENT),
    (errors.Unauthenticated("x"), 401, grpc.StatusCode.UNAUTHENTICATED),
    (errors.PermissionDenied("x"), 403, grpc.StatusCode.PERMISSION_DENIED),
    (errors.NotFound("x"), 404, grpc.StatusCode.NOT_FOUND),
    (errors.Conflict("x"), 409, grpc.StatusCode.ABORTED),
    (errors.RateLimited("x"), 429, grpc.StatusCode.RESOURCE_EXHAUSTED),
    (errors.Unavailable("x"), 503, grpc.StatusCode.UNAVAILABLE),
    (ConnectionRefusedError(), 503, grpc.StatusCode.UNAVAILABLE),
    (KeyError("secret"), 500, grpc.StatusCode.INTERNAL),
])
def test_one_status_map(exc, http, code):
    """DESIGN §6 mapping; an unexpected error says nothing of itself (no traceback, no secret)."""
    o = status.outcome(exc)
    assert (o.http, o.grpc) == (http, code)
    env = status.error_envelope(o)
    assert env["code"] == http and set(env) == {"code", "message", "error"} and "secret" not in env["message"]


def test_every_route_of_design_6_is_annotated_get_and_post():
    routes = {path: m.name for m in METHODS for verb, path in m.routes if verb == "GET"}
    assert routes == {
        "/api/v1/auth/token": "GetToken", "/api/v1/write/provinces": "ListProvinces",
        "/api/v1/write/apply": "ApplyWrite", "/api/v1/write/status": "GetWriteStatus",
        "/api/v1/write/cancel": "CancelWrite", "/api/v1/chip/info": "GetChip", "/api/v1/number/info": "GetNumber",
        "/api/v1/number/usage": "GetUsage", "/api/v1/number/open-status": "GetOpenStatus",
        "/api/v1/number/location": "GetLocation", "/api/v1/write/records": "GetWriteRecords",
        "/api/v1/write/tasks": "ListWriteTasks"}
    assert all(("POST", p) in m.routes for m in METHODS for v, p in m.routes)
    # the batch apply takes a JSON body: POST only (DESIGN §6 table)
    assert [m.routes for m in METHODS if m.name == "ApplyWriteBatch"] == [(("POST", "/api/v1/write/apply-batch"),)]
