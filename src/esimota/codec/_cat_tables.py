"""Names of the CAT codes (ETSI TS 102 223 §8, §9), shared by the compiled decoder and its twin."""

from __future__ import annotations

import re

#: TS 102 223 §9.4 type of command
COMMAND_TYPES = {0x01: "refresh", 0x05: "set_up_event_list", 0x40: "open_channel",
                 0x41: "close_channel", 0x42: "receive_data", 0x43: "send_data",
                 0x44: "get_channel_status"}
#: TS 102 223 §9.3 COMPREHENSION-TLV tags of the elements the BIP set uses
ELEMENTS = {0x01: "command_details", 0x02: "device_identities", 0x03: "result",
            0x04: "duration", 0x05: "alpha_identifier", 0x06: "address", 0x0B: "sms_tpdu",
            0x0D: "text_string", 0x12: "file_list", 0x19: "event_list",
            0x1E: "icon_identifier", 0x2F: "aid", 0x35: "bearer_description",
            0x36: "channel_data", 0x37: "channel_data_length", 0x38: "channel_status",
            0x39: "buffer_size", 0x3C: "uicc_terminal_interface_transport_level",
            0x3E: "other_address", 0x47: "network_access_name"}
#: OPEN CHANNEL (TS 102 223 §6.6.27) names its two Other address and Text string elements by place
OPEN_CHANNEL = 0x40
TAG_TRANSPORT, TAG_OTHER_ADDRESS, TAG_TEXT = 0x3C, 0x3E, 0x0D
LOCAL_ADDRESS, DESTINATION_ADDRESS = "local_address", "data_destination_address"
USER_LOGIN, USER_PASSWORD = "user_login", "user_password"
ELEMENT_TAGS = {name: tag for tag, name in ELEMENTS.items()}
ELEMENT_TAGS.update({LOCAL_ADDRESS: 0x3E, DESTINATION_ADDRESS: 0x3E, USER_LOGIN: 0x0D,
                     USER_PASSWORD: 0x0D})
#: TS 102 223 §8.7 device identities
DEVICES = {0x01: "keypad", 0x02: "display", 0x03: "earpiece", 0x81: "uicc", 0x82: "terminal",
           0x83: "network"}
DEVICES.update({0x10 + i: f"card_reader_{i}" for i in range(8)})
DEVICES.update({0x20 + i: f"channel_{i}" for i in range(1, 8)})
#: TS 102 223 §8.25 event list
EVENTS = {0x00: "mt_call", 0x01: "call_connected", 0x02: "call_disconnected",
          0x03: "location_status", 0x04: "user_activity", 0x05: "idle_screen_available",
          0x06: "card_reader_status", 0x07: "language_selection", 0x08: "browser_termination",
          0x09: "data_available", 0x0A: "channel_status"}
#: TS 102 223 §8.52 bearer type
BEARERS = {0x01: "csd", 0x02: "gprs", 0x03: "default", 0x04: "local_link", 0x05: "bluetooth",
           0x06: "irda", 0x07: "rs232", 0x08: "cdma2000", 0x09: "utran_packet_extended",
           0x0A: "i_wlan", 0x0B: "eutran", 0x0C: "ng_ran"}
#: TS 102 223 §8.59 transport protocol type
TRANSPORTS = {0x01: "udp_client_remote", 0x02: "tcp_client_remote", 0x03: "tcp_server",
              0x04: "udp_client_local", 0x05: "tcp_client_local", 0x06: "direct"}
#: TS 102 223 §8.58 type of address
ADDRESS_TYPES = {0x21: "ipv4", 0x57: "ipv6"}
ADDRESS_SIZES = {0x21: 4, 0x57: 16}
#: reverse maps for the encoder
DEVICE_CODES = {v: k for k, v in DEVICES.items()}
EVENT_CODES = {v: k for k, v in EVENTS.items()}
BEARER_CODES = {v: k for k, v in BEARERS.items()}
TRANSPORT_CODES = {v: k for k, v in TRANSPORTS.items()}
ADDRESS_CODES = {v: k for k, v in ADDRESS_TYPES.items()}
COMMAND_CODES = {v: k for k, v in COMMAND_TYPES.items()}
#: envelopes (TS 102 223 §9.1 BER-TLV tags)
ENVELOPES = {0xD1: "sms_pp_download", 0xD6: "event_download"}
ENVELOPE_CODES = {v: k for k, v in ENVELOPES.items()}
PROACTIVE_TAG = 0xD0
#: keys of a decoded message that are not elements
META_KEYS = ("command", "envelope", "comprehension_required")
#: GSM 03.38 default alphabet, unpacked 8-bit form (TS 102 223 §8.2 alpha identifier)
GSM_ALPHABET = ("@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
                "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà")
GSM_CODES = {c: i for i, c in enumerate(GSM_ALPHABET)}
#: BCD digits of an Address (TS 102 223 §8.1, TS 31.102 extended BCD); 'F' is the filler
BCD_DIGITS = "0123456789*#pwe"
_SUFFIX = re.compile(r"_\d+$")
_RAW = re.compile(r"tag_([0-9a-f]{2,4})")

assert len(GSM_ALPHABET) == 128


def named(table, code):
    """The name of `code` in `table`, or the code itself when the table has none."""
    return table.get(code, code)


def code_of(table, value, what):
    """The code of a name (or an int passed through); ValueError names what was wrong."""
    if isinstance(value, int):
        if 0 <= value <= 255:
            return value
    elif value in table:
        return table[value]
    raise ValueError(f"unknown {what}: {value!r}")


def element_name(tag):
    """Default key of an element: its spec name, or tag_XX for tags this codec does not name."""
    name = ELEMENTS.get(tag)
    return name if name is not None else f"tag_{tag:02x}"


def element_tag(name):
    """Inverse of the naming: spec name, positional name, tag_XX, or any of these with _2, _3..."""
    tag = ELEMENT_TAGS.get(name)
    if tag is not None:
        return tag
    raw = _RAW.fullmatch(name)
    if raw:
        return int(raw.group(1), 16)
    base = _SUFFIX.sub("", name)
    if base != name:
        return element_tag(base)
    raise ValueError(f"unknown element: {name!r}")
