"""BIP proactive commands, terminal responses and envelopes (TS 102 223) as named fields: facade.

Public API (decoded dicts: "command"/"envelope", the elements by spec name in wire order,
"comprehension_required" = names with the CR bit; encode(decode(x)) == x):
    decode_proactive(buf) -> dict            encode_proactive(fields) -> bytes   ('D0')
    decode_terminal_response(buf) -> dict    encode_terminal_response(fields) -> bytes
    decode_envelope(buf) -> dict             encode_envelope(fields) -> bytes    ('D6', 'D1')
Element names: command_details, device_identities, result, duration, alpha_identifier, address,
text_string (user_login/user_password in OPEN CHANNEL), event_list, bearer_description,
channel_data, channel_data_length, channel_status, buffer_size,
uicc_terminal_interface_transport_level, other_address (local_address/data_destination_address
in OPEN CHANNEL), network_access_name; others as tag_XX with hex values.
"""

from __future__ import annotations

from esimota._impl import load

IMPL = load("esimota._ext.cat", "esimota.codec._cat_py")

decode_proactive = IMPL.decode_proactive
encode_proactive = IMPL.encode_proactive
decode_terminal_response = IMPL.decode_terminal_response
encode_terminal_response = IMPL.encode_terminal_response
decode_envelope = IMPL.decode_envelope
encode_envelope = IMPL.encode_envelope
