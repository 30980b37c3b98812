"""R17 (issue 14): a client's WatchWriteStatus streams are capped over every worker and node of the platform.

Served platforms (`esimota serve`) over real sockets: each stream opens on a gRPC channel of its own (its own
TCP connection, which the kernel hands to one worker through SO_REUSEPORT); the places table tells which
worker took each place, and a second stream on a channel that already carries one reaches the same worker.
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from dataclasses import dataclass

import grpc
import pytest

from esimota.sim import fleetdata
from esimota.v1 import auth_pb2, auth_pb2_grpc, writing_pb2, writing_pb2_grpc
from tests.support.bip import apply_all
from tests.support.platform import serve

CAP = 3
ENV = {"ESIMOTA_WATCH_STREAMS": str(CAP), "ESIMOTA_WATCH_PLACE_TTL": "4"}
LIVE = "SELECT place, node, worker, holder FROM stream_places WHERE expires_at > now() ORDER BY place"


@dataclass
class Stream:
    channel: grpc.aio.Channel
    call: object
    node: str
    worker: int
    holder: object


class Partner:
    """The fleet's client watching its one applied card (待写卡: a watch of it does not end on its own)."""

    def __init__(self, pool, fleet, token: str) -> None:
        self.pool, self.eid = pool, fleet.devices[0].eid
        self.md = (("authorization", f"Bearer {token}"),)
        self.channels: list[grpc.aio.Channel] = []

    def channel(self, port: int) -> grpc.aio.Channel:
        """A connection of its own (not one shared with other channels), closed by `close`."""
        ch = _channel(port)
        self.channels.append(ch)
        return ch

    async def close(self) -> None:
        for ch in self.channels:
            await ch.close()

    def watch(self, channel: grpc.aio.Channel):
        return writing_pb2_grpc.WritingServiceStub(channel).WatchWriteStatus(
            writing_pb2.GetWriteStatusRequest(eid=self.eid), metadata=self.md)

    async def open(self, port: int, channel: grpc.aio.Channel | None = None) -> Stream:
        """A stream on a new connection to `port` (or on `channel`): its first answer read, and the place
        it took (taken before the first answer is sent)."""
        before = {r["place"] for r in await self.pool.fetch(LIVE)}
        ch = channel or self.channel(port)
        call = self.watch(ch)
        assert (await call.read()).card_status == 2
        new = [r for r in await self.pool.fetch(LIVE) if r["place"] not in before]
        assert len(new) == 1, new
        return Stream(ch, call, new[0]["node"], new[0]["worker"], new[0]["holder"])

    async def refused(self, channel: grpc.aio.Channel) -> None:
        with pytest.raises(grpc.aio.AioRpcError) as err:
            await self.watch(channel).read()
        assert err.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert dict(err.value.trailing_metadata())["esimota-reason"] == "TOO_MANY_STREAMS"

    async def until_live(self, want: int, limit: float = 60.0) -> None:
        deadline = time.monotonic() + limit
        while len(await self.pool.fetch(LIVE)) != want:
            assert time.monotonic() < deadline, f"never {want} live places"
            await asyncio.sleep(0.1)


async def _fleet(pool):
    """Made before the platform starts, so that every node's client cache knows the client from the start."""
    fleet = await fleetdata.generate(pool, 1)
    await apply_all(pool, fleet)
    return fleet


def _channel(port: int) -> grpc.aio.Channel:
    return grpc.aio.insecure_channel(f"127.0.0.1:{port}", options=[("grpc.use_local_subchannel_pool", 1)])


async def _partner(pool, fleet, grpc_port: int) -> Partner:
    async with _channel(grpc_port) as ch:
        got = await auth_pb2_grpc.AuthServiceStub(ch).GetToken(
            auth_pb2.GetTokenRequest(client_id=fleet.client_id, client_secret=fleet.client_secret))
    return Partner(pool, fleet, got.token)


def _close(stream: Stream) -> None:
    stream.call.cancel()  # the stream alone: its channel may carry others


async def _spread(partner: Partner, port: int, streams: list[Stream] | None = None) -> list[Stream]:
    """`streams` filled up to CAP on new connections, until both workers hold some: a new connection lands
    on a worker the kernel picks, so while all are on one worker the last is closed (its place goes back)
    and another connection tried."""
    streams = streams or []
    for _ in range(60):
        while len(streams) < CAP:
            streams.append(await partner.open(port))
        if {s.worker for s in streams} == {0, 1}:
            return streams
        _close(streams.pop())
        await partner.until_live(CAP - 1)
    raise AssertionError("60 connections and never a second worker")


async def _burst(partner: Partner, port: int) -> None:
    """2 × CAP streams opened at once on as many connections (both workers take places concurrently):
    exactly CAP are served, the others refused; all closed again."""
    channels = [partner.channel(port) for _ in range(2 * CAP)]

    async def attempt(ch):
        call = partner.watch(ch)
        try:
            return (await call.read()).card_status
        except grpc.aio.AioRpcError as exc:
            return dict(exc.trailing_metadata()).get("esimota-reason")
    got = await asyncio.gather(*(attempt(ch) for ch in channels))
    assert sorted(got, key=str) == [2] * CAP + ["TOO_MANY_STREAMS"] * CAP
    for ch in channels:
        await ch.close()
        partner.channels.remove(ch)
    await partner.until_live(0)


def _pid_of(served, worker: int) -> int:
    return [ln["pid"] for ln in served.lines if ln.get("msg") == "worker ready" and ln.get("worker") == worker][-1]


@pytest.mark.timeout(240)
async def test_the_cap_counts_streams_on_every_worker(tmp_path, pool, db_url):
    """R17 with `serve --workers 2`: of 2 × CAP streams opened at once, CAP are served; CAP streams spread
    over both workers all succeed and one more is refused RESOURCE_EXHAUSTED on either worker; closing one
    on one worker lets the other open one; the places of a worker killed with SIGKILL come back once they
    expire (ESIMOTA_WATCH_PLACE_TTL: nothing renews them), and the worker the supervisor starts again
    counts against the same cap."""
    fleet = await _fleet(pool)
    served = serve(tmp_path / "home", db_url, workers=2, tls=False, extra_env=ENV)
    partner = None
    try:
        partner = await _partner(pool, fleet, served.grpc_port)
        await _burst(partner, served.grpc_port)
        streams = await _spread(partner, served.grpc_port)
        on = {w: next(s for s in streams if s.worker == w) for w in (0, 1)}
        for w in (0, 1):  # one more, on a connection that reaches worker w
            await partner.refused(on[w].channel)

        many = max((0, 1), key=lambda w: sum(s.worker == w for s in streams))  # holds 2 of the 3
        few = 1 - many
        _close(on[many])
        streams.remove(on[many])
        await partner.until_live(CAP - 1)
        streams.append(await partner.open(served.grpc_port, on[few].channel))  # the place, taken on the other
        assert streams[-1].worker == few
        await partner.refused(on[few].channel)

        victim = next(s for s in streams if s.worker == few)  # now 2 places on `few`, 1 on `many`
        dead = {s.holder for s in streams if s.worker == few}
        os.kill(_pid_of(served, few), signal.SIGKILL)
        survivor = next(s for s in streams if s.worker == many)
        deadline = time.monotonic() + 60
        while [r for r in await pool.fetch(LIVE) if r["holder"] in dead]:  # nothing renews them any more
            assert time.monotonic() < deadline, "the killed worker's places never expired"
            await asyncio.sleep(0.2)
        with pytest.raises(grpc.aio.AioRpcError):
            await victim.call.read()  # its connection died with its worker
        streams = [s for s in streams if s.worker == many]
        while len(streams) < CAP:  # their places, taken on the surviving worker
            streams.append(await partner.open(served.grpc_port, survivor.channel))
        await partner.refused(survivor.channel)

        deadline = time.monotonic() + 60  # the supervisor starts the worker again: its places count alike
        while len(served.pids) < 3:
            assert time.monotonic() < deadline and served.proc.poll() is None, served.lines[-5:]
            await asyncio.sleep(0.1)
        streams = await _spread(partner, served.grpc_port, streams)
        assert len(await pool.fetch(LIVE)) == CAP
        reborn = next(s for s in streams if s.worker == few)
        assert reborn.holder not in dead
        for s in (reborn, survivor):
            await partner.refused(s.channel)
    finally:
        if partner is not None:
            await partner.close()
        code, _ = served.stop(signal.SIGTERM, timeout=30)
    assert code == 0


@pytest.mark.timeout(240)
async def test_two_nodes_over_one_database_share_the_cap(tmp_path, pool, db_url):
    """R17, issue 18: two `serve` processes (ESIMOTA_NODE_ID node-a and node-b) over one database: CAP
    streams over both nodes, one more refused on either, and a place closed on one node opens on the other;
    a node drained with SIGTERM gives its places back at once, not when they expire."""
    fleet = await _fleet(pool)
    a = serve(tmp_path / "a", db_url, tls=False, extra_env=dict(ENV, ESIMOTA_NODE_ID="node-a",
                                                                 ESIMOTA_WATCH_PLACE_TTL="600"))
    b = partner = None
    try:
        b = serve(tmp_path / "b", db_url, tls=False, extra_env=dict(ENV, ESIMOTA_NODE_ID="node-b",
                                                                     ESIMOTA_WATCH_PLACE_TTL="600"))
        partner = await _partner(pool, fleet, a.grpc_port)
        streams = [await partner.open(a.grpc_port), await partner.open(a.grpc_port), await partner.open(b.grpc_port)]
        assert [s.node for s in streams] == ["node-a", "node-a", "node-b"]
        await partner.refused(streams[0].channel)
        await partner.refused(streams[2].channel)

        _close(streams.pop(0))
        await partner.until_live(CAP - 1)
        streams.append(await partner.open(b.grpc_port, streams[-1].channel))
        assert sorted(s.node for s in streams) == ["node-a", "node-b", "node-b"]
        await partner.refused(streams[0].channel)

        code, _ = a.stop(signal.SIGTERM, timeout=30)  # its stream ends; its place goes back on the way out
        assert code == 0
        await partner.until_live(CAP - 1, limit=30)  # far sooner than the 600 s a place lives unrenewed
        streams.append(await partner.open(b.grpc_port, streams[-1].channel))
        assert [s.node for s in streams[1:]] == ["node-b"] * CAP
    finally:
        if partner is not None:
            await partner.close()
        a.stop(signal.SIGKILL)
        if b is not None:
            b.stop(signal.SIGTERM, timeout=30)
