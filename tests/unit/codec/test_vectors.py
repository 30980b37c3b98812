"""Every pySim vector (tests/vectors/pysim.json): decoded to its facts, re-encoded to its bytes."""

from __future__ import annotations

import pytest

from esimota.codec import sms, tlv as tlv_facade
from esimota.errors import BadMacError, BadValueError, LengthError

from .conftest import vector_id, vectors

pytestmark = pytest.mark.pure_twin


@pytest.mark.parametrize("v", vectors("ber_tlv_ie", "ber_tlv_ie_scp81_trigger"), ids=vector_id)
def test_ber_tlv_elements(codec, v):
    raw = bytes.fromhex(v["hex"])
    (tag, value), = codec.tlv.ber_decode(raw)
    f = v["facts"]
    assert (tag, value.hex()) == (f["tag"], f["value"])
    if "key_identifier" in f:  # GlobalPlatform key information data 'C0'
        assert list(value) == [f["key_identifier"], f["key_version_number"], f["key_type"], f["key_length"]]
    if "text" in f:
        assert value.decode() == f["text"]
    if "psk_id" in f:  # SCP81 security parameters: PSK id length + id ... KID last
        assert value[1:1 + value[0]].hex() == f["psk_id"] and value[-1] == f["kid"]
    assert codec.tlv.ber_encode([(tag, value)]) == raw


@pytest.mark.parametrize("v", vectors("ber_tlv_fcp_uicc"), ids=vector_id)
def test_fcp_templates(codec, v):
    raw = bytes.fromhex(v["hex"])
    (tag, children), = codec.tlv.ber_decode(raw)
    assert tag == v["facts"]["tag"]
    flat = {}
    for t, val in children:
        if isinstance(val, list):
            flat.update({f"{t:02x}/{ct:02x}": cv.hex() for ct, cv in val})
        else:
            flat.setdefault(f"{t:02x}", val.hex())
    for key, expected in v["facts"]["children"].items():
        assert flat[key] == expected, key
    assert codec.tlv.ber_encode([(tag, children)]) == raw


@pytest.mark.parametrize("v", vectors("ber_tlv_tag", "ber_tlv"), ids=vector_id)
def test_ber_tags(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    tag, pos = codec.tlv.ber_read_tag(raw)
    assert tlv_facade.tag_info(tag) == (f["class"], f["constructed"], f["number"])
    if v["kind"] == "ber_tlv":
        tag, value, pos = codec.tlv.ber_decode_one(raw)
        assert value.hex() == f["value"]
    assert raw[pos:].hex() == f["remainder"]
    assert codec.tlv.ber_encode_tag(tag) == raw[:len(raw) - len(f["remainder"]) // 2][:len(codec.tlv.ber_encode_tag(tag))]


@pytest.mark.parametrize("v", vectors("ber_tlv_len"), ids=vector_id)
def test_ber_lengths(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    if f["direction"] == "encode":
        assert codec.tlv.ber_encode_length(f["length"]) == raw
    else:
        length, pos = codec.tlv.ber_read_length(raw)
        assert (length, raw[pos:].hex()) == (f["length"], f["remainder"])


@pytest.mark.parametrize("v", vectors("dgi_len"), ids=vector_id)
def test_dgi_lengths(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    if "expected" in f:
        with pytest.raises(BadValueError):
            codec.tlv.dgi_encode_length(f["length"])
    elif f["direction"] == "encode":
        assert codec.tlv.dgi_encode_length(f["length"]) == raw
    else:
        length, pos = codec.tlv.dgi_read_length(raw)
        assert (length, raw[pos:].hex()) == (f["length"], f["remainder"])


@pytest.mark.parametrize("v", vectors("comprehension_tlv_tag"), ids=vector_id)
def test_comprehension_tags(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    if f["direction"] == "encode":
        assert codec.tlv.ctlv_encode_tag(f["tag"], f["cr"]) == raw
    else:
        tag, cr, pos = codec.tlv.ctlv_read_tag(raw)
        assert (tag, cr, raw[pos:].hex()) == (f["tag"], f["cr"], f["remainder"])


@pytest.mark.parametrize("v", vectors("comprehension_tlv_ie"), ids=vector_id)
def test_comprehension_elements(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    (tag, cr, value), = codec.tlv.ctlv_decode(raw)
    assert (tag, cr, value.hex()) == (f["tag"], f["cr"], f["value"])
    assert codec.cat.decode_value(tag, value, 2) == f["element"]
    assert codec.cat.encode_value(tag, f["element"]) == value
    assert codec.tlv.ctlv_encode([(tag, cr, value)]) == raw


@pytest.mark.parametrize("v", vectors("compact_tlv"), ids=vector_id)
def test_compact_tlv(codec, v):
    raw = bytes.fromhex(v["hex"])
    items = codec.tlv.compact_decode(raw)  # historical bytes of an ATR
    assert [{"tag": t, "value": val.hex()} for t, val in items] == v["facts"]["children"]
    assert codec.tlv.compact_encode(items) == raw


@pytest.mark.parametrize("v", vectors("c_apdu_case"), ids=vector_id)
def test_command_apdus(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    cla, ins, p1, p2, data, le, ext = codec.tlv.apdu_parse(raw)
    case = (3 if data else 1) + (le is not None)
    assert (case, len(data), le or 0, data.hex()) == (f["case"], f["lc"], f["le"], f["data"])
    # Lc=256 behind P3=00 is the T=0 convention pySim uses; it is kept as a short form
    assert codec.tlv.apdu_build(cla, ins, p1, p2, data, le, ext) == raw


@pytest.mark.parametrize("v", vectors("apdu_pair"), ids=vector_id)
def test_apdu_pairs(codec, v):
    raw, f = bytes.fromhex(v["hex"]), v["facts"]
    if f.get("malformed"):  # Lc disagrees with the data that follows: refused, at P3
        with pytest.raises(LengthError) as err:
            codec.tlv.apdu_parse(raw)
        assert err.value.offset == 4
        return
    cla, ins, p1, p2, data, le, ext = codec.tlv.apdu_parse(raw)
    assert (cla, ins, p1, p2, len(data)) == (f["cla"], f["ins"], f["p1"], f["p2"], f["lc"])
    rdata, sw = codec.tlv.rapdu_parse(bytes.fromhex(v["response"]))
    assert (rdata.hex(), sw) == (f["response_data"], f["sw"])
    assert codec.tlv.apdu_build(cla, ins, p1, p2, data, le, ext) == raw
    assert codec.tlv.rapdu_build(rdata, sw).hex() == v["response"]


def _keys(v):
    return bytes.fromhex(v["keys"]["kic"]), bytes.fromhex(v["keys"]["kid"])


def _command_round_trip(codec, v, raw):
    kic, kid = _keys(v)
    pkt = codec.packet.unwrap_command(kic, kid, raw)
    assert codec.script.parse_compact(pkt.secured_data) == [bytes.fromhex(a) for a in v["facts"]["apdus"]]
    assert (pkt.tar.hex(), pkt.cntr) == (v["facts"]["tar"], 0)
    again = codec.packet.wrap_command(kic, kid, pkt.tar, pkt.cntr, pkt.secured_data, pkt.spi, pkt.kic, pkt.kid)
    assert again == raw


@pytest.mark.parametrize("v", vectors("ota_scp80_sms_command"), ids=vector_id)
def test_command_packets(codec, v):
    raw = bytes.fromhex(v["hex"])
    if v["facts"]["cpl_missing"]:  # pySim leaves CPL out when not ciphering; we write it
        raw = len(raw).to_bytes(2, "big") + raw
    _command_round_trip(codec, v, raw)


@pytest.mark.parametrize("v", vectors("ota_scp80_sms_deliver_tpdu"), ids=vector_id)
def test_sms_deliver_carries_the_command_packet(codec, v):
    f = v["facts"]
    raw = bytes.fromhex(v["hex"])
    with pytest.raises(LengthError):  # pySim's TP-UDL counts only the header: refused when strict
        sms.parse_sms_deliver(raw)
    fields = sms.parse_sms_deliver(raw, strict=not f["udl_counts_header_only"])
    assert fields["originating_address"] == f["originating_address"]
    assert (fields["protocol_identifier"], fields["data_coding_scheme"]) == (f["protocol_identifier"], f["data_coding_scheme"])
    assert fields["udh"].hex() == f["udh"]
    _command_round_trip(codec, v, fields["user_data"])


@pytest.mark.parametrize("v", [x for x in vectors("ota_scp80_sms_por") if "keys" in x], ids=vector_id)
def test_response_packets(codec, v):
    raw = bytes.fromhex(v["hex"])
    udh, body = raw[:3], raw[3:]  # SMS-PP dialect: the PoR's CC also covers the UDH 02 71 00
    kic, kid = _keys(v)
    por = v["por"]
    r = codec.packet.unwrap_response(kic, kid, body, por["spi"], por["kic_byte"], por["kid_byte"], udh)
    f = v["facts"]
    count, sw, data = codec.script.parse_compact_response(r.additional_data)
    assert (r.status, count, sw, data.hex()) == (f["status"], f["number_of_commands"], f["last_sw"], f["last_data"])
    again = codec.packet.wrap_response(kic, kid, r.tar, r.cntr, r.status, r.additional_data,
                                       por["spi"], por["kic_byte"], por["kid_byte"], udh)
    assert again == body


@pytest.mark.parametrize("v", vectors("ota_scp80_sms_por_negative"), ids=vector_id)
def test_negative_response_is_rejected(codec, v):
    raw = bytes.fromhex(v["hex"])
    kic, kid = _keys(v)
    por = v["por"]
    with pytest.raises(BadMacError) as err:
        codec.packet.unwrap_response(kic, kid, raw[3:], por["spi"], por["kic_byte"], por["kid_byte"], raw[:3])
    assert err.value.offset == 13


@pytest.mark.parametrize("v", [x for x in vectors("ota_scp80_sms_por") if "keys" not in x], ids=vector_id)
def test_response_packet_without_keys_shows_its_header(v):
    raw = bytes.fromhex(v["hex"])
    assert raw[:3].hex() == v["facts"]["udh"]
    assert raw[6:9].hex() == v["facts"]["tar"] and (raw[3] << 8 | raw[4]) == len(raw) - 5


_CAT = ("cat_proactive_open_channel", "cat_proactive_receive_data", "cat_proactive_send_data",
        "cat_proactive_set_up_event_list", "cat_proactive_close_channel", "cat_proactive_refresh")


def _check_facts(decoded, facts):
    for key, expected in facts.items():
        assert decoded[key] == expected, key


@pytest.mark.parametrize("v", vectors(*_CAT), ids=vector_id)
def test_proactive_commands(codec, v):
    # these were produced by pySim's encoder (cross-check data); they agree with TS 102 223
    raw = bytes.fromhex(v["hex"])
    decoded = codec.cat.decode_proactive(raw)
    _check_facts(decoded, v["facts"])
    assert codec.cat.encode_proactive(decoded) == raw


@pytest.mark.parametrize("v", vectors("cat_terminal_response"), ids=vector_id)
def test_terminal_responses(codec, v):
    raw = bytes.fromhex(v["hex"])
    decoded = codec.cat.decode_terminal_response(raw)
    _check_facts(decoded, v["facts"])
    assert codec.cat.encode_terminal_response(decoded) == raw


@pytest.mark.parametrize("v", vectors("cat_envelope_event_download", "cat_envelope_sms_pp_download"), ids=vector_id)
def test_envelopes(codec, v):
    raw = bytes.fromhex(v["hex"])
    decoded = codec.cat.decode_envelope(raw)
    _check_facts(decoded, v["facts"])
    assert codec.cat.encode_envelope(decoded) == raw
    if "sms_tpdu" in decoded:  # SMS-PP download: the command packet inside the TPDU
        fields = sms.parse_sms_deliver(bytes.fromhex(decoded["sms_tpdu"]))
        assert fields["udh"] == b"\x02\x70\x00" and fields["user_data"][7:10] == bytes.fromhex("b00001")
