"""The caller's address (DESIGN §6): the proxy header only from a trusted peer, its rightmost untrusted hop."""

import ipaddress

from esimota.api.addresses import CallerAddress

PROXIES = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("fd00::/8")]


def test_no_trusted_proxies_means_the_header_is_ignored():
    addr = CallerAddress("X-Forwarded-For", [])
    assert addr.resolve("198.51.100.7", ["203.0.113.9"]) == "198.51.100.7"
    assert CallerAddress(None, PROXIES).resolve("10.0.0.1", ["203.0.113.9"]) == "10.0.0.1"


def test_an_untrusted_peer_is_the_caller_whatever_it_sends():
    addr = CallerAddress("X-Forwarded-For", PROXIES)
    assert addr.resolve("198.51.100.7", ["203.0.113.9", "10.0.0.2"]) == "198.51.100.7"


def test_rightmost_untrusted_hop_of_every_header_line():
    addr = CallerAddress("X-Forwarded-For", PROXIES)
    assert addr.resolve("10.0.0.1", ["1.2.3.4, 203.0.113.9"]) == "203.0.113.9"
    assert addr.resolve("10.0.0.1", ["203.0.113.9", "198.51.100.1, 10.1.1.1"]) == "198.51.100.1"
    assert addr.resolve("::ffff:10.0.0.1", ["203.0.113.9, 10.2.2.2"]) == "203.0.113.9"
    assert addr.resolve("fd00::1", ["2001:db8::5"]) == "2001:db8::5"
    assert addr.resolve("10.0.0.1", ["10.3.3.3, 10.4.4.4"]) == "10.3.3.3"  # all trusted: the first
    assert addr.resolve("10.0.0.1", []) == "10.0.0.1"  # no header: the proxy itself
    assert addr.resolve("10.0.0.1", ["1.1.1.1, not-an-ip, 10.0.0.3"]) == "not-an-ip"  # fails the whitelist
