"""Result records of the codec: named tuples shared by the compiled core and its twin, and the
pure twin's Fields (decoded CAT structures)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class CommandPacket(NamedTuple):
    """An opened TS 102 225 command packet (§5.1.1)."""

    spi: int
    kic: int
    kid: int
    tar: bytes
    cntr: int
    pcntr: int
    secured_data: bytes


class ResponsePacket(NamedTuple):
    """An opened TS 102 225 response packet (§5.2.1)."""

    tar: bytes
    cntr: int
    pcntr: int
    status: int
    additional_data: bytes


class Fields(Mapping):
    """Named fields of a decoded CAT structure (TS 102 223): a read-only mapping, keys in wire order.

    What a card or terminal sent is a fact, so its decoded form cannot be changed in place: an
    element that repeats from command to command may be one shared record. `to_dict()` gives
    plain dicts and lists (to change, or for JSON); `Fields(mapping)` builds one, and the encoders
    take any mapping. Equal to any mapping with the same items, like a dict (order aside).
    The compiled codec has its own type with the same behaviour (esimota._ext.cat.Fields).
    """

    __slots__ = ("_d",)

    def __init__(self, data=()):
        try:
            self._d  # noqa: B018 -- set once: a second __init__ would change a shared record
        except AttributeError:
            object.__setattr__(self, "_d", dict(data))
        else:
            raise TypeError("Fields is read-only")

    def __getitem__(self, key):
        return self._d[key]

    def __iter__(self):
        return iter(self._d)

    def __len__(self):
        return len(self._d)

    def __contains__(self, key):
        return key in self._d

    def get(self, key, default=None):
        return self._d.get(key, default)

    def keys(self):
        return self._d.keys()

    def items(self):
        return self._d.items()

    def values(self):
        return self._d.values()

    def __eq__(self, other):
        if isinstance(other, Fields):
            return self._d == other._d
        if not isinstance(other, Mapping):
            return NotImplemented
        return len(self._d) == len(other) and all(k in other and other[k] == v for k, v in self._d.items())

    __hash__ = None  # type: ignore[assignment]

    def __setattr__(self, name, value):
        raise AttributeError("Fields is read-only")

    def __repr__(self):
        return f"Fields({self._d!r})"

    def __reduce__(self):
        return Fields, (self._d,)

    def to_dict(self) -> dict:
        """Plain dicts and lists all the way down (a copy: changing it changes nothing here)."""
        return {k: plain(v) for k, v in self._d.items()}


def plain(value):
    """A decoded value with every Fields (either implementation's) turned into a dict, lists copied."""
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


def wrap(data: dict) -> Fields:
    """A Fields around `data` itself (the twin's own fresh dicts: no copy)."""
    out = _new_fields(Fields)
    _set_data(out, data)
    return out


_new_fields = object.__new__
_set_data = Fields._d.__set__  # type: ignore[attr-defined]
