"""The one import walker of the structure tests (test_layering, test_import_graph): what a file imports."""

from __future__ import annotations

import ast
from pathlib import Path


def module_name(path: Path, root: Path) -> tuple[str, bool]:
    """The dotted name of the module at `path` under `root`, and whether it is a package's __init__."""
    parts = list(path.relative_to(root).with_suffix("").parts)
    is_package = parts[-1] == "__init__"
    if is_package:
        parts.pop()
    return ".".join(parts), is_package


def imported(path: Path, module: str, is_package: bool, *, as_text: bool = False) -> set[str]:
    """Every module name the file imports: `import` and `from … import` anywhere (inside functions too),
    relative ones resolved against `module`. With `as_text`, also each 'esimota.x' string constant (a
    module loaded by name), and its __main__ (`python -m esimota.cli` runs the package's __main__)."""
    package = module if is_package else module.rpartition(".")[0]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                parts = parts[: len(parts) - node.level + 1]
                base = ".".join(parts + ([node.module] if node.module else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)
        elif as_text and isinstance(node, ast.Constant) and isinstance(node.value, str) \
                and node.value.startswith("esimota."):
            names.add(node.value.split(":")[0])
            names.add(node.value.split(":")[0] + ".__main__")
    return names
