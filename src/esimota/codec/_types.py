"""Result records shared by the compiled codec and its pure twin (plain named tuples)."""

from __future__ import annotations

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
