"""jobs.callback_targets (DESIGN §6, R25): https only, no internal address, an allow list for chosen ranges."""

import ipaddress

import pytest

from esimota.jobs.callback_targets import RefusedTarget, TargetPolicy


def test_https_only_unless_development_allows_http():
    TargetPolicy().check_url("https://partner.example/cb")
    for url in ("http://partner.example/cb", "ftp://partner.example/cb", "https:///cb"):
        with pytest.raises(RefusedTarget):
            TargetPolicy().check_url(url)
    TargetPolicy(allow_http=True).check_url("http://partner.example/cb")


@pytest.mark.parametrize("address", ["127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254",
                                     "100.64.0.1", "0.0.0.0", "224.0.0.1", "::1", "fe80::1", "fd00::1",
                                     "::ffff:127.0.0.1"])
def test_internal_addresses_are_refused(address):
    with pytest.raises(RefusedTarget):
        TargetPolicy().check_ip(address)
    with pytest.raises(RefusedTarget):  # an address literal in the URL is checked before any connection
        TargetPolicy().check_url(f"https://[{address}]/cb" if ":" in address else f"https://{address}/cb")


def test_public_addresses_pass_and_the_allow_list_opens_chosen_ranges():
    TargetPolicy().check_ip("203.0.114.10")
    TargetPolicy().check_ip("2606:4700::1111")
    allow = TargetPolicy([ipaddress.ip_network("10.8.0.0/16")])
    allow.check_ip("10.8.3.4")
    with pytest.raises(RefusedTarget):
        allow.check_ip("10.9.3.4")


@pytest.mark.parametrize("url", ["https://１２７.0.0.1/cb", "https://2130706433/cb", "https://127.1/cb",
                                 "https://0177.0.0.1/cb", "https://127.000.000.001/cb",
                                 "https://[::ffff:7f00:1]/cb", "https://[fe80::1%25lo]/cb"])
def test_a_host_is_read_as_the_http_client_connects_to_it(url):
    """R25 (issue 14 attack run): the host is judged as aiohttp reads it. Full-width digits fold to
    127.0.0.1; decimal, short, octal and zero-padded forms are addresses to aiohttp (it skips the resolver
    for them) but not to ipaddress, so they are refused before any connection."""
    with pytest.raises(RefusedTarget):
        TargetPolicy().check_url(url)
