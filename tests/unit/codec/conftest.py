"""Fixtures of the codec tests: one test body, both implementations (STYLE 5)."""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import pytest

MODULES = ("tlv", "script", "packet", "frames", "cat")
TWINS = {"pure": "esimota.codec._{}_py", "compiled": "esimota._ext.{}"}
VECTORS = Path(__file__).resolve().parents[2] / "vectors" / "pysim.json"


def implementation(kind: str) -> SimpleNamespace:
    """The five codec modules of one implementation, by name."""
    return SimpleNamespace(**{m: importlib.import_module(TWINS[kind].format(m)) for m in MODULES})


@pytest.fixture(params=["pure", "compiled"])
def codec(request) -> SimpleNamespace:
    return implementation(request.param)


def vectors(*kinds: str) -> list[dict]:
    """The carried pySim vectors of the given kinds."""
    data = json.loads(VECTORS.read_text())["vectors"]
    return [v for v in data if v["kind"] in kinds]


def vector_id(v: dict) -> str:
    return f"{v['kind']}:{v['source'].split(':', 1)[-1]}:{v['hex'][:12]}"
