"""Property tests (hypothesis): every structure survives encode -> decode -> encode, both twins."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from esimota.codec import _cat_tables as T
from esimota.codec import bcp

pytestmark = pytest.mark.pure_twin
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

_prim_tags = st.sampled_from([0x80, 0x81, 0x8A, 0xC0, 0xCF, 0x5F20, 0x9F70, 0x1F8F00, 0x22, 0x23])
_cons_tags = st.sampled_from([0xA5, 0x62, 0xAA, 0xAE, 0xAF, 0x7F21, 0xBF30])


def _ber_tree(depth=3):
    leaf = st.tuples(_prim_tags, st.binary(max_size=300))
    return st.recursive(leaf, lambda kids: st.tuples(_cons_tags, st.lists(kids, max_size=4)),
                        max_leaves=12).map(lambda x: [x])


@SETTINGS
@given(tree=_ber_tree())
def test_ber(codec, tree):
    raw = codec.tlv.ber_encode(tree)
    assert codec.tlv.ber_decode(raw) == tree
    assert codec.tlv.ber_encode(codec.tlv.ber_decode(raw)) == raw


@SETTINGS
@given(items=st.lists(st.tuples(st.integers(1, 0x7FFF).filter(lambda t: t != 0x7F), st.booleans(),
                                st.binary(max_size=400)), max_size=6))
def test_comprehension_tlv(codec, items):
    raw = codec.tlv.ctlv_encode(items)
    assert codec.tlv.ctlv_decode(raw) == items


@SETTINGS
@given(cla=st.integers(0, 255), ins=st.integers(0, 255), data=st.binary(max_size=600),
       le=st.none() | st.integers(1, 65536), ext=st.none() | st.booleans())
def test_apdu(codec, cla, ins, data, le, ext):
    try:
        raw = codec.tlv.apdu_build(cla, ins, 1, 2, data, le, ext)
    except ValueError:
        return  # Lc/Le beyond the chosen form
    parsed = codec.tlv.apdu_parse(raw)
    assert parsed[:6] == (cla, ins, 1, 2, data, le)
    assert codec.tlv.apdu_build(*parsed) == raw


@SETTINGS
@given(apdus=st.lists(st.binary(min_size=4, max_size=260), max_size=10), indef=st.booleans())
def test_scripts(codec, apdus, indef):
    raw = codec.script.build_command_script(apdus, indef)
    assert [v for _, v in codec.script.parse_command_script(raw)] == apdus
    assert codec.script.script_size(apdus, indef) == len(raw)
    rsp = codec.script.build_response_script(len(apdus), apdus, indef)
    assert codec.script.parse_response_script(rsp) == (len(apdus), apdus)


@SETTINGS
@given(apdus=st.lists(st.binary(min_size=4, max_size=200), min_size=1, max_size=30),
       budget=st.integers(210, 1500))
def test_chunks_fit_and_keep_order(codec, apdus, budget):
    chunks = codec.script.chunk_apdus(apdus, budget)
    assert [a for c in chunks for a in c] == apdus
    assert all(len(codec.script.build_command_script(c)) <= budget for c in chunks)
    # greedy: the next APDU would not have fitted into the previous chunk
    for prev, nxt in zip(chunks, chunks[1:]):
        assert codec.script.script_size(prev + nxt[:1]) > budget


@SETTINGS
@given(data=st.binary(max_size=700), cntr=st.integers(0, 2**40 - 1), spi=st.sampled_from([0x1619, 0x0619, 0x0201, 0x0000, 0x1211]),
       kic_byte=st.sampled_from([0x12, 0x15, 0x22]), status=st.integers(0, 255))
def test_packets(codec, data, cntr, spi, kic_byte, status):
    k1, k2 = bytes(range(16)), bytes(range(16, 32))
    kid_byte = 0x1A if kic_byte != 0x15 else 0x15
    raw = codec.packet.wrap_command(k1, k2, b"EWA", cntr, data, spi, kic_byte, kid_byte)
    pkt = codec.packet.unwrap_command(k1, k2, raw)
    assert (pkt.secured_data, pkt.cntr, pkt.tar, pkt.spi) == (data, cntr, b"EWA", spi)
    rsp = codec.packet.wrap_response(k1, k2, b"EWA", cntr, status, data, spi, kic_byte, kid_byte)
    r = codec.packet.unwrap_response(k1, k2, rsp, spi, kic_byte, kid_byte, tar=b"EWA", cntr=cntr)
    assert (r.additional_data, r.status) == (data, status)


@SETTINGS
@given(eid=st.binary(min_size=16, max_size=16), counter=st.integers(0, 2**40 - 1),
       size=st.integers(0, 65535), imei=st.none() | st.binary(min_size=8, max_size=8),
       text=st.none() | st.text(max_size=30))
def test_frames(codec, eid, counter, size, imei, text):
    kid = bytes(16)
    hello = codec.frames.encode_hello(kid, eid, bytes(10), counter, size, bcp.HELLO_RESUME, imei)
    ftype, f = codec.frames.decode_frame(hello, kid=kid)
    assert (ftype, f["eid"], f["counter"], f["buffer_size"], f["imei"]) == (bcp.HELLO, eid, counter, size, imei)
    if text is not None and len(text.encode()) > 127:
        return
    report = codec.frames.encode_report(kid, eid, bytes(10), counter, bcp.REPORT_DATA_ERROR, text)
    assert codec.frames.decode_frame(report, kid=kid)[1]["diagnostic"] == text


_names = st.one_of(st.sampled_from(sorted(T.DEVICE_CODES)), st.integers(0x30, 0x7F))
_ipv4 = st.ip_addresses(v=4).map(str)
_ipv6 = st.ip_addresses(v=6).map(lambda a: a.compressed)
_apn = st.lists(st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=20), min_size=1, max_size=4).map(".".join)


@st.composite
def _open_channel(draw):
    fields = {"command": "open_channel",
              "command_details": {"command_number": draw(st.integers(0, 255)), "type_of_command": 0x40,
                                  "command_qualifier": draw(st.integers(0, 255))},
              "device_identities": {"source_device_identity": "uicc", "destination_device_identity": draw(_names)},
              "alpha_identifier": draw(st.text(alphabet=T.GSM_ALPHABET, max_size=20)),
              "bearer_description": {"bearer_type": draw(st.sampled_from(["default", "gprs", "eutran", 0x70])),
                                     "bearer_parameters": draw(st.binary(max_size=8)).hex()},
              "buffer_size": draw(st.integers(0, 65535)), "network_access_name": draw(_apn),
              "local_address": draw(st.none() | st.builds(lambda a: {"type_of_address": "ipv6", "address": a}, _ipv6)),
              "user_login": {"data_coding_scheme": 4, "text": draw(st.text(alphabet=st.characters(max_codepoint=255), max_size=10))},
              "user_password": {"data_coding_scheme": 8, "text": draw(st.text(max_size=10))},
              "uicc_terminal_interface_transport_level": {"transport_protocol_type": draw(st.sampled_from(sorted(T.TRANSPORT_CODES))),
                                                          "port_number": draw(st.integers(0, 65535))},
              "data_destination_address": {"type_of_address": "ipv4", "address": draw(_ipv4)}}
    names = [k for k in fields if k != "command"]
    fields["comprehension_required"] = draw(st.lists(st.sampled_from(names), unique=True).map(lambda x: [n for n in names if n in x]))
    return fields


@SETTINGS
@given(fields=_open_channel())
def test_open_channel(codec, fields):
    raw = codec.cat.encode_proactive(fields)
    assert codec.cat.decode_proactive(raw) == fields
    assert codec.cat.encode_proactive(codec.cat.decode_proactive(raw)) == raw


@SETTINGS
@given(statuses=st.lists(st.builds(lambda c, l, f: {"channel_id": c, "link_established": l, "status_bits": 0, "further_info": f},
                                   st.integers(1, 7), st.booleans(), st.integers(0, 255)), min_size=1, max_size=3),
       events=st.lists(st.sampled_from(["data_available", "channel_status", 0x20]), max_size=3),
       length=st.integers(0, 255))
def test_envelope_and_terminal_response(codec, statuses, events, length):
    env = {"envelope": "event_download", "event_list": events,
           "device_identities": {"source_device_identity": "terminal", "destination_device_identity": "uicc"},
           "channel_status": statuses[0], "channel_data_length": length}
    env["comprehension_required"] = ["event_list", "device_identities"]
    assert codec.cat.decode_envelope(codec.cat.encode_envelope(env)) == env
    tr = {"command": "get_channel_status",
          "command_details": {"command_number": 1, "type_of_command": 0x44, "command_qualifier": 0},
          "device_identities": {"source_device_identity": "terminal", "destination_device_identity": "uicc"},
          "result": {"general_result": 0, "additional_information": ""}}
    for i, s in enumerate(statuses):  # one Channel status per open channel: _2, _3 keys
        tr["channel_status" if i == 0 else f"channel_status_{i + 1}"] = s
    tr["comprehension_required"] = [k for k in tr if k not in ("command",)][:3]
    assert codec.cat.decode_terminal_response(codec.cat.encode_terminal_response(tr)) == tr
