"""Province codes of GB/T 2260 (two digits) with their 中文 names (DESIGN §2, §7.2.2.1)."""

from __future__ import annotations

from ..errors import InvalidArgument

PROVINCES: dict[str, str] = {
    "11": "北京", "12": "天津", "13": "河北", "14": "山西", "15": "内蒙古",
    "21": "辽宁", "22": "吉林", "23": "黑龙江",
    "31": "上海", "32": "江苏", "33": "浙江", "34": "安徽", "35": "福建", "36": "江西", "37": "山东",
    "41": "河南", "42": "湖北", "43": "湖南", "44": "广东", "45": "广西", "46": "海南",
    "50": "重庆", "51": "四川", "52": "贵州", "53": "云南", "54": "西藏",
    "61": "陕西", "62": "甘肃", "63": "青海", "64": "宁夏", "65": "新疆",
}


def validate_province(code: str) -> str:
    """A known two-digit code (§6.2.2.2: province legality)."""
    if code not in PROVINCES:
        raise InvalidArgument("province_code is not a GB/T 2260 province code", reason="PROVINCE_INVALID")
    return code
