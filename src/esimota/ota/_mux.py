"""Sans-IO multiplexer of BCP/1 channels (DESIGN §5.5): bytes and time in; bytes, closes and events out.

It never touches sockets, clocks or the database. The driver feeds it what the sockets read and the
time; it answers with frames to write, channels to cut, and events for the service layer (a HELLO or
REPORT to check, a chunk acknowledged, a script done, a write failed, a timeout, a protocol error).
Each event kind is its own small class with named fields (h11-style): no positional slot changes
meaning by kind. The service answers with `StartWrite` or `Close`, which the driver applies through
`start_write` and `close`. Compiled by Cython with `_mux.pxd`.
"""

from __future__ import annotations

from ..codec.bcp import CLOSE, CLOSE_BUSY, CLOSE_PROTOCOL, COMMAND, HELLO, REPORT, RESPONSE
from . import wire
from .wheel import TimingWheel

# channel states
S_FIRST, S_CHECKING, S_WRITING, S_CLOSING = 0, 1, 2, 3
# failure kinds of WriteFailed
F_CHIP_FAULT, F_DATA_ERROR = 1, 2

FIRST_FRAME_MAX = 1024  # before HELLO declares the card's buffer
FRAME_OVERHEAD = 3  # LEN(2) TYPE(1)


class Session:
    """One write on one channel: keys, counters and the script, given by the service after HELLO."""

    __slots__ = ("eid", "task_id", "kic", "kid", "cntr", "cntr_end", "apdus", "context", "expect",
                 "chunks", "next_chunk", "acked", "retried", "in_flight_cntr", "traffic", "buffer_size",
                 "started", "owner")

    def __init__(self, eid, task_id, kic, kid, cntr, cntr_end, apdus, context, expect, acked=0, owner=None):
        self.owner = owner  # the service's own reference (the chip row's id), carried to every event
        self.eid = eid
        self.task_id = task_id
        self.kic = kic
        self.kid = kid
        self.cntr = cntr
        self.cntr_end = cntr_end
        self.apdus = apdus
        self.context = context
        self.expect = expect
        self.chunks = []
        self.next_chunk = 0
        self.acked = acked
        self.retried = False
        self.in_flight_cntr = -1
        self.traffic = 0
        self.buffer_size = 0
        self.started = 0.0


class Channel:
    __slots__ = ("cid", "buf", "state", "limit", "session", "eid", "frames", "nbytes", "opened")

    def __init__(self, cid):
        self.frames = 0  # frames and bytes both ways, and when it opened: for the session's end log
        self.nbytes = 0
        self.opened = 0.0
        self.cid = cid
        self.buf = bytearray()
        self.state = S_FIRST
        self.limit = FIRST_FRAME_MAX
        self.session = None
        self.eid = None


# -- events: what the multiplexer tells the service (drained by the driver) ------------------------
class Hello:
    """A card's first frame is HELLO (§5.4 step 1): its decoded fields and the frame, MAC not yet checked."""

    __slots__ = ("cid", "fields", "frame")

    def __init__(self, cid, fields, frame):
        self.cid = cid
        self.fields = fields
        self.frame = frame


class Report:
    """A card's first frame is REPORT (§5.4 step 5): its decoded fields and the frame, MAC not yet checked."""

    __slots__ = ("cid", "fields", "frame")

    def __init__(self, cid, fields, frame):
        self.cid = cid
        self.fields = fields
        self.frame = frame


class Acked:
    """The card acknowledged a chunk: every C-APDU before `acked` ran as expected (§5.4 step 3)."""

    __slots__ = ("cid", "session", "acked")

    def __init__(self, cid, session, acked):
        self.cid = cid
        self.session = session
        self.acked = acked


class ScriptDone:
    """The last chunk was acknowledged; CLOSE(00) follows once the service made it durable."""

    __slots__ = ("cid", "session")

    def __init__(self, cid, session):
        self.cid = cid
        self.session = session


class WriteFailed:
    """The write failed on the card: `failure` is F_CHIP_FAULT (an SW error twice) or F_DATA_ERROR (read-back)."""

    __slots__ = ("cid", "session", "failure")

    def __init__(self, cid, session, failure):
        self.cid = cid
        self.session = session
        self.failure = failure


class TimedOut:
    """The card was silent past its deadline in channel `state`; the channel is cut."""

    __slots__ = ("cid", "session", "state")

    def __init__(self, cid, session, state):
        self.cid = cid
        self.session = session
        self.state = state


class ProtocolError:
    """A malformed or unexpected frame: CLOSE(06) is sent and the channel cut; `detail` says why."""

    __slots__ = ("cid", "session", "detail")

    def __init__(self, cid, session, detail):
        self.cid = cid
        self.session = session
        self.detail = detail


class Gone:
    """The card closed the channel (CLOSE frame or the transport lost) before the platform did."""

    __slots__ = ("cid", "session")

    def __init__(self, cid, session):
        self.cid = cid
        self.session = session


# -- answers: what the service decides for a card (applied by the driver) --------------------------
class StartWrite:
    """HELLO accepted: run `session` on channel `cid` in frames of at most `buffer_size` bytes."""

    __slots__ = ("cid", "session", "buffer_size")

    def __init__(self, cid, session, buffer_size):
        self.cid = cid
        self.session = session
        self.buffer_size = buffer_size


class Close:
    """Answer CLOSE(reason, retry after seconds) and cut channel `cid` (DESIGN §5.1)."""

    __slots__ = ("cid", "reason", "retry_after")

    def __init__(self, cid, reason, retry_after=0):
        self.cid = cid
        self.reason = reason
        self.retry_after = retry_after


def plan_chunks(session: Session, buffer_size: int) -> list:
    """Split the script between C-APDUs into (start, end) runs whose COMMAND frame fits the buffer.

    Each chunk is re-preceded by the SELECTs of its file context; a single APDU that cannot fit
    even alone is a configuration error of the chip model (raised as ValueError).
    """
    room = buffer_size - FRAME_OVERHEAD - wire.COMMAND_OVERHEAD
    chunks = []
    start, n = 0, len(session.apdus)
    while start < n:
        used = wire.script_size(session.context[start])
        end = start
        while end < n:
            add = wire.apdu_tlv_size(session.apdus[end])
            if used + add > room:
                break
            used += add
            end += 1
        if end == start:
            raise ValueError(f"C-APDU {start} does not fit a {buffer_size}-byte buffer")
        chunks.append((start, end))
        start = end
    return chunks


class Mux:
    """All channels of one worker."""

    def __init__(self, first_timeout: float = 30.0, frame_timeout: float = 60.0,
                 check_timeout: float = 30.0, resolution: float = 0.25):
        self.channels = {}
        self.by_eid = {}
        self.wheel = TimingWheel(resolution)
        self.first_timeout = first_timeout
        self.frame_timeout = frame_timeout
        self.check_timeout = check_timeout
        self.out = []      # (cid, bytes)
        self.cuts = []     # cid: close the transport after writing what is queued
        self.events = []   # Hello, Report, Acked, ScriptDone, WriteFailed, TimedOut, ProtocolError, Gone
        self.received = [0, 0, 0, 0, 0, 0]  # frames received by TYPE (index 0: any other type), for metrics

    # -- channel life ------------------------------------------------------------------------
    def open(self, cid, now: float) -> None:
        ch = self.channels[cid] = Channel(cid)
        ch.opened = now
        self.wheel.set(cid, now + self.first_timeout)

    def lost(self, cid, now: float) -> None:
        """The transport is gone (peer closed or reset): forget the channel, tell the service."""
        ch = self.channels.pop(cid, None)
        self.wheel.cancel(cid)
        if ch is None:
            return
        if ch.eid is not None and self.by_eid.get(ch.eid) == cid:
            del self.by_eid[ch.eid]
        if ch.state != S_CLOSING:
            self.events.append(Gone(cid, ch.session))

    def drain(self):
        """(frames to write, channels to cut, events) since the last drain."""
        out, cuts, events = self.out, self.cuts, self.events
        self.out, self.cuts, self.events = [], [], []
        return out, cuts, events

    def __len__(self) -> int:
        return len(self.channels)

    # -- input ------------------------------------------------------------------------------
    def feed(self, cid, data, now: float) -> None:
        ch = self.channels.get(cid)
        if ch is None or ch.state == S_CLOSING:
            return
        ch.buf += data
        while len(ch.buf) >= 2 and ch.state != S_CLOSING:
            length = (ch.buf[0] << 8) | ch.buf[1]
            if length == 0 or length + 2 > ch.limit:
                self._protocol_error(ch, f"frame length {length} outside 1..{ch.limit - 2}")
                return
            if len(ch.buf) < length + 2:
                return
            frame = bytes(ch.buf[:2 + length])
            del ch.buf[:2 + length]
            self._on_frame(ch, frame, now)

    def _on_frame(self, ch: Channel, frame: bytes, now: float) -> None:
        ftype = frame[2]
        ch.frames += 1
        ch.nbytes += len(frame)
        self.received[ftype if ftype <= CLOSE else 0] += 1
        if ch.session is not None:
            ch.session.traffic += len(frame)
        if ch.state == S_FIRST and (ftype == HELLO or ftype == REPORT):
            try:
                fields = wire.parse_card_frame(frame)
            except wire.CodecError as exc:
                self._protocol_error(ch, str(exc))
                return
            ch.state = S_CHECKING
            ch.eid = fields["eid"]
            self.wheel.set(ch.cid, now + self.check_timeout)
            if ftype == HELLO:
                self.events.append(Hello(ch.cid, fields, frame))
            else:
                self.events.append(Report(ch.cid, fields, frame))
        elif ch.state == S_WRITING and ftype == RESPONSE:
            self._on_response(ch, frame, now)
        elif ftype == CLOSE:
            self._cut(ch)
            self.events.append(Gone(ch.cid, ch.session))
        else:
            self._protocol_error(ch, f"frame type 0x{ftype:02X} not expected in state {ch.state}")

    def _on_response(self, ch: Channel, frame: bytes, now: float) -> None:
        s = ch.session
        start, end = s.chunks[s.next_chunk]
        try:
            rapdus = wire.parse_response(s.kic, s.kid, frame, s.in_flight_cntr)
        except wire.CodecError as exc:
            self._protocol_error(ch, str(exc))
            return
        skip = len(s.context[start])
        verdict = wire.judge(rapdus, skip, start, end, s.expect)
        if verdict == wire.OK:
            s.acked = max(s.acked, end)
            s.next_chunk += 1
            s.retried = False
            self.events.append(Acked(ch.cid, s, end))
            if s.next_chunk == len(s.chunks):  # CLOSE(00) once the service has made it durable
                ch.state = S_CHECKING
                self.wheel.set(ch.cid, now + self.check_timeout)
                self.events.append(ScriptDone(ch.cid, s))
            else:
                self._send_chunk(ch, now)
        elif verdict == wire.BAD_SW and not s.retried:
            s.retried = True  # §5.4 step 3: retried once
            self._send_chunk(ch, now)
        else:  # the failure is made durable by the service before the card hears CLOSE
            kind = F_DATA_ERROR if verdict == wire.MISMATCH else F_CHIP_FAULT
            ch.state = S_CHECKING
            self.wheel.set(ch.cid, now + self.check_timeout)
            self.events.append(WriteFailed(ch.cid, s, kind))

    # -- decisions of the service -------------------------------------------------------------
    def start_write(self, cid, session: Session, buffer_size: int, now: float) -> None:
        """HELLO accepted: plan the chunks for the card's buffer and send the first not acknowledged."""
        ch = self.channels.get(cid)
        if ch is None or ch.state != S_CHECKING or ch.session is not None:
            return
        old = self.by_eid.get(session.eid)
        if old is not None and old != cid:  # §5.4.4: the newer channel takes the session over
            prev = self.channels.get(old)
            if prev is not None:
                self._cut(prev)
        self.by_eid[session.eid] = cid
        ch.limit = buffer_size
        session.buffer_size = buffer_size
        session.chunks = plan_chunks(session, buffer_size)
        session.next_chunk = _first_unacked(session.chunks, session.acked)
        session.started = now
        ch.session = session
        ch.state = S_WRITING
        self._send_chunk(ch, now)

    def close(self, cid, reason: int, retry_after: int = 0) -> None:
        """Answer CLOSE(reason, retry after) and cut the channel once it is written (DESIGN §5.1)."""
        ch = self.channels.get(cid)
        if ch is None or ch.state == S_CLOSING:
            return
        body = bytes((CLOSE, reason, (retry_after >> 8) & 0xFF, retry_after & 0xFF))
        self._write(ch, body)
        self._cut(ch)

    # -- output -----------------------------------------------------------------------------
    def _send_chunk(self, ch: Channel, now: float) -> None:
        s = ch.session
        if s.cntr >= s.cntr_end:
            self.events.append(WriteFailed(ch.cid, s, F_CHIP_FAULT))
            self.close(ch.cid, CLOSE_BUSY, 60)
            return
        start, end = s.chunks[s.next_chunk]
        apdus = list(s.context[start]) + list(s.apdus[start:end])
        s.in_flight_cntr = s.cntr
        packet = wire.command_packet(s.kic, s.kid, s.cntr, apdus)
        s.cntr += 1
        self._write(ch, bytes([COMMAND]) + packet)
        self.wheel.set(ch.cid, now + self.frame_timeout)

    def _write(self, ch: Channel, body: bytes) -> None:
        frame = len(body).to_bytes(2, "big") + body
        ch.frames += 1
        ch.nbytes += len(frame)
        if ch.session is not None:
            ch.session.traffic += len(frame)
        self.out.append((ch.cid, frame))

    def _cut(self, ch: Channel) -> None:
        ch.state = S_CLOSING
        self.wheel.cancel(ch.cid)
        if ch.eid is not None and self.by_eid.get(ch.eid) == ch.cid:
            del self.by_eid[ch.eid]
        self.cuts.append(ch.cid)

    def _protocol_error(self, ch: Channel, detail: str) -> None:
        self.events.append(ProtocolError(ch.cid, ch.session, detail))
        self.close(ch.cid, CLOSE_PROTOCOL)

    # -- time -------------------------------------------------------------------------------
    def tick(self, now: float) -> None:
        """Expire deadlines: a silent card is cut and the service told (TimedOut)."""
        for cid in self.wheel.expire(now):
            ch = self.channels.get(cid)
            if ch is None or ch.state == S_CLOSING:
                continue
            self.events.append(TimedOut(cid, ch.session, ch.state))
            self._cut(ch)


def _first_unacked(chunks: list, acked: int) -> int:
    """Resume at the first chunk not fully acknowledged; if all were, send the last again (§5.4.4)."""
    for i, (_start, end) in enumerate(chunks):
        if end > acked:
            return i
    return len(chunks) - 1
