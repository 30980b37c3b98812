"""The per-chip key derivation (DESIGN §5.2) and swapped BCD in their fast forms equal the references."""

from hypothesis import given, settings
from hypothesis import strategies as st

from esimota.codec import ids, keys


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=16, max_size=16), st.binary(min_size=16, max_size=16), st.sampled_from(keys.LABELS))
def test_derive_key_is_sp800_108_kbkdf_cmac(master, eid, label):
    """DESIGN §5.2: one CMAC block over 01‖label‖00‖EID‖0080 is the KBKDF of cryptography's KBKDFCMAC."""
    assert keys.derive_key(master, label, eid) == keys.derive_key_kbkdf(master, label, eid)


@given(st.text(alphabet="0123456789ABCDEabcde", max_size=20), st.integers(min_value=10, max_value=12))
def test_swapped_bcd_matches_nibble_by_nibble(digits, size):
    """TS 102 221 §13.2 / TS 31.102: nibble-swapped, F-padded; checked against the obvious construction."""
    text = digits.upper() + "F" * (size * 2 - len(digits))
    expected = bytes(int(text[i + 1] + text[i], 16) for i in range(0, len(text), 2))
    assert ids.swapped_bcd(digits, size) == expected
    assert ids.swapped_bcd_digits(expected) == digits.upper()
