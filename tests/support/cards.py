"""Cards written through the one write path: the simulator (esimota.sim) over real sockets to the BIP endpoint
that production runs (api.bip.driver + api.bip.endpoint in front of service.bip.ChannelService). No second path:
a test that needs a card in 写卡中 or 写卡成功 gets it the way a card gets there (DESIGN §5.4)."""

from __future__ import annotations

import contextlib

from esimota.codec import keys as codec_keys
from esimota.api.bip import driver as bip_driver
from esimota.service.bip import ChannelService
from esimota.sim.device import Device, DeviceSpec, Faults, Outcome


@contextlib.asynccontextmanager
async def endpoint(pool):
    """The BIP endpoint of one worker on a free loopback port; yields the port."""
    server, driver = await bip_driver.start("127.0.0.1", 0, ChannelService(pool))
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await driver.stop()


async def spec_for(pool, eid: str, master_key: bytes, **options) -> DeviceSpec:
    """The device of an imported chip: keys derived from its batch master key as the chip holds them (§5.2)."""
    temp_iccid = await pool.fetchval("SELECT temp_iccid FROM chips WHERE eid = $1", eid)
    kic, kid, dek = codec_keys.derive_keys(master_key, bytes.fromhex(eid))
    return DeviceSpec(eid, temp_iccid, None, kic, kid, dek, **options)


async def write(spec: DeviceSpec, port: int, **faults) -> Outcome:
    """Power the card on and let it run to its end (success, or the failure its faults make)."""
    spec.faults = Faults(**faults)
    dev = Device(spec, "127.0.0.1", port)
    out = await dev.run()
    spec.counter = dev.counter  # the card's counter goes on growing across power-ons (§5.1)
    return out


async def start_writing(spec: DeviceSpec, port: int) -> Device:
    """HELLO accepted (2 → 3) and the channel dropped after the first COMMAND: the card is left 写卡中."""
    spec.faults = Faults(drop_at_frame=1)
    dev = Device(spec, "127.0.0.1", port, max_channels=1)
    out = await dev.run()
    assert out.channels == 1 and out.frames_in == 1 and not out.ok, out
    return dev


async def finish(dev: Device) -> Outcome:
    """The same card powered on again: it resumes (§5.4 step 4), completes, refreshes and reports."""
    dev.max_channels = dev.out.channels + 20
    out = await dev.run()
    dev.spec.counter = dev.counter
    assert out.ok, out
    return out
