"""Protobuf messages to and from the bridge's JSON: snake_case fields, nulls for unset optionals (DESIGN §6)."""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor

from ..errors import InvalidArgument

MAX_TEXT = 512  # longer parameters are refused (nothing of §7 comes near it)
_INT_RANGE = {FieldDescriptor.TYPE_INT32: 2**31, FieldDescriptor.TYPE_INT64: 2**63}
_INTS = (FieldDescriptor.TYPE_INT32, FieldDescriptor.TYPE_INT64, FieldDescriptor.TYPE_SINT32,
         FieldDescriptor.TYPE_SINT64, FieldDescriptor.TYPE_UINT32, FieldDescriptor.TYPE_UINT64)
_FLOATS = (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT)
_plans: dict[str, list[tuple[str, bool, bool, Descriptor | None]]] = {}


def _plan(desc: Descriptor) -> list[tuple[str, bool, bool, Descriptor | None]]:
    """Per message type, once: (name, repeated, has presence, sub-message descriptor) of each field."""
    plan = _plans.get(desc.full_name)
    if plan is None:
        plan = [(f.name, f.is_repeated, f.has_presence and f.message_type is None,
                 f.message_type) for f in desc.fields]
        _plans[desc.full_name] = plan
    return plan


def to_dict(msg: Any) -> dict:
    """Every field by its proto (snake_case) name; an unset optional scalar is None (JSON null)."""
    out: dict[str, Any] = {}
    for name, repeated, presence, sub in _plan(msg.DESCRIPTOR):
        value = getattr(msg, name)
        if sub is not None:
            out[name] = [to_dict(v) for v in value] if repeated else to_dict(value)
        elif repeated:
            out[name] = list(value)
        elif presence and not msg.HasField(name):
            out[name] = None
        else:
            out[name] = value
    return out


def _bad(name: str, why: str) -> InvalidArgument:
    return InvalidArgument(f"parameter {name}: {why}", reason="PARAM_INVALID")


def _text(name: str, value: Any) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise _bad(name, "must be a string")
    text = str(value)
    if len(text) > MAX_TEXT or "\x00" in text:
        raise _bad(name, f"must be at most {MAX_TEXT} characters, without NUL")
    return text


def _integer(name: str, value: Any, ftype: int) -> int:
    if isinstance(value, bool):
        raise _bad(name, "must be an integer")
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, str) and len(value) < 21:
        try:
            value = int(value.strip())
        except ValueError:
            pass
    if not isinstance(value, int):
        raise _bad(name, "must be an integer")
    bound = _INT_RANGE.get(ftype, 2**63)
    if not -bound <= value < bound:
        raise _bad(name, "is out of range")
    return value


def _scalar(field: FieldDescriptor, value: Any) -> Any:
    """One parameter converted to the field's type, or 400 PARAM_INVALID."""
    name, ftype = field.name, field.type
    if ftype == FieldDescriptor.TYPE_STRING:
        return _text(name, value)
    if ftype in _INTS:
        return _integer(name, value, ftype)
    if ftype in _FLOATS:
        try:
            number = float(value) if not isinstance(value, bool) else math.nan
        except (TypeError, ValueError):
            number = math.nan
        if not math.isfinite(number):
            raise _bad(name, "must be a finite number")
        return number
    if ftype == FieldDescriptor.TYPE_BOOL:
        if isinstance(value, bool) or value in ("true", "false", "1", "0"):
            return value if isinstance(value, bool) else value in ("true", "1")
        raise _bad(name, "must be true or false")
    raise _bad(name, "is not accepted here")


def from_params(cls: type, params: dict[str, Any]) -> Any:
    """A request message from query/body parameters; unknown names are ignored, bad values are 400."""
    msg = cls()
    for field in cls.DESCRIPTOR.fields:
        if field.name not in params:
            continue
        value = params[field.name]
        if field.message_type is not None:
            if field.is_repeated and value is not None:  # a JSON body's list of objects (apply-batch)
                _messages(msg, field, value)
            continue
        if field.is_repeated:
            items = value.split(",") if isinstance(value, str) else value
            if not isinstance(items, list):
                raise _bad(field.name, "must be a list")
            getattr(msg, field.name).extend(_scalar(field, v) for v in items if v != "")
        elif value is not None:
            setattr(msg, field.name, _scalar(field, value))
    return msg


MAX_ITEMS = 1000  # objects in one repeated field; the use case sets its own, smaller limit


def _messages(msg: Any, field: FieldDescriptor, value: Any) -> None:
    """A repeated message field from a JSON list of objects, each converted like the top level."""
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _bad(field.name, "must be a list of objects")
    if len(value) > MAX_ITEMS:
        raise _bad(field.name, f"must have at most {MAX_ITEMS} items")
    cls = message_factory.GetMessageClass(field.message_type)
    getattr(msg, field.name).extend(from_params(cls, v) for v in value)
