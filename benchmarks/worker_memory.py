"""Where a worker's memory goes under hostile BIP frames (RELIABILITY.md): RSS, glibc's and pymalloc's figures.

# python benchmarks/worker_memory.py --frames 300000        about 6 minutes on 2 vCPUs
One platform worker runs in a child process (real PostgreSQL, a database of its own, no TLS,
ESIMOTA_BIP_FIRST_TIMEOUT=3 as in the campaign); this process sends it the campaign's mutated frames
(`reliability.hostile_storm`, one per channel, 200 at a time). Every 10 s the worker prints one line:
its RSS, glibc's main arena (mallinfo2: size, bytes in use, bytes free), pymalloc's arenas
(sys._debugmallocstats), GC-tracked objects, threads, fds, and its channels and timing-wheel figures.
At the end it runs malloc_trim(0) once: what RSS gives back then was free but kept by the allocator.
Linux with glibc only.
"""

from __future__ import annotations

import argparse
import asyncio
import ctypes
import gc
import json
import os
import re
import secrets
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reliability  # noqa: E402  (the campaign's storm and databases)


class _Mallinfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                "fsmblks", "uordblks", "fordblks", "keepcost")]


def _pymalloc() -> dict:
    """Arenas held and bytes in allocated blocks, from sys._debugmallocstats (it writes to fd 2)."""
    with tempfile.TemporaryFile("w+") as f:
        saved = os.dup(2)
        os.dup2(f.fileno(), 2)
        try:
            sys._debugmallocstats()
        finally:
            os.dup2(saved, 2)
            os.close(saved)
        f.seek(0)
        text = f.read()
    out = {}
    for key, pattern in (("py_arenas", r"# arenas allocated current\s*=\s*([\d,]+)"),
                         ("py_blocks", r"# bytes in allocated blocks\s*=\s*([\d,]+)")):
        m = re.search(pattern, text)
        out[key] = int(m.group(1).replace(",", "")) if m else None
    return out


def _figures(libc, platform, tag: str = "") -> dict:
    mi = libc.mallinfo2()
    rss = next(int(ln.split()[1]) for ln in open("/proc/self/status") if ln.startswith("VmRSS"))
    d = dict(t=time.time(), tag=tag, rss_mb=rss / 1024, heap_mb=mi.arena / 2**20, used_mb=mi.uordblks / 2**20,
             free_mb=mi.fordblks / 2**20, objects=len(gc.get_objects()), threads=len(os.listdir("/proc/self/task")),
             fds=len(os.listdir("/proc/self/fd")), **_pymalloc())
    driver = getattr(platform, "bip_driver", None)
    if driver is not None:
        wheel = driver.mux.wheel
        d.update(channels=len(driver.mux.channels), deadlines=len(wheel),
                 wheel_tables_kb=sum(sys.getsizeof(s) for s in wheel.slots) // 1024)
    return d


async def _worker(port: int) -> None:
    """The child: one worker on `port`; figures every 10 s; SIGUSR1 = figures, malloc_trim(0), figures."""
    from esimota import config, server

    libc = ctypes.CDLL("libc.so.6")
    libc.mallinfo2.restype = _Mallinfo2
    s = config.Settings()
    s.tls, s.host, s.bip_host, s.http_port, s.grpc_port, s.bip_port = False, "127.0.0.1", "127.0.0.1", 0, 0, port
    s.admin_port = s.admin_http_port = 0
    p = await server.start_worker(s, 0)
    loop = asyncio.get_running_loop()
    stop, trim = asyncio.Event(), asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGUSR1, trim.set)
    print(json.dumps({"ready": True}), flush=True)
    while not stop.is_set():
        print(json.dumps(_figures(libc, p)), flush=True)
        try:
            await asyncio.wait_for(trim.wait(), 10.0)
        except asyncio.TimeoutError:
            continue
        trim.clear()
        gc.collect()
        print(json.dumps(_figures(libc, p, "before trim")), flush=True)
        t0 = time.perf_counter()
        libc.malloc_trim(0)
        print(json.dumps(dict(_figures(libc, p, "after trim"), trim_ms=(time.perf_counter() - t0) * 1000)),
              flush=True)
    await server.stop_worker(p, 2.0)


def _line(d: dict, t0: float) -> str:
    return (f"{d['t'] - t0:6.0f} s {d['tag']:11s} RSS {d['rss_mb']:6.1f} MB | glibc heap {d['heap_mb']:5.1f} used "
            f"{d['used_mb']:5.1f} free {d['free_mb']:5.1f} | pymalloc arenas {d['py_arenas']:3d} blocks "
            f"{d['py_blocks'] / 2**20:5.1f} MB | objects {d['objects']} threads {d['threads']} fds {d['fds']} | "
            f"channels {d.get('channels')} wheel tables {d.get('wheel_tables_kb')} KB"
            + (f" | trim {d['trim_ms']:.1f} ms" if "trim_ms" in d else ""))


async def _main(frames: int, seed: int) -> int:
    os.environ.setdefault("ESIMOTA_MASTER_KEY", secrets.token_hex(32))
    # under DATABASE_URL no key is generated (issue 18): scheduled exports need their signing key too
    os.environ.setdefault("ESIMOTA_EXPORT_SIGNING_KEY", secrets.token_hex(32))
    port = 20000 + secrets.randbelow(10000)  # below the ephemeral range the storm's own sockets use
    async with reliability.fresh_database(reliability.server_url()) as db:
        env = dict(os.environ, DATABASE_URL=db, ESIMOTA_BIP_FIRST_TIMEOUT="3")
        child = subprocess.Popen([sys.executable, __file__, "--worker", str(port)], env=env,
                                 stdout=subprocess.PIPE, text=True)
        lines: list = []
        try:
            if json.loads(child.stdout.readline() or "{}").get("ready") is not True:
                raise RuntimeError("the worker did not start")
            reader = asyncio.ensure_future(asyncio.to_thread(lambda: [lines.append(json.loads(ln))
                                                                      for ln in child.stdout]))
            await asyncio.sleep(2)
            t0 = time.monotonic()
            tally = await reliability.hostile_storm(port, frames, 200, 30.0, seed)
            seconds = time.monotonic() - t0
            await asyncio.sleep(5)  # the last cut channels' timeouts (3 s)
            child.send_signal(signal.SIGUSR1)
            await asyncio.sleep(3)
        finally:
            child.send_signal(signal.SIGTERM)
            child.wait(30)
        await reader
    start = lines[0]["t"]
    for d in lines:
        print(_line(d, start))
    print(json.dumps({"frames": frames, "seconds": round(seconds, 1), "answers": tally}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--frames", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        asyncio.run(_worker(args.worker))
        return 0
    return asyncio.run(_main(args.frames, args.seed))


if __name__ == "__main__":
    sys.exit(main())
