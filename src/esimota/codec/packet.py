"""ETSI TS 102 225 secured command and response packets (DESIGN §5.3): facade.

Public API (keys are bytes; algorithms follow the KIc/KID bytes: AES-CBC/AES-CMAC, 3DES):
    wrap_command(kic, kid, tar, cntr, secured_data, spi=0x1619, kic_byte=0x12, kid_byte=0x12) -> bytes
    unwrap_command(kic, kid, buf, last_cntr=None) -> CommandPacket
        (spi, kic, kid, tar, cntr, pcntr, secured_data); BadMacError, BadPaddingError,
        StaleCounterError (cntr <= last_cntr), TruncatedError, LengthError
    wrap_response(kic, kid, tar, cntr, status, additional_data, spi=..., kic_byte=..., kid_byte=...,
                  udh=b"") -> bytes                       udh: SMS-PP header covered by the CC
    unwrap_response(kic, kid, buf, spi=..., kic_byte=..., kid_byte=..., udh=b"", tar=None,
                    cntr=None) -> ResponsePacket (tar, cntr, pcntr, status, additional_data)
    max_secured_data(packet_budget, spi=..., kic_byte=...) -> int
    peek_command(buf) -> dict      the clear header of a command packet, no keys needed
"""

from __future__ import annotations

from esimota._impl import load
from esimota.codec._types import CommandPacket, ResponsePacket
from esimota.codec.bcp import TAR_WRITE_APPLET  # noqa: F401 (the facade's API; defined once in codec/bcp.py)
from esimota.errors import TruncatedError

IMPL = load("esimota._ext.packet", "esimota.codec._packet_py")

SPI_BCP, KIC_BCP, KID_BCP = 0x1619, 0x12, 0x12

#: TS 102 225 table 5.2 response status codes
STATUS = {0x00: "por_ok", 0x01: "rc_cc_ds_failed", 0x02: "cntr_low", 0x03: "cntr_high",
          0x04: "cntr_blocked", 0x05: "ciphering_error", 0x06: "security_error",
          0x07: "insufficient_memory", 0x08: "more_time", 0x09: "tar_unknown",
          0x0A: "insufficient_security_level"}

wrap_command = IMPL.wrap_command
unwrap_command = IMPL.unwrap_command
wrap_response = IMPL.wrap_response
unwrap_response = IMPL.unwrap_response
max_secured_data = IMPL.max_secured_data

__all__ = ["CommandPacket", "ResponsePacket", "wrap_command", "unwrap_command", "wrap_response",
           "unwrap_response", "max_secured_data", "peek_command", "STATUS"]


def peek_command(buf) -> dict:
    """CPL, CHL, SPI, KIc, KID and TAR of a command packet: the part sent in the clear."""
    buf = bytes(buf)
    if len(buf) < 10:
        raise TruncatedError("command packet header truncated", len(buf))
    return {"cpl": (buf[0] << 8) | buf[1], "chl": buf[2], "spi": (buf[3] << 8) | buf[4],
            "kic": buf[5], "kid": buf[6], "tar": buf[7:10]}
