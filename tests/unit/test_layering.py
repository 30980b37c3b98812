"""The layers of DESIGN §1 hold: data flows one way (adapters → service → domain/store; the ota driver → service).

An ast walk of src/esimota: every `import` and `from … import` (relative ones resolved, those inside
functions too) of each module is checked against what its layer may not import:
codec and domain import nothing above them; store imports no service, api or cli; service imports no
api or cli; the sans-IO ota core imports neither asyncio nor the layers that do I/O. And no SQL
statement is written in service/, jobs/ or api/: store/ owns them all.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from tests.support.imports import imported, module_name

SRC = Path(__file__).resolve().parents[2] / "src"
PKG = SRC / "esimota"
ABOVE_DOMAIN = ("ota", "store", "service", "api", "jobs", "sim", "cli", "server")  # DESIGN §1, in its order
#: layer -> the packages (or modules) of esimota it must not import
FORBIDDEN = {
    "codec": ABOVE_DOMAIN + ("domain",),
    "domain": ABOVE_DOMAIN,
    "ota": ("store", "service", "api", "jobs", "cli", "server"),
    "store": ("service", "api", "jobs", "cli", "server"),
    "service": ("api", "jobs", "cli", "server"),
}


def _imports(path: Path, root: Path = SRC) -> set[str]:
    """Every esimota module this file imports (absolute names)."""
    return {n for n in imported(path, *module_name(path, root)) if n == "esimota" or n.startswith("esimota.")}


def _layer(name: str) -> str:
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def _violations(layer: str) -> list[str]:
    bad = []
    for path in sorted((PKG / layer).rglob("*.py")):
        for name in sorted(_imports(path)):
            if _layer(name) in FORBIDDEN[layer]:
                bad.append(f"{path.relative_to(SRC)} imports {name}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_nothing_above_it(layer):
    """DESIGN §1: codec and domain import nothing above them; store no service, api or cli; service no
    api or cli; the ota core none of the layers that do I/O."""
    assert (PKG / layer).is_dir()
    assert _violations(layer) == []


def test_the_ota_core_is_sans_io():
    """DESIGN §1: the sans-IO cores do no I/O: the asyncio driver and the listener live in api/bip/."""
    bad = []
    for path in sorted((PKG / "ota").rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            bad += [f"{path.name} imports {n}" for n in names if n.split(".")[0] in ("asyncio", "socket", "asyncpg")]
    assert bad == []


def test_the_walk_sees_relative_and_nested_imports(tmp_path):
    """The checker itself: a relative import inside a function is resolved to its absolute name and refused."""
    bad = tmp_path / "esimota" / "store" / "sneaky.py"
    bad.parent.mkdir(parents=True)
    bad.write_text('"""x."""\n\ndef f():\n    from ..service import bip\n    return bip\n', encoding="utf-8")
    names = _imports(bad, tmp_path)
    assert "esimota.service.bip" in names
    assert any(_layer(n) in FORBIDDEN["store"] for n in names)


SQL = re.compile(r"\bSELECT\s.+\bFROM\s|\bSELECT\s+(count|pg_\w+|1\b)|\bINSERT\s+INTO\s|\bUPDATE\s+\w+\s+(\w+\s+)?SET\s"
                 r"|\bDELETE\s+FROM\s|\bTRUNCATE\s+\w+|\bCREATE\s+(TEMP\s+)?TABLE\s", re.S)


def _sql_literals(path: Path, root: Path = SRC) -> list[str]:
    """String literals (docstrings aside) of a module that are SQL statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    return [f"{path.relative_to(root)}:{n.lineno}" for n in ast.walk(tree)
            if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
            and SQL.search(n.value)]


@pytest.mark.parametrize("layer", ["service", "jobs", "api"])
def test_store_owns_every_sql_statement_of_services_jobs_and_adapters(layer):
    """DESIGN §1: store/ holds the repositories that own every SQL statement; services, jobs and the api
    adapters (rate windows, exception lists, the readiness probe included) call them."""
    assert [hit for path in sorted((PKG / layer).rglob("*.py")) for hit in _sql_literals(path)] == []


def test_the_sql_finder_finds_sql(tmp_path):
    """The checker itself: a statement in a constant is found, a docstring that says UPDATE is not."""
    f = tmp_path / "esimota" / "service" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text('"""One UPDATE per refresh."""\nQ = "UPDATE chips SET state = $2 WHERE id = $1"\n', encoding="utf-8")
    assert _sql_literals(f, tmp_path) == ["esimota/service/x.py:2"]


def test_the_sql_finder_finds_a_probe_in_an_adapter(tmp_path):
    """The checker itself: a bare `SELECT 1` handed to the pool from api/ is found too."""
    f = tmp_path / "esimota" / "api" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text('"""`SELECT 1` in a docstring is fine."""\n\nasync def f(pool):\n    return await pool.fetchval("SELECT 1")\n',
                 encoding="utf-8")
    assert _sql_literals(f, tmp_path) == ["esimota/api/x.py:4"]
