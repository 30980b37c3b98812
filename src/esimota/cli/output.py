"""How every `esimota` command prints (DESIGN §7): readable text or a table, JSON only with --json.

Times go out as the API gives them, ISO 8601 in +08:00 (DESIGN §6). The text form parses back: a
"key: value" line per field, and tables whose columns are separated by two or more spaces (a cell
never holds two spaces in a row or a line break; an empty cell is "-").
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
import re
import unicodedata
from pathlib import Path
from typing import Any

CST = dt.timezone(dt.timedelta(hours=8))
_SPACES = re.compile(r"\s+")


def plain(value: Any) -> Any:
    """JSON's view of a value: times in +08:00, dates ISO, decimals as numbers, bytes as hex."""
    if isinstance(value, dt.datetime):
        value = value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(CST).isoformat(timespec="seconds")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def to_json(payload: Any) -> str:
    return json.dumps(plain(payload), ensure_ascii=False)


def cell(value: Any) -> str:
    """One table cell or text value: one line, no double spaces, "-" when empty."""
    value = plain(value)
    if isinstance(value, (dict, list)):
        text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = "" if value is None else str(value)
    text = _SPACES.sub(" ", text).strip()
    return text or "-"


def _width(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(rows: list[dict]) -> str:
    """Rows of dicts as aligned columns (the keys of every row, in first-seen order)."""
    columns: list[str] = []
    for row in rows:
        columns += [k for k in row if k not in columns]
    grid = [columns] + [[cell(row.get(c)) for c in columns] for row in rows]
    widths = [max(_width(r[i]) for r in grid) for i in range(len(columns))]
    return "\n".join("  ".join(v + " " * (w - _width(v)) for v, w in zip(r, widths)).rstrip() for r in grid)


def _is_rows(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def text(payload: Any) -> str:
    """The readable form: a table for a list of records; for a record, "key: value" lines, with each
    list of records as a titled table and each nested record as indented "key: value" lines."""
    payload = plain(payload)
    if _is_rows(payload):
        return table(payload)
    if not isinstance(payload, dict):
        return cell(payload)
    lines, blocks = [], []
    for key, value in payload.items():
        if key == "ok" and value is True:
            continue
        if _is_rows(value):
            blocks.append(f"{key}:\n" + table(value))
        elif isinstance(value, dict) and value and all(not isinstance(v, (dict, list)) for v in value.values()):
            blocks.append(f"{key}:\n" + "\n".join(f"  {k}: {cell(v)}" for k, v in value.items()))
        elif _nested(value):  # records of records (a report's classes): indented, never one JSON cell
            blocks.append(f"{key}:\n" + tree(value, 2))
        else:
            lines.append(f"{key}: {cell(value)}")
    return "\n\n".join(x for x in ["\n".join(lines)] + blocks if x)


def _nested(value: Any) -> bool:
    """A value `tree` indents: a non-empty record, or a list holding records or lists."""
    if isinstance(value, dict):
        return bool(value)
    return isinstance(value, list) and any(isinstance(v, (dict, list)) for v in value)


def tree(payload: Any, indent: int = 0) -> str:
    """Deeply nested records (a decoded frame down to its APDUs) as indented "key: value" lines; a list
    of records as "[i]:" items, a list of plain values as one cell."""
    pad = " " * indent
    payload = plain(payload)
    if isinstance(payload, list) and _nested(payload):
        return "\n".join(f"{pad}[{i}]:\n" + tree(v, indent + 2) if _nested(v) else f"{pad}[{i}]: {cell(v)}"
                         for i, v in enumerate(payload))
    if not isinstance(payload, dict):
        return pad + cell(payload)
    return "\n".join(f"{pad}{key}:\n" + tree(value, indent + 2) if _nested(value) else f"{pad}{key}: {cell(value)}"
                     for key, value in payload.items())


def parse_text(out: str) -> dict:
    """The inverse of `text` for a record (used by tests and scripts): keys to cell strings, tables to
    lists of dicts of cell strings, nested records to dicts."""
    result: dict[str, Any] = {}
    for block in out.strip().split("\n\n"):
        lines = block.splitlines()
        if len(lines) > 1 and lines[0].endswith(":") and not lines[1].startswith("  "):
            result[lines[0][:-1]] = parse_table("\n".join(lines[1:]))
        else:
            result.update(parse_tree(lines))
    return result


def parse_tree(lines: list[str]) -> Any:
    """The inverse of `tree`: "key: value" lines to cell strings, "key:" and its indented lines to a
    record, "[i]" items to a list."""
    result: dict[str, Any] = {}
    i = 0
    while i < len(lines):
        key, sep, value = lines[i].partition(": ")
        i += 1
        if sep:
            result[key] = value
            continue
        child = []
        while i < len(lines) and lines[i].startswith("  "):
            child.append(lines[i][2:])
            i += 1
        result[key.rstrip(":")] = parse_tree(child)
    if result and all(re.fullmatch(r"\[\d+\]", k) for k in result):
        return list(result.values())
    return result


def parse_table(out: str) -> list[dict]:
    lines = out.strip().splitlines()
    header = re.split(r" {2,}", lines[0].strip())
    return [dict(zip(header, re.split(r" {2,}", ln.strip()))) for ln in lines[1:]]
