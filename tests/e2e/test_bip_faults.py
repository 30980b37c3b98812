"""The BIP write over a faulty network (§5.4.4), through the TCP fault-injection proxy: cuts inside a
frame, stalled channels, slow links."""

from __future__ import annotations

import asyncio

import pytest

from esimota.codec import bcp
from esimota.sim import fleetdata
from esimota.sim.device import Device
from tests.support.bip import apply_all, worker
from tests.support.faultproxy import FaultProxy, Faults

pytestmark = pytest.mark.pure_twin  # the multiplexer runs compiled, and as its twin in the ESIMOTA_PURE=1 leg


@pytest.fixture
async def platform(db_url):
    async with worker(db_url) as p:
        yield p


async def _no_channel_left(driver) -> bool:
    for _ in range(200):  # the worker's side of the last cut runs on this loop too
        if not driver.transports and not driver.mux.channels:
            return True
        await asyncio.sleep(0.01)
    return False


# the first channel of a write (buffer 160) carries about 520 bytes down and 360 up
@pytest.mark.parametrize("direction,cut", [("down", 1), ("down", 2), ("down", 3), ("down", 7), ("down", 150),
                                           ("down", 400), ("up", 1), ("up", 40), ("up", 200)])
async def test_a_channel_cut_inside_a_frame_resumes_and_completes(pool, platform, direction, cut):
    """§5.4.4: the network ends the first channel after `cut` bytes from the platform (down) or the
    card (up) — inside the length, the type or the body of a frame — and the card's next channel
    completes the write."""
    fleet = await fleetdata.generate(pool, 1, buffer_size=160)
    await apply_all(pool, fleet)
    faults = Faults(cut_first=1, **{f"cut_{direction}_after": cut})
    async with FaultProxy("127.0.0.1", platform.ports["bip"], faults) as proxy:
        out = await Device(fleet.devices[0], "127.0.0.1", proxy.port).run()
    assert proxy.cuts == 1 and proxy.accepted >= 2
    assert out.ok and out.report_result == bcp.REPORT_SUCCESS and out.close_reason == bcp.CLOSE_DONE, out
    assert await pool.fetchval("SELECT state FROM chips WHERE eid = $1", fleet.devices[0].eid) == 4
    assert await _no_channel_left(platform.bip_driver)


async def test_a_stalled_channel_does_not_hold_up_other_cards(pool, platform):
    """A card whose network stalls after connecting holds nothing another card waits on; once its
    network moves again (slowly), its own write completes too."""
    fleet = await fleetdata.generate(pool, 2, buffer_size=160)
    await apply_all(pool, fleet)
    async with FaultProxy("127.0.0.1", platform.ports["bip"], Faults(delay=0.002)) as proxy:
        proxy.pause()
        stalled = asyncio.create_task(Device(fleet.devices[0], "127.0.0.1", proxy.port).run())
        while not proxy.links:  # connected through the proxy, its HELLO held there
            await asyncio.sleep(0.01)
        other = await Device(fleet.devices[1], "127.0.0.1", platform.ports["bip"]).run()
        assert other.ok, other
        assert not stalled.done()
        proxy.resume()
        out = await stalled
    assert out.ok and out.report_result == bcp.REPORT_SUCCESS, out
    states = await pool.fetch("SELECT state FROM chips ORDER BY eid")
    assert [r["state"] for r in states] == [4, 4]
