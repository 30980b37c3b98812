"""HTML built in Python with every value escaped (a `Safe` string is markup; anything else is text), and the
console's charts drawn as inline SVG — no template engine, no chart library, nothing from a CDN."""

from __future__ import annotations

import datetime as dt
import html
from typing import Any, Iterable, Sequence

CST = dt.timezone(dt.timedelta(hours=8))


class Safe(str):
    """Markup that was built here; everything else given to `esc` is text and is escaped."""


def esc(value: Any) -> Safe:
    if isinstance(value, Safe):
        return value
    if value is None:
        return Safe("")
    if isinstance(value, dt.datetime):
        value = when(value)
    return Safe(html.escape(str(value), quote=True))


def join(parts: Iterable[Any]) -> Safe:
    return Safe("".join(esc(p) for p in parts))


def _attrs(attrs: dict[str, Any]) -> str:
    out = []
    for key, value in attrs.items():
        if value is None or value is False:
            continue
        name = key.rstrip("_").replace("_", "-")
        out.append(f" {name}" if value is True else f' {name}="{esc(value)}"')
    return "".join(out)


def tag(element: str, /, *body: Any, **attrs: Any) -> Safe:
    """`<element attrs>body</element>`; body items are escaped unless Safe; lists are joined."""
    inner = join(b for item in body for b in (item if isinstance(item, (list, tuple)) else [item]))
    return Safe(f"<{element}{_attrs(attrs)}>{inner}</{element}>")


def void(element: str, /, **attrs: Any) -> Safe:
    return Safe(f"<{element}{_attrs(attrs)}>")


def leaf(element: str, /, **attrs: Any) -> Safe:
    """An SVG element without content: self-closed, as foreign content inside HTML needs (`<rect/>`)."""
    return Safe(f"<{element}{_attrs(attrs)}/>")


def when(value: dt.datetime | dt.date | None) -> str:
    """China Standard Time, to the second (DESIGN §6: times are +08:00)."""
    if value is None:
        return ""
    if isinstance(value, dt.datetime):
        return value.astimezone(CST).strftime("%Y-%m-%d %H:%M:%S")
    return value.isoformat()


def table(headers: Sequence[Any], rows: Iterable[Sequence[Any]], **attrs: Any) -> Safe:
    head = tag("thead", tag("tr", [tag("th", h) for h in headers]))
    body = tag("tbody", [tag("tr", [tag("td", c) for c in row]) for row in rows])
    return tag("div", tag("table", head, body, **attrs), class_="scroll")


def pct(ratio: float | None) -> str:
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


# -- charts: inline SVG, sized by viewBox so they scale from a tablet to a wide screen --------------
W, H, PAD_L, PAD_B, PAD_T = 720, 220, 40, 28, 12


def bars_with_rate(title: str, slots: Sequence[tuple[str, int, int]], legend: tuple[str, str, str],
                   **attrs: Any) -> Safe:
    """Stacked bars (succeeded, failed) per slot and the success rate as a line on a 0–100 % axis."""
    n = max(len(slots), 1)
    top = max([ok + bad for _, ok, bad in slots] + [1])
    plot_w, plot_h = W - PAD_L - 40, H - PAD_B - PAD_T
    step = plot_w / n
    parts: list[Safe] = [_axes(plot_w, plot_h, top)]
    points = []
    for i, (label, ok, bad) in enumerate(slots):
        x = PAD_L + i * step + step * 0.15
        bw = max(step * 0.7, 1)
        h_ok, h_bad = plot_h * ok / top, plot_h * bad / top
        base = PAD_T + plot_h
        parts.append(leaf("rect", x=f"{x:.1f}", y=f"{base - h_ok:.1f}", width=f"{bw:.1f}", height=f"{h_ok:.1f}",
                          class_="ok"))
        parts.append(leaf("rect", x=f"{x:.1f}", y=f"{base - h_ok - h_bad:.1f}", width=f"{bw:.1f}",
                          height=f"{h_bad:.1f}", class_="bad"))
        parts.append(tag("title", f"{label}: {ok} / {bad}"))
        if ok + bad:
            points.append(f"{x + bw / 2:.1f},{PAD_T + plot_h * (1 - ok / (ok + bad)):.1f}")
        if i % max(n // 12, 1) == 0:
            parts.append(tag("text", label, x=f"{x + bw / 2:.1f}", y=H - 8, class_="tick", text_anchor="middle"))
    if points:
        parts.append(leaf("polyline", points=" ".join(points), class_="rate"))
        for p in points:
            x, y = p.split(",")
            parts.append(leaf("circle", cx=x, cy=y, r=3, class_="rate-dot"))
    parts.append(tag("text", "100%", x=W - 36, y=PAD_T + 8, class_="tick"))
    parts.append(tag("text", "0%", x=W - 36, y=PAD_T + plot_h, class_="tick"))
    return _figure(title, parts, legend, **attrs)


def _axes(plot_w: float, plot_h: float, top: int) -> Safe:
    y0 = PAD_T + plot_h
    return join([leaf("line", x1=PAD_L, y1=y0, x2=PAD_L + plot_w, y2=y0, class_="axis"),
                 leaf("line", x1=PAD_L, y1=PAD_T, x2=PAD_L, y2=y0, class_="axis"),
                 tag("text", top, x=4, y=PAD_T + 8, class_="tick"), tag("text", "0", x=4, y=y0, class_="tick")])


def _figure(title: str, parts: list, legend: Sequence[str], **attrs: Any) -> Safe:
    keys = [tag("span", name, class_=f"key k{i}") for i, name in enumerate(legend)]
    svg = tag("svg", parts, viewBox=f"0 0 {W} {H}", role="img", aria_label=title, class_="chart")
    return tag("figure", tag("figcaption", title, " ", keys), svg, **attrs)


def hbars(title: str, items: Sequence[tuple[str, int]], **attrs: Any) -> Safe:
    """Horizontal bars with their counts (cards by state)."""
    top = max([v for _, v in items] + [1])
    row_h = 26
    height = row_h * max(len(items), 1) + 8
    parts: list[Safe] = []
    for i, (label, value) in enumerate(items):
        y = 4 + i * row_h
        width = (W - 220) * value / top
        parts.append(tag("text", label, x=4, y=y + 17, class_="label"))
        parts.append(leaf("rect", x=130, y=y + 3, width=f"{width:.1f}", height=row_h - 8, class_=f"s{i + 1}"))
        parts.append(tag("text", value, x=f"{136 + width:.1f}", y=y + 17, class_="label"))
    svg = tag("svg", parts, viewBox=f"0 0 {W} {height}", role="img", aria_label=title, class_="chart")
    return tag("figure", tag("figcaption", title), svg, **attrs)


def lines(title: str, labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]],
          **attrs: Any) -> Safe:
    """Ratios (0–1) per period, one line per series (the quality indicators per month)."""
    n = max(len(labels), 1)
    plot_w, plot_h = W - PAD_L - 40, H - PAD_B - PAD_T
    step = plot_w / max(n - 1, 1)
    parts: list[Safe] = [leaf("line", x1=PAD_L, y1=PAD_T + plot_h, x2=PAD_L + plot_w, y2=PAD_T + plot_h,
                              class_="axis"),
                         tag("text", "100%", x=2, y=PAD_T + 8, class_="tick"),
                         tag("text", "0%", x=2, y=PAD_T + plot_h, class_="tick")]
    for i, label in enumerate(labels):
        parts.append(tag("text", label, x=f"{PAD_L + i * step:.1f}", y=H - 8, class_="tick", text_anchor="middle"))
    for k, (_, values) in enumerate(series):
        pts = [f"{PAD_L + i * step:.1f},{PAD_T + plot_h * (1 - v):.1f}" for i, v in enumerate(values) if v is not None]
        if pts:
            parts.append(leaf("polyline", points=" ".join(pts), class_=f"series k{k}"))
            for p in pts:
                x, y = p.split(",")
                parts.append(leaf("circle", cx=x, cy=y, r=3, class_=f"dot k{k}"))
    return _figure(title, parts, [name for name, _ in series], **attrs)
