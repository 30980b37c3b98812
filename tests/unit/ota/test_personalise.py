"""The personalisation script of DESIGN §5.4 step 2, byte for byte (TS 31.102 §4.2.2, §4.2.15, §4.2.26)."""

import pytest
from cryptography.hazmat.primitives.keywrap import aes_key_unwrap
from hypothesis import given, settings
from hypothesis import strategies as st

from esimota.ota import personalise as P

NUM = P.Personalisation(iccid="89860012345678901234", imsi="460001234567897", msisdn="1440012345678",
                        ki=bytes(range(16)), opc=bytes(range(16, 32)))
DEK = bytes.fromhex("000102030405060708090A0B0C0D0E0F")


def test_ef_encodings():
    assert P.ef_iccid("89860012345678901234").hex() == "98680021436587092143"
    assert P.ef_imsi("460001234567897").hex() == "084906002143658779"
    assert P.ef_acc("460001234567897") == b"\x00\x80"  # access class 7
    assert P.ef_acc("460001234567899") == b"\x02\x00"  # access class 9: byte 1, bit 2
    assert P.ef_msisdn("1440012345678").hex() == "088141041032547698ffffff"[:0] + "0881410410325476f8ffffffffff"
    assert P.ef_msisdn("1440012345678", alpha_len=2)[:2] == b"\xff\xff"


def test_imsi_must_be_15_digits():
    with pytest.raises(ValueError):
        P.ef_imsi("46000123456789")


def test_script_order_and_apdus():
    s = P.build(NUM, DEK)
    hexes = [a.hex().upper() for a in s.apdus]
    assert len(hexes) == 24
    assert hexes[:4] == ["00A4000C023F00", "00A4000C022FE2", "00D600000A98680021436587092143",
                         "00A4040C07A0000000871002"]
    assert hexes[4:8] == ["00A4000C026F07", "00D6000009084906002143658779", "00A4000C026F78", "00D60000020080"]
    assert hexes[8:10] == ["00A4000C026F40", "00DC01040E0881410410325476F8FFFFFFFFFF"]
    assert hexes[10:16] == ["00A4000C026F7E", "00D600000BFFFFFFFFFFFFFFFFFEFF01",
                            "00A4000C026F73", "00D600000EFFFFFFFFFFFFFFFFFFFFFFFEFF01",
                            "00A4000C026FE3", "00D6000012" + "FF" * 12 + "FFFFFFFFFE01"]
    assert hexes[16][:14] == "80E280002B8101" and hexes[16][14:16] == "28"
    assert aes_key_unwrap(DEK, s.apdus[16][8:]) == NUM.ki + NUM.opc
    assert hexes[17:] == ["00A4000C023F00", "00A4000C022FE2", "00B000000A", "00A4040C07A0000000871002",
                          "00A4000C026F07", "00B0000009", "807E0000"]
    assert s.expect == {19: P.ef_iccid(NUM.iccid), 22: P.ef_imsi(NUM.imsi)}


def test_context_reselects_the_current_file():
    s = P.build(NUM, DEK)
    assert s.context[0] == ()
    assert s.context[2] == (P.select_fid(0x3F00), P.select_fid(0x2FE2))
    assert s.context[5] == (P.SELECT_ADF_USIM, P.select_fid(0x6F07))
    assert s.context[16] == (P.SELECT_ADF_USIM, P.select_fid(0x6FE3))


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet="0123456789", min_size=19, max_size=20), st.text(alphabet="0123456789", min_size=15,
       max_size=15), st.text(alphabet="0123456789", min_size=5, max_size=20), st.binary(min_size=16, max_size=16),
       st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16), st.integers(0, 8))
def test_build_from_the_template_equals_the_step_by_step_script(iccid, imsi, msisdn, ki, opc, dek, alpha):
    """DESIGN §5.4 step 2: the fixed APDUs and contexts made once give the very script built anew."""
    p = P.Personalisation(iccid, imsi, msisdn, ki, opc, alpha)
    assert P.build(p, dek) == P.build_reference(p, dek)
