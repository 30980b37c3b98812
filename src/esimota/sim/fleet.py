"""Fleets of simulated devices over several processes and loopback source addresses (DESIGN §8).

A process may hold at most 20,000 file descriptors here, and one source address gives ~28,000
ephemeral ports towards one destination, so a fleet spreads its devices over `procs` processes and
over 127.0.0.2…127.0.0.N as source addresses.
"""

from __future__ import annotations

import asyncio
import multiprocessing as mp
import os
import resource
import time
from dataclasses import dataclass

from .device import Device, DeviceSpec, Outcome


@dataclass
class FleetOptions:
    host: str = "127.0.0.1"
    port: int = 7700
    procs: int = 2
    concurrency: int = 2000          # devices in flight at once, over all processes
    ramp_per_s: float = 0.0          # power-ons per second over all processes; 0 = as fast as possible
    sources: int = 8                 # loopback source addresses 127.0.0.2 …
    frame_timeout: float = 60.0
    ports: tuple[int, ...] = ()      # several nodes' BIP ports: the devices are spread over them (else `port`)


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


async def _run_slice(specs: list[DeviceSpec], opt: FleetOptions, index: int) -> list[Outcome]:
    per_proc = max(1, opt.concurrency // max(1, opt.procs))
    sem = asyncio.Semaphore(per_proc)
    rate = opt.ramp_per_s / max(1, opt.procs) if opt.ramp_per_s else 0.0
    t0 = time.monotonic()

    async def one(i: int, spec: DeviceSpec) -> Outcome:
        if rate:
            delay = i / rate - (time.monotonic() - t0)
            if delay > 0:
                await asyncio.sleep(delay)
        async with sem:
            k = i * max(1, opt.procs) + index  # the device's place in the whole fleet
            source = f"127.0.0.{2 + k % max(1, opt.sources)}" if opt.sources else None
            port = opt.ports[k % len(opt.ports)] if opt.ports else opt.port
            return await Device(spec, opt.host, port, source=source, frame_timeout=opt.frame_timeout).run()

    return await asyncio.gather(*(one(i, s) for i, s in enumerate(specs)))


def _proc_main(specs, opt, index, queue) -> None:
    _raise_nofile()
    try:
        import uvloop  # noqa: F401  (optional: faster loop when installed)
        runner = uvloop.run  # type: ignore[attr-defined]
    except ImportError:
        runner = asyncio.run
    outcomes = runner(_run_slice(specs, opt, index))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    queue.put((index, outcomes, peak))


def run_fleet(specs: list[DeviceSpec], opt: FleetOptions) -> tuple[list[Outcome], float, list[int]]:
    """Power every device on; returns (outcomes, seconds, peak RSS MB per fleet process)."""
    if opt.procs <= 1:
        _raise_nofile()
        t0 = time.perf_counter()
        outcomes = asyncio.run(_run_slice(specs, opt, 0))
        return outcomes, time.perf_counter() - t0, [resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024]
    ctx = mp.get_context("fork")
    queue = ctx.Queue()
    slices = [specs[i::opt.procs] for i in range(opt.procs)]
    t0 = time.perf_counter()
    procs = [ctx.Process(target=_proc_main, args=(sl, opt, i, queue), daemon=True) for i, sl in enumerate(slices)]
    for p in procs:
        p.start()
    results = [queue.get() for _ in procs]
    seconds = time.perf_counter() - t0
    for p in procs:
        p.join(10)
    results.sort(key=lambda r: r[0])
    return [o for r in results for o in r[1]], seconds, [r[2] for r in results]


def summarise(outcomes: list[Outcome], seconds: float) -> dict:
    """Counts and latency percentiles of a fleet run (milliseconds)."""
    ok = [o for o in outcomes if o.ok]
    lat = sorted(o.seconds for o in ok)

    def pct(p: float) -> float:
        return round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else 0.0

    reasons: dict = {}
    for o in outcomes:
        if not o.ok:
            key = o.error.split(":")[0] if o.error else f"close_{o.close_reason}_report_{o.report_result}"
            reasons[key] = reasons.get(key, 0) + 1
    return {"devices": len(outcomes), "succeeded": len(ok), "failed": len(outcomes) - len(ok),
            "seconds": round(seconds, 2), "writes_per_s": round(len(ok) / seconds, 1) if seconds else 0.0,
            "p50_ms": pct(0.50), "p99_ms": pct(0.99), "failures": reasons}


def cpu_count() -> int:
    return os.cpu_count() or 1
