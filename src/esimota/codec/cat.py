"""BIP proactive commands, terminal responses and envelopes (TS 102 223) as named fields: facade.

Public API (decoded as Fields: a read-only mapping, equal to a dict with the same items, `to_dict()`
for plain dicts and lists; keys "command"/"envelope", the elements by spec name in wire order,
"comprehension_required" = names with the CR bit; structured element values are Fields too; the
encoders take any mapping; encode(decode(x)) == x):
    decode_proactive(buf) -> Fields          encode_proactive(fields) -> bytes   ('D0')
    decode_terminal_response(buf) -> Fields  encode_terminal_response(fields) -> bytes
    decode_envelope(buf) -> Fields           encode_envelope(fields) -> bytes    ('D6', 'D1')
    Fields(mapping=()) -> Fields
Element names: command_details, device_identities, result, duration, alpha_identifier, address,
text_string (user_login/user_password in OPEN CHANNEL), event_list, bearer_description,
channel_data, channel_data_length, channel_status, buffer_size,
uicc_terminal_interface_transport_level, other_address (local_address/data_destination_address
in OPEN CHANNEL), network_access_name; others as tag_XX with hex values.
"""

from __future__ import annotations

from esimota._impl import load

IMPL = load("esimota._ext.cat", "esimota.codec._cat_py")

Fields = IMPL.Fields
decode_proactive = IMPL.decode_proactive
encode_proactive = IMPL.encode_proactive
decode_terminal_response = IMPL.decode_terminal_response
encode_terminal_response = IMPL.encode_terminal_response
decode_envelope = IMPL.decode_envelope
encode_envelope = IMPL.encode_envelope
