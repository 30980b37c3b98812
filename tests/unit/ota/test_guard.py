"""ota.guard: refusals before a MAC verifies, a token bucket per source address (issue 14, DESIGN §5.4)."""

from esimota.ota.guard import SourceGuard


def test_a_source_is_cut_once_its_refusals_spend_the_bucket_and_let_in_again_as_it_refills():
    g = SourceGuard(rate=2, burst=2)
    assert g.opened(1, "198.51.100.1", 0.0) and g.opened(2, "198.51.100.1", 0.0)
    g.refused(1, 0.0)
    assert g.opened(3, "198.51.100.1", 0.0)  # one token left
    g.refused(2, 0.0)
    assert not g.opened(4, "198.51.100.1", 0.1) and g.cut == 1  # spent: cut unread
    assert g.opened(5, "203.0.113.7", 0.1)  # another address is not this one's business
    assert g.opened(6, "198.51.100.1", 0.6)  # 0.5 s at 2/s: one token back
    assert g.source(6) == "198.51.100.1" and g.source(4) == ""
    g.closed(6)
    assert g.source(6) == ""


def test_rate_zero_is_off_and_verified_cards_cost_nothing():
    off = SourceGuard(0)
    for cid in range(100):
        assert off.opened(cid, "10.0.0.1", 0.0)
        off.refused(cid, 0.0)
    assert off.opened(1000, "10.0.0.1", 0.0) and off.cut == 0
    g = SourceGuard(rate=1, burst=1)
    for cid in range(100):  # channels whose MACs verify are never charged
        assert g.opened(cid, "10.0.0.1", 0.0)
