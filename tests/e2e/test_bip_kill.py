"""A kill -9 of the worker holding a card's channel mid-write: the card resumes on another worker
(DESIGN §5.4.4, §5.5: state in PostgreSQL, SO_REUSEPORT) and the write completes."""

import asyncio
import os
import signal
from pathlib import Path

import pytest

from esimota.sim import fleetdata
from esimota.sim.device import Device, Faults
from tests.support.bip import apply_all
from tests.support.platform import serve


def _socket_inodes_to(port: int) -> set[str]:
    """Inodes of established TCP sockets whose local port is `port` (the platform's side)."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        for line in Path(table).read_text().splitlines()[1:]:
            parts = line.split()
            if int(parts[1].split(":")[1], 16) == port and parts[3] == "01":
                inodes.add(parts[9])
    return inodes


def _holder(pids: list[int], inodes: set[str]) -> int | None:
    for pid in pids:
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                link = os.readlink(fd)
            except OSError:
                continue
            if link.startswith("socket:[") and link[8:-1] in inodes:
                return pid
    return None


@pytest.mark.timeout(180)
async def test_kill_9_of_the_channels_worker_resumes_on_another(tmp_path, pool, db_url):
    fleet = await fleetdata.generate(pool, 1, buffer_size=160, faults=lambda i: Faults(latency=0.25))
    await apply_all(pool, fleet)
    served = serve(tmp_path / "home", db_url, workers=2, tls=False)
    try:
        spec = fleet.devices[0]
        run = asyncio.create_task(Device(spec, "127.0.0.1", served.bip_port).run())
        for _ in range(200):  # wait until the script is under way
            await asyncio.sleep(0.05)
            acked = await pool.fetchval("SELECT script_acked FROM tasks")
            if acked:
                break
        assert acked, "the write never started"
        victim = _holder(served.pids, _socket_inodes_to(served.bip_port))
        assert victim is not None
        cntr_before = await pool.fetchval("SELECT cntr_reserved FROM chip_counters")
        os.kill(victim, signal.SIGKILL)
        out = await asyncio.wait_for(run, 120)
        assert out.ok and out.channels >= 3, out  # write, resumed write, report
        assert await pool.fetchval("SELECT state FROM chips") == 4
        ops = [r["operation"] for r in await pool.fetch("SELECT operation FROM task_events ORDER BY id")]
        assert ops.count("power_on") == 2 and ops[-1] == "succeed"
        # platform counters are never reused: the resumed session took a fresh block
        assert await pool.fetchval("SELECT cntr_reserved FROM chip_counters") > cntr_before
    finally:
        served.stop(signal.SIGKILL)
