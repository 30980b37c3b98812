"""SMS-PP carriage of secured packets (3GPP TS 23.040 SMS-DELIVER, TS 31.115): find the packet.

Public API:
    parse_sms_deliver(tpdu, strict=True) -> dict   originating_address, ton_npi, protocol_identifier,
                                      data_coding_scheme, service_centre_time_stamp, udh, user_data
    split_udh(user_data) -> (udh, rest)
"""

from __future__ import annotations

from esimota.codec.ids import swapped_bcd_digits
from esimota.errors import BadValueError, LengthError, TruncatedError

#: TS 31.115 §4: user-data header IEIs of a command packet (70) and a response packet (71)
IEI_COMMAND_PACKET, IEI_RESPONSE_PACKET = 0x70, 0x71


def split_udh(user_data: bytes) -> tuple[bytes, bytes]:
    """(UDHL + header, the rest) of user data that starts with a user-data header."""
    if not user_data:
        raise TruncatedError("user-data header missing", 0)
    end = 1 + user_data[0]
    if end > len(user_data):
        raise TruncatedError("user-data header truncated", 0)
    return bytes(user_data[:end]), bytes(user_data[end:])


def parse_sms_deliver(tpdu: bytes, strict: bool = True) -> dict:
    """SMS-DELIVER TPDU (TS 23.040 §9.2.2.1) with 8-bit user data -> its fields.

    `strict=False` takes every byte after TP-UDL as user data whatever TP-UDL says (some
    encoders, pySim's among them, count only the user-data header there).
    """
    tpdu = bytes(tpdu)
    if len(tpdu) < 2:
        raise TruncatedError("TPDU truncated", len(tpdu))
    if tpdu[0] & 0x03 != 0:
        raise BadValueError("not an SMS-DELIVER", 0, None)
    digits = tpdu[1]
    pos = 3 + (digits + 1) // 2
    if pos + 10 > len(tpdu):
        raise TruncatedError("TPDU header truncated", len(tpdu))
    fields = {"originating_address": swapped_bcd_digits(tpdu[3:pos])[:digits], "ton_npi": tpdu[2],
              "protocol_identifier": tpdu[pos], "data_coding_scheme": tpdu[pos + 1],
              "service_centre_time_stamp": tpdu[pos + 2:pos + 9].hex()}
    udl = tpdu[pos + 9]
    user_data = tpdu[pos + 10:]
    if strict and len(user_data) != udl:
        raise LengthError("user data length disagrees", pos + 9, None)
    udh, rest = split_udh(user_data) if tpdu[0] & 0x40 else (b"", user_data)
    fields["udh"], fields["user_data"] = udh, rest
    return fields
