"""The timing wheel of the multiplexer (DESIGN §5.5): one deadline per channel, expiry in order of time."""

import random
import sys

from hypothesis import given, strategies as st

from esimota.ota.wheel import TimingWheel


def test_expire_returns_only_due_keys():
    w = TimingWheel(resolution=0.5, slots=8)
    w.set("a", 1.0)
    w.set("b", 2.0)
    w.set("c", 100.0)  # beyond one turn of the wheel (4 s)
    assert w.expire(0.9) == []
    assert w.expire(1.0) == ["a"]
    assert sorted(w.expire(50.0)) == ["b"]
    assert len(w) == 1
    assert w.expire(100.0) == ["c"] and len(w) == 0


def test_rearm_and_cancel():
    w = TimingWheel(resolution=1.0, slots=16)
    w.set(1, 5.0)
    w.set(1, 9.0)  # re-armed: the old deadline is gone
    assert w.expire(6.0) == []
    w.cancel(1)
    assert w.expire(20.0) == [] and len(w) == 0


@given(st.lists(st.tuples(st.integers(0, 50), st.floats(0, 400, allow_nan=False)), max_size=200),
       st.lists(st.floats(0, 500, allow_nan=False), max_size=30))
def test_matches_a_plain_dictionary(arms, probes):
    w = TimingWheel(resolution=0.25, slots=64)
    ref = {}
    for key, when in arms:
        w.set(key, when)
        ref[key] = when
    for now in sorted(probes):
        due = sorted(w.expire(now))
        want = sorted(k for k, t in ref.items() if t <= now)
        for k in want:
            del ref[k]
        assert due == want
    assert len(w) == len(ref)


def _tables(w: TimingWheel) -> int:
    return sum(sys.getsizeof(s) for s in w.slots)


def test_emptied_slots_give_their_tables_back():
    """A storm of short channels (RELIABILITY.md): each 0.25 s brings 300 channels into one slot, most
    cut at once, the rest expired. A set keeps the table it grew to unless cleared; the wheel must end
    as small as it started, not with every slot at the size of its busiest moment."""
    w = TimingWheel(resolution=0.25, slots=64)
    empty = _tables(w)
    now, key = 0.0, 0
    for _ in range(3 * 64):  # three turns of the wheel
        now += 0.25
        for i in range(300):
            key += 1
            w.set(key, now + 3.0)
            if i % 4:
                w.cancel(key)  # answered and cut
            elif i % 8 == 0:
                w.set(key, now + 5.0)  # re-armed (a frame arrived)
        w.expire(now)
    w.expire(now + 10.0)
    assert len(w) == 0
    assert _tables(w) == empty
