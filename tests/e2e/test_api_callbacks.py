"""§7.3 callbacks (R10, R27) to a real receiver that fails first: retries, signature, exhaustion, re-push."""

from __future__ import annotations

import time

import grpc
import pytest
from aiohttp import web

from esimota.service import callbacks
from esimota.v1 import admin_pb2, admin_pb2_grpc
from tests.support import cards
from tests.support.receiver import CALLBACK_FIELDS, LOOPBACK_RECEIVER, Receiver
from tests.support.waiting import until_query

from .test_api_harness import start, stop

async def _write(r, pool, i: int = 0) -> str:
    """Apply, power on and report success: the state change queues the callback in its transaction."""
    from esimota.service import writing
    from esimota.store import clients

    client = await clients.get(pool, r.fleet.client_id)
    eid = r.fleet.devices[i].eid
    await writing.apply_write(pool, client, writing.ApplyRequest(eid, 1, "44"))
    assert (await cards.write(r.fleet.devices[i], r.platform.ports["bip"])).ok
    return eid


async def test_retried_until_code_200_and_signed(tmp_path, monkeypatch, db_url, pool):
    """Two failed attempts then success; every attempt signed, same event_id, all recorded (R10, R27)."""
    rx = Receiver(failures=2)
    url = await rx.start()
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1, callback_url=url,
                    env={"ESIMOTA_CALLBACK_DELAY_SCALE": "0.01", **LOOPBACK_RECEIVER})
    try:
        eid = await _write(r, pool)
        await until_query(pool, "SELECT status = 'delivered' FROM callback_outbox", limit=20)
        assert len(rx.bodies) == 3
        for body in rx.bodies:
            assert set(body) == CALLBACK_FIELDS and callbacks.verify(body, r.fleet.callback_secret)
            assert abs(body["timestamp"] - time.time()) < 60
            assert not callbacks.verify(dict(body, card_status=5), r.fleet.callback_secret)
        first = rx.bodies[0]
        assert {b["event_id"] for b in rx.bodies} == {first["event_id"]}
        assert (first["eid"], first["card_status"], first["write_result"], first["status_desc"]) == \
            (eid, 4, "success", "写卡成功")
        attempts = await pool.fetch("SELECT http_status, outcome FROM callback_attempts ORDER BY id")
        assert [tuple(a) for a in attempts] == [(500, "failed"), (200, "failed"), (200, "delivered")]
    finally:
        await stop(r)
        await rx.stop()


async def test_exhausted_becomes_an_exception_and_can_be_pushed_again(tmp_path, monkeypatch, db_url, pool):
    """The schedule (≥ 24 h, shrunk here) runs out → interface exception; admin re-push, same event_id."""
    rx = Receiver(failures=10_000)
    url = await rx.start()
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1, callback_url=url,
                    env={"ESIMOTA_CALLBACK_DELAY_SCALE": "0.00005", **LOOPBACK_RECEIVER})
    try:
        assert sum(callbacks.SCHEDULE_S) >= 24 * 3600
        await _write(r, pool)
        await until_query(pool, "SELECT status = 'exhausted' FROM callback_outbox", limit=40)
        assert len(rx.bodies) == len(callbacks.SCHEDULE_S) + 1
        assert await pool.fetchval("SELECT count(*) FROM callback_attempts") == len(rx.bodies)
        kind = await pool.fetchrow("SELECT class, kind FROM exceptions WHERE kind = 'CALLBACK_FAILED'")
        assert tuple(kind) == ("interface", "CALLBACK_FAILED")
        rx.failures = 0
        event_id = rx.bodies[0]["event_id"]
        async with r.admin_channel() as ach:
            admin = admin_pb2_grpc.AdminServiceStub(ach)
            md = (("authorization", f"Bearer {r.staff_token}"),)
            info = await admin.RepushCallback(admin_pb2.RepushCallbackRequest(event_id=event_id), metadata=md)
            assert info.status == "pending"
            await until_query(pool, "SELECT status = 'delivered' FROM callback_outbox", limit=20)
            listed = await admin.ListCallbacks(admin_pb2.ListCallbacksRequest(event_id=event_id), metadata=md)
        assert rx.bodies[-1]["event_id"] == event_id and callbacks.verify(rx.bodies[-1], r.fleet.callback_secret)
        assert listed.callbacks[0].status == "delivered"
        assert len(listed.callbacks[0].history) == len(rx.bodies)
    finally:
        await stop(r)
        await rx.stop()


class Redirector(Receiver):
    """A target that answers 307 to 127.0.0.1 (the platform's own side of the network)."""

    def __init__(self, to: str) -> None:
        super().__init__(failures=0)
        self.to = to

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        raise web.HTTPTemporaryRedirect(self.to)


async def test_a_redirect_is_not_followed_and_is_a_failed_attempt(tmp_path, monkeypatch, db_url, pool):
    """DESIGN §6: redirects are never followed; the 307 is recorded as a failed attempt, without its body."""
    inside = Receiver(failures=0)
    inside_url = await inside.start()
    rx = Redirector(inside_url)
    url = await rx.start()
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1, callback_url=url,
                    env={"ESIMOTA_CALLBACK_DELAY_SCALE": "100", **LOOPBACK_RECEIVER})
    try:
        await _write(r, pool)
        await until_query(pool, "SELECT count(*) = 1 FROM callback_attempts", limit=20)
        attempt = await pool.fetchrow("SELECT http_status, outcome, detail FROM callback_attempts")
        assert tuple(attempt) == (307, "failed", "HTTP 307: redirect not followed")
        assert len(rx.bodies) == 1 and inside.bodies == []  # the signed body never reached the inside
        assert await pool.fetchval("SELECT status FROM callback_outbox") == "pending"
    finally:
        await stop(r)
        await rx.stop()
        await inside.stop()


async def _refused_attempt(tmp_path, monkeypatch, db_url, pool, host: str) -> str:
    """A write whose callback URL names the receiver by `host`: the one attempt must be recorded failed,
    refused before any request reached the receiver; returns the attempt's detail."""
    rx = Receiver(failures=0)
    url = (await rx.start()).replace("127.0.0.1", host)
    r = await start(tmp_path, monkeypatch, db_url, pool, chips=1, callback_url=url,
                    env={"ESIMOTA_CALLBACK_DELAY_SCALE": "100", "ESIMOTA_ALLOW_HTTP_CALLBACKS": "1"})
    try:
        await _write(r, pool)
        await until_query(pool, "SELECT count(*) = 1 FROM callback_attempts", limit=20)
        attempt = await pool.fetchrow("SELECT http_status, outcome, detail FROM callback_attempts")
        assert (attempt["http_status"], attempt["outcome"]) == (None, "failed")
        assert rx.bodies == []
        return attempt["detail"]
    finally:
        await stop(r)
        await rx.stop()


async def test_a_callback_to_loopback_is_refused_unless_allowed(tmp_path, monkeypatch, db_url, pool):
    """SSRF: a target resolving to 127.0.0.1 is refused at delivery, after resolution, and recorded failed;
    ESIMOTA_CALLBACK_ALLOW is what lets a chosen internal range through."""
    detail = await _refused_attempt(tmp_path, monkeypatch, db_url, pool, "localhost")  # a name: after resolution
    assert detail.startswith("refused: target ") and "internal address" in detail


async def test_a_full_width_loopback_host_is_refused_before_any_connection(tmp_path, monkeypatch, db_url, pool):
    """R25, issue 14's attack run: 'http://１２７.0.0.1:PORT/cb' is 127.0.0.1 to the HTTP client (IDNA folds
    the full-width digits) though not to urllib; the platform must not POST the signed body there."""
    detail = await _refused_attempt(tmp_path, monkeypatch, db_url, pool, "\uff11\uff12\uff17.0.0.1")
    assert detail == "refused: target 127.0.0.1 is an internal address (not in ESIMOTA_CALLBACK_ALLOW)"


async def test_an_http_callback_url_is_refused_at_creation(pool, monkeypatch):
    """R25: callback URLs are https; plain http only on a platform run with ESIMOTA_ALLOW_HTTP_CALLBACKS=1."""
    from esimota.errors import InvalidArgument
    from esimota.service import admin

    monkeypatch.delenv("ESIMOTA_ALLOW_HTTP_CALLBACKS", raising=False)
    with pytest.raises(InvalidArgument) as err:
        await admin.create_client(pool, name="P", phone="13800000001", ip="10.0.0.1",
                                  callback_url="http://partner.example/cb")
    assert err.value.reason == "CALLBACK_URL_INSECURE"
    for bad in ("ftp://partner.example/cb", "https:///cb", "partner.example/cb"):
        with pytest.raises(InvalidArgument) as err:
            await admin.create_client(pool, name="P", phone="13800000001", ip="10.0.0.1", callback_url=bad)
        assert err.value.reason == "CALLBACK_URL_INVALID"
    monkeypatch.setenv("ESIMOTA_ALLOW_HTTP_CALLBACKS", "1")
    made = await admin.create_client(pool, name="P", phone="13800000001", ip="10.0.0.1",
                                     callback_url="http://partner.example/cb")
    assert made.client.callback_url == "http://partner.example/cb"
