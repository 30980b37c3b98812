"""No module registers itself into another module's global at import (issue 19): server.py and
cli/__init__.py build and import what runs, in plain code."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def _watch(package: str, path: Path | None = None) -> list[dict]:
    """Import every module of `package` in a fresh interpreter; the other-module globals each changed."""
    argv = [sys.executable, "-m", "tests.support.import_watch", package] + ([str(path)] if path else [])
    out = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_no_module_under_src_registers_itself_into_another():
    assert _watch("esimota") == []


def test_the_watch_sees_every_kind_of_registration(tmp_path):
    """The check above can fail: append, item assignment and setattr into another module are each
    reported, also into a module first loaded inside the registering import; reading one, a module's
    own globals and the import system's pkg.sub binding are not."""
    files = {
        "__init__.py": "",
        "hub.py": "JOBS = []\nTABLE = {}\nFACTORY = None\nCOUNT = 0\n",
        "a_append.py": "from . import hub\nhub.JOBS.append(print)\n",
        "b_item.py": "from .hub import TABLE\nTABLE['b'] = 1\n",
        "c_setattr.py": "from . import hub\nhub.FACTORY = object\n",
        "d_reader.py": "from . import hub\nSEEN = len(hub.JOBS) + len(hub.TABLE)\nOWN = []\nOWN.append(1)\n",
        "sub/__init__.py": "from . import leaf\n",
        "sub/leaf.py": "X = 1\n",
    }
    for name, text in files.items():
        (tmp_path / "regdemo" / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / "regdemo" / name).write_text(textwrap.dedent(text))
    found = _watch("regdemo", tmp_path)
    assert sorted((f["importing"], f["changed"], f["name"]) for f in found) == [
        ("regdemo.a_append", "regdemo.hub", "JOBS"),
        ("regdemo.b_item", "regdemo.hub", "TABLE"),
        ("regdemo.c_setattr", "regdemo.hub", "FACTORY"),
    ]
