"""No module under src/ is reachable only from tests (house rule: tests prove the code production runs).

Walks the import graph from the production entry points — the console script of pyproject.toml, the
composition root `esimota.server`, and the capacity tools of benchmarks/ — following `import`, `from … import`, and module names given as text
(the plugins and compiled/pure facades load by name). Every module a test imports, and every module under
src/, must be reachable that way: one that only tests reach is a second implementation in waiting.
"""

from __future__ import annotations

import tomllib
from pathlib import Path

from tests.support.imports import imported, module_name

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"


def _modules() -> dict[str, Path]:
    return {module_name(path, SRC)[0]: path for path in (SRC / "esimota").rglob("*.py")}


def _imports(path: Path, module: str, is_package: bool) -> set[str]:
    """Every module name this file may import: statements, relative ones resolved, and 'esimota.x' text."""
    return imported(path, module, is_package, as_text=True)


def _closure(roots: set[str], modules: dict[str, Path], graph: dict[str, set[str]]) -> set[str]:
    seen: set[str] = set()
    todo = list(roots)
    while todo:
        mod = _known(todo.pop(), modules)
        if mod is None or mod in seen:
            continue
        seen.add(mod)
        parent = mod.rpartition(".")[0]
        nxt = set(graph.get(mod, ())) | ({parent} if parent else set())  # a submodule imports its package
        todo.extend(n for n in nxt if n not in seen)
    return seen


def _known(name: str, modules: dict[str, Path]) -> str | None:
    """The module a name stands for: itself, or its nearest package (`esimota._ext.packet` is compiled)."""
    while name and name not in modules:
        name = name.rpartition(".")[0]
    return name or None


def _graph(modules: dict[str, Path]) -> dict[str, set[str]]:
    return {m: _imports(p, m, p.name == "__init__.py") for m, p in modules.items()}


def _entry_points() -> set[str]:
    scripts = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"].get("scripts", {})
    roots = {target.split(":")[0] for target in scripts.values()} | {"esimota.server"}
    for path in (ROOT / "benchmarks").rglob("*.py"):  # the capacity tests run the platform as it ships
        roots |= _imports(path, "benchmarks", False)
    return roots


def _generated(modules) -> set[str]:
    """protoc's output (built at install, never edited): partners' client stubs are not ours to prune."""
    return {m for m in modules if m.endswith("_pb2") or m.endswith("_pb2_grpc")}


def test_every_module_is_reachable_from_production():
    modules = _modules()
    reachable = _closure(_entry_points(), modules, _graph(modules))
    orphans = sorted(set(modules) - reachable - _generated(modules))
    assert not orphans, f"modules under src/ that production never imports: {orphans}"


def test_no_module_is_reachable_only_from_tests():
    modules = _modules()
    graph = _graph(modules)
    production = _closure(_entry_points(), modules, graph)
    from_tests: set[str] = set()
    for path in (ROOT / "tests").rglob("*.py"):
        from_tests |= {n for n in _imports(path, "tests", False) if n.startswith("esimota")}
    only_tests = sorted(_closure(from_tests, modules, graph) - production - _generated(modules))
    assert not only_tests, f"modules only tests reach: {only_tests}"


def test_the_walk_sees_a_test_only_module(tmp_path):
    """The check can fail: a module no production code names is reported."""
    modules = _modules()
    modules["esimota.service.shadow_path"] = tmp_path / "shadow_path.py"
    reachable = _closure(_entry_points(), modules, _graph({k: v for k, v in modules.items()
                                                           if k != "esimota.service.shadow_path"}))
    assert "esimota.service.shadow_path" not in reachable and "esimota.service.bip" in reachable
