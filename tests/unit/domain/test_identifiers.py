"""Identifier rules of DESIGN §2 (§5.4.2.1, R6, R30) with stable reason codes."""

import datetime as dt

import pytest
from hypothesis import given, strategies as st

from esimota.domain import identifiers as ids
from esimota.domain import lifetimes, provinces, services
from esimota.errors import InvalidArgument, PermissionDenied

VALID_EID = "89049032123451234512345678901235"


def make_eid(body28: str) -> str:
    prefix = "89" + body28
    return prefix + ids.eid_check_digits(prefix)


def test_known_eid_is_valid():
    """DESIGN §2: the 32-digit number mod 97 equals 1 (SGP.29)."""
    assert int(VALID_EID) % 97 == 1
    assert ids.validate_eid(VALID_EID) == VALID_EID


@given(st.text("0123456789", min_size=28, max_size=28))
def test_completed_eids_validate_and_any_single_digit_change_fails(body):
    """R6: every completed EID is valid; a changed digit breaks the mod-97 check."""
    eid = make_eid(body)
    assert ids.validate_eid(eid) == eid
    i = 5
    changed = eid[:i] + str((int(eid[i]) + 1) % 10) + eid[i + 1:]
    with pytest.raises(InvalidArgument) as err:
        ids.validate_eid(changed)
    assert err.value.reason == "EID_INVALID"


@pytest.mark.parametrize("eid", ["", "89" * 15, VALID_EID[:-1], VALID_EID + "0", "79" + VALID_EID[2:],
                                 VALID_EID[:-1] + "x", 123])
def test_bad_eids(eid):
    """R6: 32 digits starting 89 with valid check digits, else EID_INVALID."""
    with pytest.raises(InvalidArgument) as err:
        ids.validate_eid(eid)
    assert err.value.reason == "EID_INVALID"


def test_iccid():
    """DESIGN §2: 20 characters from 89; issuer part may carry A–F; lower case is normalised."""
    assert ids.validate_iccid("89860A1B2C3D4E5F6781") == "89860A1B2C3D4E5F6781"
    assert ids.validate_iccid("89860a1b2c3d4e5f6781") == "89860A1B2C3D4E5F6781"
    for bad in ("8986012345678901234", "88860123456789012345", "898601234567890123456", "8986012345678901234G"):
        with pytest.raises(InvalidArgument) as err:
            ids.validate_iccid(bad)
        assert err.value.reason == "ICCID_INVALID"


def test_msisdn_must_be_13_digit_iot():
    """R30, DESIGN §2: 13-digit IoT number in a configured segment; 11-digit public numbers refused."""
    assert ids.validate_msisdn("1440123456789") == "1440123456789"
    for bad in ("13800138000", "1390123456789", "14401234567890"):
        with pytest.raises(InvalidArgument) as err:
            ids.validate_msisdn(bad)
        assert err.value.reason == "MSISDN_NOT_IOT"
    with pytest.raises(InvalidArgument) as err:
        ids.validate_msisdn("1440-23456789")
    assert err.value.reason == "MSISDN_INVALID"


def test_segments_are_configurable(monkeypatch):
    """DESIGN §2: the list of IoT segments is configuration."""
    monkeypatch.setenv("ESIMOTA_IOT_SEGMENTS", "1999")
    assert ids.validate_msisdn("1999000000000")
    with pytest.raises(InvalidArgument):
        ids.validate_msisdn("1440123456789")


def test_imsi_imei_keys():
    """DESIGN §2: IMSI 15 digits; IMEI 15 digits with Luhn; Ki/OPc 16 bytes."""
    assert ids.validate_imsi("460001234567890")
    with pytest.raises(InvalidArgument):
        ids.validate_imsi("46000123456789")
    assert ids.validate_imei("490154203237518")  # the Luhn example of TS 23.003 style
    with pytest.raises(InvalidArgument) as err:
        ids.validate_imei("490154203237519")
    assert err.value.reason == "IMEI_INVALID"
    assert ids.parse_key16("00" * 16, "Ki") == bytes(16)
    with pytest.raises(InvalidArgument) as err:
        ids.parse_key16("zz" * 16, "Ki")
    assert err.value.reason == "KI_INVALID" and "zz" not in err.value.message


def test_lifetimes():
    """R12 §5.3.1.3: 270 d for 4G, 180 d for NB-IoT; alert 30 d before; expired blocks apply."""
    opened = dt.date(2024, 1, 1)
    assert lifetimes.expires_on(opened, "4G") == dt.date(2024, 9, 27)
    assert lifetimes.expires_on(opened, "NB-IoT") == dt.date(2024, 6, 29)
    assert lifetimes.alert_on(opened, "NB-IoT") == dt.date(2024, 5, 30)
    lifetimes.check_not_expired(opened, "NB-IoT", dt.date(2024, 6, 28))
    with pytest.raises(PermissionDenied) as err:
        lifetimes.check_not_expired(opened, "NB-IoT", dt.date(2024, 6, 29))
    assert err.value.reason == "TEMP_NUMBER_EXPIRED"
    with pytest.raises(InvalidArgument):
        lifetimes.expires_on(opened, "5G")


def test_services_r30():
    """R30: data plus directed voice and SMS only."""
    assert services.parse_services("directed_sms+data") == ("data", "directed_sms")
    for bad in ("data+voice", "data+sms", "directed_voice", "data+data", ""):
        with pytest.raises(InvalidArgument) as err:
            services.parse_services(bad)
        assert err.value.reason == "SERVICE_NOT_ALLOWED"


def test_provinces():
    """DESIGN §2: GB/T 2260 two-digit codes, 11 北京 … 65 新疆."""
    assert provinces.PROVINCES["11"] == "北京" and provinces.PROVINCES["65"] == "新疆"
    assert len(provinces.PROVINCES) == 31
    with pytest.raises(InvalidArgument) as err:
        provinces.validate_province("99")
    assert err.value.reason == "PROVINCE_INVALID"
