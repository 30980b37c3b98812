"""Lists for the terminal: an aligned table, JSON lines or CSV with a BOM (the `list` and `show` commands)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import sys
import unicodedata
from typing import Any, Iterable, Sequence, TextIO

from .output import plain as _as_api

BOM = "\ufeff"


def list_flags(p: argparse.ArgumentParser, default_limit: int = 100) -> argparse.ArgumentParser:
    """--limit, and --json | --csv (exclusive); the table is the default."""
    p.add_argument("--limit", type=int, default=default_limit, help=f"rows at most (default {default_limit})")
    fmt = p.add_mutually_exclusive_group()
    fmt.add_argument("--json", action="store_true", help="JSON lines, one object per row")
    fmt.add_argument("--csv", action="store_true", help="CSV, UTF-8 with BOM")
    p.add_argument("--as", dest="as_", default=None, help="staff username (default: ESIMOTA_STAFF)")
    return p


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (dt.datetime, dt.date)):
        return _as_api(value)  # times in +08:00, as the API gives them (DESIGN §6)
    if isinstance(value, (list, tuple)):
        return ",".join(_cell(v) for v in value)
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON value: times as ISO 8601 text in +08:00, everything else as it is."""
    if isinstance(value, (dt.datetime, dt.date)):
        return _as_api(value)
    if isinstance(value, tuple):
        return list(value)
    return value


def width(text: str) -> int:
    """Columns a string takes on a terminal: East Asian wide characters (中文) take two."""
    return sum(2 if unicodedata.east_asian_width(ch) in ("W", "F") else 1 for ch in text)


def _pad(text: str, cols: int) -> str:
    return text + " " * (cols - width(text))


def table(columns: Sequence[str], rows: Iterable[dict], out: TextIO) -> None:
    """An aligned table: a header, a rule, one line per row; an empty cell is "-" so that the columns,
    separated by two or more spaces, split back."""
    cells = [[_cell(r.get(c)) or "-" for c in columns] for r in rows]
    widths = [max([width(c)] + [width(row[i]) for row in cells]) for i, c in enumerate(columns)]
    out.write("  ".join(_pad(c.upper(), w) for c, w in zip(columns, widths)).rstrip() + "\n")
    out.write("  ".join("-" * w for w in widths) + "\n")
    for row in cells:
        out.write("  ".join(_pad(v, w) for v, w in zip(row, widths)).rstrip() + "\n")


def json_lines(columns: Sequence[str], rows: Iterable[dict], out: TextIO) -> None:
    for r in rows:
        out.write(json.dumps({c: _plain(r.get(c)) for c in columns}, ensure_ascii=False) + "\n")


def csv_text(columns: Sequence[str], rows: Iterable[dict], out: TextIO) -> None:
    """RFC 4180 CSV with a header, preceded by a UTF-8 BOM."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(columns)
    for r in rows:
        writer.writerow([_cell(r.get(c)) for c in columns])
    out.write(BOM + buf.getvalue())


def print_rows(args: argparse.Namespace, columns: Sequence[str], rows: list[dict], *, total: int | None = None,
               out: TextIO | None = None) -> None:
    """The rows in the format the flags ask for; on a table, a last line says how many of how many."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        json_lines(columns, rows, out)
    elif getattr(args, "csv", False):
        out.flush()
        stream = getattr(out, "buffer", None)
        if stream is not None:  # the BOM and the text in UTF-8 whatever the terminal's locale
            text = io.StringIO()
            csv_text(columns, rows, text)
            stream.write(text.getvalue().encode("utf-8"))
            stream.flush()
        else:
            csv_text(columns, rows, out)
    else:
        table(columns, rows, out)
        if total is not None:
            out.write(f"({len(rows)} of {total})\n")


def print_record(args: argparse.Namespace, record: dict, sections: dict[str, tuple[Sequence[str], list[dict]]],
                 out: TextIO | None = None) -> None:
    """One object (`tasks show`, `exceptions show`): JSON with --json, else key: value lines and tables."""
    out = out or sys.stdout
    if getattr(args, "json", False):
        full = {k: _plain(v) for k, v in record.items()}
        for name, (columns, rows) in sections.items():
            full[name] = [{c: _plain(r.get(c)) for c in columns} for r in rows]
        out.write(json.dumps(full, ensure_ascii=False) + "\n")
        return
    keys = max((width(k) for k in record), default=0)
    for k, v in record.items():
        out.write(f"{_pad(k, keys)}  {_cell(v) or '-'}\n")
    for name, (columns, rows) in sections.items():
        out.write(f"\n{name}:\n")
        if rows:
            table(columns, rows, out)
        else:
            out.write("(none)\n")
