"""The exception catalogue of §8 (tables 3–6, R22–R24): ONE table, kind → class, severity, deadline, 现象."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from ..errors import InvalidArgument

CLASSES = ("apply", "write", "interface", "terminal")  # §8.1: 申请 / 写卡 / 接口 / 终端异常
SEVERITIES = ("general", "severe")                    # §8.1: 一般异常 / 严重异常
CLASS_ZH = {"apply": "申请异常", "write": "写卡异常", "interface": "接口异常", "terminal": "终端异常"}
# §8.3.1: a severe exception is reported within 1 h and closed with a report within 24 h (R24).
REPORT_WITHIN = dt.timedelta(hours=1)
CLOSE_REPORT_WITHIN = dt.timedelta(hours=24)
_MIN = dt.timedelta(minutes=1)
_H = dt.timedelta(hours=1)
IMMEDIATE = dt.timedelta(0)  # 即时处理: handled by the partner on the spot, closed when opened


@dataclass(frozen=True)
class ExceptionKind:
    """One row of tables 3–6 as the platform observes it."""

    kind: str
    cls: str
    severity: str
    deadline: dt.timedelta
    phenomenon: str   # the standard's 异常现象, verbatim
    clause: str       # where it is listed
    auto_close: bool = False  # 即时处理 rows: nothing is left for the operator to do

    @property
    def severe(self) -> bool:
        return self.severity == "severe"


def _k(kind, cls, severity, deadline, phenomenon, clause, auto_close=False) -> ExceptionKind:
    return ExceptionKind(kind, cls, severity, deadline, phenomenon, clause, auto_close)


CATALOGUE: dict[str, ExceptionKind] = {k.kind: k for k in (
    # table 3 — 申请异常
    _k("APPLY_INVALID", "apply", "general", IMMEDIATE, "写卡申请校验失败，返回参数错误", "§8.2.1 表3", True),
    _k("ALREADY_WRITTEN", "apply", "general", IMMEDIATE, "申请失败，提示运营号已被写入", "§8.2.1 表3", True),
    _k("NO_RESOURCE", "apply", "general", 2 * _H, "自动分配写卡时，提示无可用省份资源", "§8.2.1 表3"),
    _k("NO_RESOURCE_MULTI", "apply", "severe", 4 * _H, "自动分配写卡时，提示无可用省份资源（多省份无资源）",
       "§8.2.1 表3"),
    # table 4 — 写卡异常
    _k("STUCK_WRITING", "write", "general", 30 * _MIN, "eSIM 卡一直处于写卡中状态", "§8.2.2 表4"),
    _k("STUCK_WRITING_SEVERE", "write", "severe", _H, "eSIM 卡一直处于写卡中状态（超过 1 h）", "§8.2.2 表4"),
    _k("CHIP_FAULT", "write", "general", 24 * _H, "写卡失败，提示芯片故障", "§8.2.2 表4"),
    _k("NUMBER_NOT_COMMUNICATING", "write", "general", _H, "写卡完成后，运营号无法通信", "§8.2.2 表4"),
    # a read-back mismatch: 写卡数据错误, the first cause the row 运营号无法通信 names (≤ 1 h)
    _k("DATA_ERROR", "write", "general", _H, "写卡完成后，运营号无法通信（写卡数据错误）", "§8.2.2 表4"),
    _k("TEMP_NUMBER_EXPIRED", "write", "general", 24 * _H, "临时号码超期，无法发起写卡", "§8.2.2 表4"),
    # table 5 — 接口异常
    _k("TOKEN_FAILURES", "interface", "general", IMMEDIATE, "接口调用提示 TOKEN 无效或过期", "§8.2.3 表5", True),
    _k("NOT_WHITELISTED", "interface", "general", 30 * _MIN, "接口调用超时, 无响应（服务端 IP 未完成报白）",
       "§8.2.3 表5"),
    _k("INTERFACE_ERRORS", "interface", "general", 30 * _MIN, "接口调用超时, 无响应", "§8.2.3 表5"),
    _k("INTERFACE_ERRORS_SEVERE", "interface", "severe", _H, "接口调用超时, 无响应（大面积）", "§8.2.3 表5"),
    _k("CALLBACK_FAILED", "interface", "general", _H, "回调信息接收失败", "§8.2.3 表5"),
    # table 6 — 终端异常
    _k("NO_TEST_FLOW", "terminal", "general", _H, "eSIM 卡片上电后无法连接网络（临时号码测试流量耗尽）", "§8.2.4 表6"),
    _k("CHANNEL_PROTOCOL_ERROR", "terminal", "general", 24 * _H, "终端模组无法与 eSIM 芯片交互", "§8.2.4 表6"),
    # a REPORT before every chunk of the script was acknowledged (DESIGN §5.4 step 5): CLOSE 04, stays 写卡中
    _k("EARLY_REPORT", "terminal", "general", 24 * _H, "终端模组无法与 eSIM 芯片交互（写卡未完成即上报结果）",
       "§8.2.4 表6"),
    _k("CHANNEL_AUTH_FAILED", "terminal", "general", 24 * _H, "终端模组无法与 eSIM 芯片交互（MAC 或计数器校验失败）",
       "§8.2.4 表6"),
    # the regulator's blacklist (R32): a card blacklisted after its apply powers on and is refused
    _k("BLACKLISTED_AT_HELLO", "terminal", "severe", 24 * _H, "黑名单卡片或终端请求写卡（已拒绝）", "R32"),
)}


def base_kind(kind: str) -> str:
    """The catalogue key of a stored kind: subject suffixes (`NO_RESOURCE:44`) and case dropped."""
    return kind.split(":", 1)[0].upper()


def lookup(kind: str) -> ExceptionKind:
    """The catalogue row of a stored or requested kind; unknown kinds are a typed error."""
    found = CATALOGUE.get(base_kind(kind))
    if found is None:
        raise InvalidArgument(f"unknown exception kind {kind!r}", reason="EXCEPTION_KIND_UNKNOWN")
    return found


def with_subject(kind: str, subject: str | None) -> str:
    """A chip-less kind made specific to what it is about (a province, a client, an address)."""
    return f"{lookup(kind).kind}:{subject}" if subject else lookup(kind).kind


def check_class(cls: str) -> str:
    if cls not in CLASSES:
        raise InvalidArgument(f"class must be one of {', '.join(CLASSES)}", reason="EXCEPTION_CLASS_INVALID")
    return cls
