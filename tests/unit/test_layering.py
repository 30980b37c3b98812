"""The layers of DESIGN §1 hold: data flows one way (adapters → service → domain/store; the ota driver → service).

An ast walk of src/esimota: every `import` and `from … import` (relative ones resolved, those inside
functions too) of each module is checked against what its layer may not import:
codec and domain import nothing above them; store imports no service, api or cli; service imports no
api or cli; the sans-IO ota core imports neither asyncio nor the layers that do I/O. And no SQL
statement is written outside store/ (f-strings and multi-line strings included): store/ owns them all.
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
    # the adapters, the jobs and the simulator sit side by side above service/: none reaches into another,
    # nor into the command or the composition root that assemble them
    "api": ("jobs", "cli", "server"),
    "jobs": ("api", "cli", "server"),
    "sim": ("api", "jobs", "cli", "server"),
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
    api or cli; the ota core none of the layers that do I/O; api, jobs and sim not one another."""
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


# A statement's first words, in any case where they cannot be prose (INSERT INTO, DELETE FROM, UPDATE t SET,
# SELECT … FROM, a CTE, DDL), and upper case where a word alone would be English (SELECT fn(…), COPY, LOCK).
SQL = re.compile(r"(?i:\bSELECT\s.+\bFROM\s|\bINSERT\s+INTO\s|\bUPDATE\s+\w+\s+(\w+\s+)?SET\s|\bDELETE\s+FROM\s"
                 r"|\bWITH\s+(RECURSIVE\s+)?\w+\s+AS\s*\(|\bTRUNCATE\s+\w+"
                 r"|\b(CREATE|ALTER|DROP)\s+(TEMP\s+|UNIQUE\s+)?(TABLE|INDEX|VIEW|DATABASE)\s)"
                 r"|\bSELECT\s+[\w*($]|\b(COPY|LOCK)\s+\w+|\bVACUUM\b", re.S)


def _text(node: ast.AST) -> str | None:
    """A string literal's text; an f-string's with each {…} as x (so "SELECT {cols} FROM t" is seen whole)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):
        return "".join(v.value if isinstance(v, ast.Constant) else "x" for v in node.values)
    return None


def _sql_literals(path: Path, root: Path = SRC) -> list[str]:
    """String literals and f-strings (docstrings aside) of a module that are SQL statements."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                  if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                  and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
    parts = {id(v) for n in ast.walk(tree) if isinstance(n, ast.JoinedStr) for v in n.values}
    lines = sorted({n.lineno for n in ast.walk(tree)
                    if id(n) not in docstrings and id(n) not in parts and SQL.search(_text(n) or "")})
    return [f"{path.relative_to(root)}:{line}" for line in lines]


def _outside_store(pkg: Path) -> list[Path]:
    """Every module of the package but store/'s, the generated protobuf modules aside."""
    return [p for p in sorted(pkg.rglob("*.py")) if p.relative_to(pkg).parts[0] != "store"
            and not p.name.endswith(("_pb2.py", "_pb2_grpc.py"))]


def test_store_owns_every_sql_statement():
    """DESIGN §1: store/ holds the repositories that own every SQL statement; services, jobs, the api
    adapters, the cli, the start-up checks and every other module call them."""
    assert [hit for path in _outside_store(PKG) for hit in _sql_literals(path)] == []


def test_the_sql_finder_sees_every_store_statement():
    """The checker itself: it knows every form store/ writes its statements in (each repository has some)."""
    missed = [p.name for p in sorted((PKG / "store").glob("*.py"))
              if "conn.fetch" in p.read_text(encoding="utf-8") and not _sql_literals(p)]
    assert missed == []


def test_the_sql_finder_finds_sql(tmp_path):
    """The checker itself: a statement in a constant, an f-string, a multi-line string, a CTE, lower case
    and a SELECT without FROM are found, in any module outside store/; a docstring that says UPDATE is not."""
    f = tmp_path / "esimota" / "service" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text('"""One UPDATE per refresh."""\nQ = "UPDATE chips SET state = $2 WHERE id = $1"\n'
                 'def f(cols):\n    """SELECT by file id."""\n    return f"SELECT {cols} FROM chips"\n'
                 'W = """\nWITH gone AS (\n  DELETE\n  FROM t RETURNING id)\nSELECT count(*) FROM gone"""\n'
                 'L = "insert into t (a) values ($1)"\nP = "SELECT to_regclass($1) IS NOT NULL"\n'
                 'OK = "select the chips to allocate"\n', encoding="utf-8")
    assert _sql_literals(f, tmp_path) == [f"esimota/service/x.py:{n}" for n in (2, 5, 6, 11, 12)]
    top = tmp_path / "esimota" / "startup.py"
    top.write_text('N = "SELECT coalesce(max(version), 0) FROM schema_migrations"\n', encoding="utf-8")
    (tmp_path / "esimota" / "store").mkdir()
    (tmp_path / "esimota" / "store" / "chips.py").write_text('Q = "SELECT eid FROM chips"\n', encoding="utf-8")
    assert {p.name for p in _outside_store(tmp_path / "esimota")} == {"x.py", "startup.py"}
    assert _sql_literals(top, tmp_path) == ["esimota/startup.py:1"]


def test_the_sql_finder_finds_a_probe_in_an_adapter(tmp_path):
    """The checker itself: a bare `SELECT 1` handed to the pool from api/ is found too."""
    f = tmp_path / "esimota" / "api" / "x.py"
    f.parent.mkdir(parents=True)
    f.write_text('"""`SELECT 1` in a docstring is fine."""\n\nasync def f(pool):\n    return await pool.fetchval("SELECT 1")\n',
                 encoding="utf-8")
    assert _sql_literals(f, tmp_path) == ["esimota/api/x.py:4"]
