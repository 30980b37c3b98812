"""Compiled core and pure twin agree on random and mutated inputs: results, errors and offsets."""

from __future__ import annotations

import os
import random
from collections.abc import Mapping

import pytest

from esimota.errors import CodecError

from .conftest import implementation
from .corpus import decoders, mutate, seeds

pytestmark = pytest.mark.pure_twin
#: inputs in the default run (≈100k over all decoder families); ESIMOTA_DIFF_N overrides
TOTAL = int(os.environ.get("ESIMOTA_DIFF_N", "100000"))


def _shape(x):
    """Results with their types and key order (1 != True, {"a", "b"} != {"b", "a"} here)."""
    if isinstance(x, Mapping):
        return type(x).__name__, [(k, _shape(v)) for k, v in x.items()]
    if isinstance(x, (list, tuple)):
        return type(x).__name__, [_shape(v) for v in x]
    return type(x).__name__, x


def _outcome(fn, data):
    try:
        return "ok", _shape(fn(data))
    except CodecError as exc:  # anything else is a crash and fails the test
        return "error", (type(exc).__name__, exc.detail, exc.offset, exc.tag)


def _inputs(rng, family_seeds, n):
    for i in range(n):
        if i % 5 == 0:
            yield bytes(rng.randrange(256) for _ in range(rng.randint(0, 40)))
        else:
            yield mutate(rng, rng.choice(family_seeds))


@pytest.mark.timeout(600)
@pytest.mark.parametrize("family", sorted(seeds()))
def test_compiled_and_pure_agree(family):
    pure, compiled = decoders(implementation("pure"))[family], decoders(implementation("compiled"))[family]
    rng = random.Random(f"diff-{family}")
    per_family = TOTAL // len(seeds())
    errors = 0
    for data in _inputs(rng, seeds()[family], per_family):
        for p, c in zip(pure, compiled):
            a, b = _outcome(p, data), _outcome(c, data)
            assert a == b, f"{family} differs on {data.hex()}: pure {a} compiled {b}"
            errors += a[0] == "error"
    assert 0 < errors < per_family * len(pure)  # the mutator reaches both outcomes
