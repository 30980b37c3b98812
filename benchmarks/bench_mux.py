"""Multiplexer benchmarks (DESIGN §5.5), compiled and pure twin side by side.

    .venv/bin/python -m pytest benchmarks/bench_mux.py --benchmark-only

One write through the sans-IO multiplexer: HELLO in, the 24-APDU script out in one COMMAND, the
card's RESPONSE in, CLOSE out. The card side (unwrap, run, wrap) is precomputed per CNTR, so the
figure is the platform's share: frame parsing, chunking, packet wrap/unwrap, judging.
"""

import pytest

from esimota._impl import load_source
from esimota.codec import bcp
from esimota.codec.keys import derive_keys
from esimota.ota import _mux as compiled
from esimota.ota import personalise as P
from esimota.ota import wire
from esimota.sim.card import Applet, CardFiles

EID = "89049032000000000000000000000195"
KIC, KID, DEK = derive_keys(bytes(range(16)), bytes.fromhex(EID))
SCRIPT = P.build(P.Personalisation("89860012345678901234", "460001234567897", "1440012345678",
                                   bytes(16), bytes(range(16))), DEK)
HELLO = wire.hello_frame(KID, EID, "89860000000000000000", None, 1, 1024, 1)
CNTR = 101


def _answer() -> bytes:
    """The card's RESPONSE to the first COMMAND (CNTR 101), computed once with the real applet."""
    mux = compiled.Mux()
    mux.open(1, 0.0)
    mux.feed(1, HELLO, 0.0)
    mux.drain()
    mux.start_write(1, compiled.Session(EID, 1, KIC, KID, CNTR, CNTR + 64, SCRIPT.apdus, SCRIPT.context,
                                        SCRIPT.expect), 1024, 0.0)
    out, _, _ = mux.drain()
    tar, cntr, apdus = wire.open_command(KIC, KID, out[0][1][3:])
    applet = Applet(CardFiles(), DEK)
    return wire.response_frame(KIC, KID, tar, cntr, 0, [applet.execute(a) for a in apdus])


RESPONSE = _answer()


@pytest.fixture(params=["compiled", "pure"])
def M(request):
    if request.param == "pure":
        return load_source("esimota.ota._mux")
    if not compiled.__file__.endswith(".so"):
        pytest.skip("compiled multiplexer not built")
    return compiled


def test_one_write_through_the_mux(benchmark, M):
    mux = M.Mux()
    state = {"cid": 0}

    def write():
        state["cid"] += 1
        cid = state["cid"]
        mux.open(cid, 0.0)
        mux.feed(cid, HELLO, 0.0)
        mux.drain()
        mux.start_write(cid, M.Session(EID, cid, KIC, KID, CNTR, CNTR + 64, SCRIPT.apdus, SCRIPT.context,
                                       SCRIPT.expect), 1024, 0.0)
        mux.drain()
        mux.feed(cid, RESPONSE, 0.0)
        out, cuts, events = mux.drain()
        mux.close(cid, bcp.CLOSE_DONE)
        mux.drain()
        mux.lost(cid, 0.0)
        return events

    events = benchmark(write)
    assert [type(e) for e in events] == [M.Acked, M.ScriptDone]


def test_idle_channel_open_and_tick(benchmark, M):
    """Opening 1,000 channels and sweeping the timing wheel once: the cost of holding idle cards."""
    def run():
        mux = M.Mux(first_timeout=60.0)
        for cid in range(1000):
            mux.open(cid, 0.0)
        mux.tick(1.0)
        return len(mux)

    assert benchmark(run) == 1000
