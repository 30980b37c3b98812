"""The console's HTML builder escapes every value, text and attribute alike; SVG charts keep one slot per period;
the language follows the switch, then the browser, then 中文."""

from __future__ import annotations

from aiohttp.test_utils import make_mocked_request

from esimota.api.console import html, i18n

HOSTILE = '<script>alert(1)</script>"\'&'


def test_text_and_attributes_are_escaped_markup_is_not():
    out = html.tag("td", HOSTILE, title=HOSTILE, data_x=HOSTILE)
    assert "<script>" not in out and out.count("&lt;script&gt;") == 3 and '"\'' not in out
    assert html.tag("p", html.tag("b", "x")) == "<p><b>x</b></p>"
    assert html.tag("input", checked=True, disabled=False) == "<input checked></input>"
    assert html.table(["h"], [[HOSTILE]]).count("&lt;script&gt;") == 1


def test_svg_leaves_close_themselves_and_every_slot_is_drawn():
    slots = [(f"{h:02d}:00", h % 3, h % 2) for h in range(24)]
    svg = html.bars_with_rate("t", slots, ("ok", "bad", "rate"))
    assert svg.count('class="ok"/>') == 24 and svg.count('class="bad"/>') == 24
    assert "<rect" in svg and "</rect>" not in svg  # an unclosed <rect> would swallow the rest of the chart
    bars = html.hbars(HOSTILE, [("待写卡", 3), (HOSTILE, 0)])
    assert "<script>" not in bars and bars.count("<rect") == 2
    ratios = html.lines("q", ["2026-01", "2026-02"], [("w", [0.5, None]), ("c", [1.0, 0.25])])
    assert ratios.count("<circle") == 3


def _request(cookie: str | None = None, accept: str | None = None):
    headers = {}
    if cookie:
        headers["Cookie"] = f"{i18n.LANG_COOKIE}={cookie}"
    if accept:
        headers["Accept-Language"] = accept
    return make_mocked_request("GET", "/console/", headers=headers)


def test_language_switch_then_browser_then_chinese():
    assert i18n.lang(_request()) == "zh"
    assert i18n.lang(_request(accept="en-US,en;q=0.9")) == "en"
    assert i18n.lang(_request(accept="fr-FR,zh-CN;q=0.8,en;q=0.5")) == "zh"
    assert i18n.lang(_request(cookie="en", accept="zh-CN")) == "en"
    assert i18n.lang(_request(cookie="xx", accept="de")) == "zh"
    assert i18n.t("en", "overview") == "Overview" and i18n.t("zh", "overview") == "总览"
    assert all(zh and en for zh, en in i18n.WORDS.values())


def test_every_chip_status_has_its_words():
    """The console shows production and logistics statuses (R13) in the page's language, as it does every
    other status (DESIGN's console section): each status the platform stores has a 中文 and an English word."""
    from esimota.service.chip_management import LOGISTICS, PRODUCTION

    for status in PRODUCTION + LOGISTICS:
        zh, en = i18n.t("zh", status), i18n.t("en", status)
        assert zh != status and not zh.isascii() and en, status
