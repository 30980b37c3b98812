"""Every ESIMOTA_* variable the code reads is in README's configuration table (issue 17).

The names are read from the source's syntax tree, whatever the form of the read: a literal anywhere
(`os.environ.get("ESIMOTA_X")`, `os.getenv`, `environ["…"]`, `"…" in os.environ`, `_int_env("ESIMOTA_X", 1)`,
`cidr_list("ESIMOTA_X")`), and names built by an f-string (`f"ESIMOTA_{name}_INTERVAL"`): each such
template is expanded with the string literals its enclosing function is called with, and a template
that cannot be expanded fails the test, so that a new way of naming a variable cannot slip past it.
"""

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
NAME = re.compile(r"\bESIMOTA_[A-Z0-9_]*[A-Z0-9]\b")


def _sources() -> list[tuple[Path, ast.AST]]:
    return [(p, ast.parse(p.read_text(encoding="utf-8"))) for p in sorted((ROOT / "src").rglob("*.py"))
            + [ROOT / "setup.py"]]


def _templates(tree: ast.AST) -> list[tuple[str, str, str]]:
    """(function, parameter, template with "{}") of every f-string that builds an ESIMOTA_ name from one parameter."""
    out = []
    for fn in ast.walk(tree):
        if not isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            continue
        params = [a.arg for a in fn.args.args + fn.args.kwonlyargs]
        for node in ast.walk(fn):
            if not (isinstance(node, ast.JoinedStr) and node.values and isinstance(node.values[0], ast.Constant)
                    and re.fullmatch(r"ESIMOTA_[A-Z0-9_]*", str(node.values[0].value))):  # a name cut by a hole
                continue
            parts, holes = [], []
            for v in node.values:
                if isinstance(v, ast.Constant):
                    parts.append(str(v.value))
                else:
                    holes.append(ast.unparse(v.value))
                    parts.append("{}")
            assert len(holes) == 1 and holes[0] in params, (
                f"{fn.name}: ESIMOTA_ name built from {holes}; teach this test to expand it")
            out.append((fn.name, holes[0], "".join(parts)))
    return out


def _literal_calls(trees, function: str, position: int, keyword: str) -> set[str]:
    """The string literals `function` is called with, at `position` or as `keyword`, anywhere in src."""
    found = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            callee = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, "id", None)
            if callee != function:
                continue
            args = [a for a in node.args[position:position + 1]] + [k.value for k in node.keywords if k.arg == keyword]
            found |= {a.value for a in args if isinstance(a, ast.Constant) and isinstance(a.value, str)}
    return found


def variables_read() -> set[str]:
    trees = _sources()
    read: set[str] = set()
    for _, tree in trees:
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                read |= set(NAME.findall(node.value))
    for path, tree in trees:
        for function, param, template in _templates(tree):
            fn = next(n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))
                      and n.name == function)
            position = [a.arg for a in fn.args.args].index(param) if param in [a.arg for a in fn.args.args] else 99
            values = _literal_calls(trees, function, position, param)
            assert values, f"{path.name}: {function}() builds ESIMOTA_ names but is never called with a literal"
            read |= {template.replace("{}", v) for v in values}
    return read


def documented() -> set[str]:
    table = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if ln.startswith("| `")]
    return set(re.findall(r"`(ESIMOTA_[A-Z0-9_]+)`", "\n".join(table)))


def test_every_variable_the_code_reads_is_documented():
    read = variables_read()
    # the f-string reads are expanded: ESIMOTA_<NAME>_INTERVAL of jobs.ops.interval("NAME", …)
    assert {"ESIMOTA_WATCHDOG_INTERVAL", "ESIMOTA_EXPORT_INTERVAL", "ESIMOTA_OPS_RETENTION_INTERVAL"} <= read
    assert {"ESIMOTA_BIP_FIRST_TIMEOUT", "ESIMOTA_TRUSTED_PROXIES", "ESIMOTA_IOT_SEGMENTS"} <= read
    assert sorted(read - documented()) == []


def test_each_variable_has_one_row():
    """A variable in two rows of the table is two answers to one question."""
    rows = [ln for ln in (ROOT / "README.md").read_text(encoding="utf-8").splitlines() if ln.startswith("| `")]
    seen: dict[str, int] = {}
    for row in rows:
        for name in set(re.findall(r"`(ESIMOTA_[A-Z0-9_]+|DATABASE_URL)`", row.split("|")[1])):
            seen[name] = seen.get(name, 0) + 1
    assert sorted(n for n, k in seen.items() if k > 1) == []
