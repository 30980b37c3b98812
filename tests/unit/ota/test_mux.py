"""The sans-IO multiplexer (DESIGN §5.5): bytes and time in; frames, cuts and events out.

One test body for both implementations (STYLE 5): the compiled `_mux` and its source run as the twin.
"""

import os

import pytest

from esimota._impl import load_source
from esimota.codec import bcp, frames
from esimota.codec.keys import derive_keys
from esimota.ota import _mux as compiled_or_source
from esimota.ota import personalise as P
from esimota.ota import wire
from esimota.sim.card import Applet, CardFiles

pytestmark = pytest.mark.pure_twin

MASTER = bytes(range(16))
EID = "890490320000000000000000000001" + "95"  # valid check digits are not needed by the mux
KIC, KID, DEK = derive_keys(MASTER, bytes.fromhex(EID))
NUM = P.Personalisation("89860012345678901234", "460001234567897", "1440012345678", bytes(16), bytes(range(16)))


@pytest.fixture(params=["pure", "compiled"])
def M(request):
    if request.param == "pure":
        return load_source("esimota.ota._mux")
    if not compiled_or_source.__file__.endswith(".so"):
        if os.environ.get("CI") == "true" and os.environ.get("ESIMOTA_PURE") != "1":
            pytest.fail("CI expected the compiled multiplexer")
        pytest.skip("compiled multiplexer not built")
    return compiled_or_source


def _session(M, acked=0):
    s = P.build(NUM, DEK)
    return M.Session(EID, 7, KIC, KID, 101, 165, s.apdus, s.context, s.expect, acked)


def _hello(counter=1, buffer=1024, reason=bcp.HELLO_POWER_ON):
    return wire.hello_frame(KID, EID, "89860000000000000000", None, counter, buffer, reason)


def _card_answer(applet, frame, status=0):
    tar, cntr, apdus = wire.open_command(KIC, KID, frame[3:])
    rapdus = [applet.execute(a) for a in apdus]
    return wire.response_frame(KIC, KID, tar, cntr, status, rapdus)


def _drive(M, mux, cid, applet, now=0.0, limit=50):
    """Answer every COMMAND until the mux stops sending; returns all events seen."""
    seen = []
    for _ in range(limit):
        out, cuts, events = mux.drain()
        seen += events
        commands = [f for c, f in out if c == cid and f[2] == bcp.COMMAND]
        if not commands:
            return seen, out, cuts
        mux.feed(cid, _card_answer(applet, commands[-1]), now)
    raise AssertionError("no end")


def test_hello_is_reported_then_the_whole_script_runs(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello()[:5], 0.0)  # a frame may arrive in pieces
    assert mux.drain() == ([], [], [])
    mux.feed(1, _hello()[5:], 0.0)
    _, _, events = mux.drain()
    assert [(type(e), e.cid) for e in events] == [(M.Hello, 1)]
    assert events[0].fields["eid"] == EID and events[0].fields["counter"] == 1
    applet = Applet(CardFiles(), DEK)
    mux.start_write(1, _session(M), 1024, 0.0)
    seen, out, cuts = _drive(M, mux, 1, applet)
    kinds = [type(e) for e in seen]
    assert kinds.count(M.ScriptDone) == 1 and M.Acked in kinds
    assert cuts == []  # the service closes once the end of the script is durable
    mux.close(1, bcp.CLOSE_DONE)
    out, cuts, _ = mux.drain()
    assert out[-1][1] == frames.encode_close(bcp.CLOSE_DONE) and cuts == [1]
    assert applet.committed


def test_the_services_owner_reference_rides_on_every_session_event(M):
    """The service's own reference (the chip row) comes back with each event of the session, so
    the service keeps no table of sessions that would grow with every write."""
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(), 0.0)
    mux.drain()
    s = _session(M)
    assert s.owner is None
    s = M.Session(s.eid, s.task_id, s.kic, s.kid, s.cntr, s.cntr_end, s.apdus, s.context, s.expect, 0, owner=4242)
    mux.start_write(1, s, 1024, 0.0)
    seen, _, _ = _drive(M, mux, 1, Applet(CardFiles(), DEK))
    assert seen and all(e.session.owner == 4242 for e in seen)
    assert {type(e) for e in seen} >= {M.Acked, M.ScriptDone}


def test_chunks_fit_the_buffer_and_split_between_apdus(M):
    s = _session(M)
    chunks = M.plan_chunks(s, 160)
    assert chunks[0][0] == 0 and chunks[-1][1] == 24
    assert all(a[1] == b[0] for a, b in zip(chunks, chunks[1:]))
    for start, end in chunks:
        packet = wire.command_packet(KIC, KID, 1, list(s.context[start]) + list(s.apdus[start:end]))
        assert len(packet) + 3 <= 160
    with pytest.raises(ValueError):
        M.plan_chunks(s, 60)


def test_resume_starts_at_the_first_unacknowledged_chunk(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(reason=bcp.HELLO_RESUME), 0.0)
    mux.drain()
    session = _session(M, acked=10)
    mux.start_write(1, session, 160, 0.0)
    out, _, _ = mux.drain()
    _, _, apdus = wire.open_command(KIC, KID, out[0][1][3:])
    start = next(s for s, e in session.chunks if e > 10)
    assert apdus[len(session.context[start]):][0] == session.apdus[start]


def test_all_acknowledged_sends_the_last_chunk_again(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(reason=bcp.HELLO_RESUME), 0.0)
    mux.drain()
    session = _session(M, acked=24)
    mux.start_write(1, session, 1024, 0.0)
    assert session.next_chunk == len(session.chunks) - 1


@pytest.mark.parametrize("data,why", [
    (b"\x00\x00", "zero length"), (b"\x10\x00" + b"\x01", "longer than the first-frame limit"),
    (b"\x00\x03\x02\x00\x00", "COMMAND from a card"),
    (b"\x00\x05\x01\xC0\x03\x00\x00", "malformed HELLO"),
])
def test_protocol_errors_close_with_06(M, data, why):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, data, 0.0)
    out, cuts, events = mux.drain()
    assert out == [(1, frames.encode_close(bcp.CLOSE_PROTOCOL))], why
    assert cuts == [1] and type(events[0]) is M.ProtocolError
    mux.feed(1, _hello(), 0.0)  # nothing more is read from a closing channel
    assert mux.drain() == ([], [], [])


def test_a_response_with_a_bad_cc_is_a_protocol_error(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(), 0.0)
    mux.drain()
    mux.start_write(1, _session(M), 1024, 0.0)
    out, _, _ = mux.drain()
    answer = bytearray(_card_answer(Applet(CardFiles(), DEK), out[0][1]))
    answer[-1] ^= 0x01
    mux.feed(1, bytes(answer), 0.0)
    _, cuts, events = mux.drain()
    assert type(events[0]) is M.ProtocolError and cuts == [1]


def test_bad_status_word_is_retried_once_then_fails(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(), 0.0)
    mux.drain()
    mux.start_write(1, _session(M), 1024, 0.0)
    faulty = Applet(CardFiles(), DEK, chip_fault=True)
    seen, out, cuts = _drive(M, mux, 1, faulty)
    failed = [e for e in seen if type(e) is M.WriteFailed]
    assert len(failed) == 1 and failed[0].failure == M.F_CHIP_FAULT
    commands = 2  # the first chunk and its one retry
    assert failed[0].session.cntr == 101 + commands
    assert cuts == []  # the service makes the failure durable, then closes
    mux.close(1, bcp.CLOSE_DONE)
    assert mux.drain()[1] == [1]


def test_silent_cards_time_out(M):
    mux = M.Mux(first_timeout=5.0, frame_timeout=20.0)
    mux.open(1, 0.0)
    mux.open(2, 0.0)
    mux.feed(2, _hello(), 1.0)
    mux.drain()
    mux.start_write(2, _session(M), 1024, 1.0)
    mux.drain()
    mux.tick(6.0)
    _, cuts, events = mux.drain()
    assert cuts == [1] and [(type(e), e.cid) for e in events] == [(M.TimedOut, 1)]
    mux.tick(22.0)
    _, cuts, events = mux.drain()
    assert cuts == [2] and type(events[0]) is M.TimedOut and events[0].session is not None


def test_a_newer_channel_takes_the_session_over(M):
    mux = M.Mux()
    for cid in (1, 2):
        mux.open(cid, 0.0)
        mux.feed(cid, _hello(counter=cid), 0.0)
    mux.drain()
    mux.start_write(1, _session(M), 1024, 0.0)
    mux.drain()
    mux.start_write(2, _session(M), 1024, 0.0)
    out, cuts, _ = mux.drain()
    assert cuts == [1] and [c for c, _ in out] == [2]


def test_lost_channel_is_reported_with_its_session(M):
    mux = M.Mux()
    mux.open(1, 0.0)
    mux.feed(1, _hello(), 0.0)
    mux.drain()
    mux.start_write(1, _session(M), 1024, 0.0)
    mux.drain()
    mux.lost(1, 1.0)
    _, _, events = mux.drain()
    assert type(events[0]) is M.Gone and events[0].session.task_id == 7
    assert len(mux) == 0
