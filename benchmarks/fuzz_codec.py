"""Mutation fuzzer for the compiled codec decoders: counts inputs, crashes, the slowest input.

Usage: .venv/bin/python benchmarks/fuzz_codec.py [--count 1000000] [--seed 1] [--workers 2]
A crash is any exception other than esimota.errors.CodecError; a hang is an input slower than
--max-ms. Each worker process runs its share; a hard crash (signal) of a worker is reported too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from tests.unit.codec.conftest import implementation  # noqa: E402
from tests.unit.codec.corpus import decoders, mutate, seeds  # noqa: E402

from esimota.errors import CodecError  # noqa: E402


def _work(job):
    """Fuzz `count` inputs with one seed: (inputs, decoder calls, crashes, slowest seconds, its hex)."""
    seed, count = job
    rng = random.Random(seed)
    families = decoders(implementation("compiled"))
    corpus = seeds()
    names = sorted(corpus)
    crashes, calls, slowest, slow_input = [], 0, 0.0, ""
    for i in range(count):
        family = names[i % len(names)]
        data = mutate(rng, rng.choice(corpus[family])) if i % 8 else rng.randbytes(rng.randint(0, 64))
        for fn in families[family]:
            t0 = time.perf_counter()
            try:
                fn(data)
            except CodecError:
                pass
            except Exception as exc:  # noqa: BLE001 - that is what a fuzzer looks for
                crashes.append(f"{family}: {type(exc).__name__}: {exc} on {data.hex()}")
            elapsed = time.perf_counter() - t0
            calls += 1
            if elapsed > slowest:
                slowest, slow_input = elapsed, f"{family}:{data.hex()[:80]}"
    return count, calls, crashes[:20], slowest, slow_input


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--count", type=int, default=1_000_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--max-ms", type=float, default=50.0)
    args = ap.parse_args(argv)
    chunks = 50
    jobs = [(args.seed * 1000 + i, args.count // chunks + (i < args.count % chunks)) for i in range(chunks)]
    t0 = time.perf_counter()
    with multiprocessing.Pool(args.workers) as pool:
        results = pool.map(_work, jobs)
    total = sum(r[0] for r in results)
    calls = sum(r[1] for r in results)
    crashes = [c for r in results for c in r[2]]
    slowest, slow_input = max((r[3], r[4]) for r in results)
    print(f"inputs {total}  decoder calls {calls}  crashes {len(crashes)}  "
          f"max time per call {slowest * 1e3:.3f} ms ({slow_input})  wall {time.perf_counter() - t0:.1f} s")
    for c in crashes[:20]:
        print("CRASH", c)
    return 1 if crashes or slowest * 1e3 > args.max_ms else 0


if __name__ == "__main__":
    sys.exit(main())
