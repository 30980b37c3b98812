"""What the BIP driver tells about its channels: frames by type, CLOSE reasons, one log line per session end.

Called by the driver (api.bip.driver) at two points only: after each drain of the multiplexer (frames out, frames in,
events) and when a transport is lost (the channel's end). The multiplexer stays sans-IO: it only counts.
"""

from __future__ import annotations

import logging

from ... import metrics
from ...codec.bcp import CLOSE
from ...ota.mux import Gone, ProtocolError, TimedOut
from ...service.bip import SessionRef

log = logging.getLogger("esimota.bip")

_T_CLOSE = CLOSE
# how a channel ends when the multiplexer tells it by an event (a card's CLOSE arrives as Gone;
# a lost transport is told in lost())
_ENDS = {TimedOut: "timeout", ProtocolError: "protocol_error", Gone: "closed_by_card"}


class ChannelTelemetry:
    """One per driver: the last counts of received frames, and how each closing channel is ending."""

    def __init__(self) -> None:
        self.seen = [0] * 6
        self.ending: dict = {}  # cid -> how it ends (a CLOSE reason's name, timeout, protocol_error)
        self._sent = {t: metrics.BIP_FRAMES.labels("sent", name) for t, name in metrics.FRAME_TYPES.items()}
        self._received = [metrics.BIP_FRAMES.labels("received", metrics.FRAME_TYPES.get(t, "other"))
                          for t in range(6)]
        self._closes: dict = {}  # reason -> its child counter (labels() takes a lock per call)
        self._sessions: dict = {}  # how a session ended -> its child counter

    def drained(self, mux, out: list, events: list) -> None:
        """Count what one drain wrote and read; remember why channels are closing."""
        sent: dict[int, int] = {}
        for cid, frame in out:
            ftype = frame[2]
            sent[ftype] = sent.get(ftype, 0) + 1
            if ftype == _T_CLOSE and len(frame) > 3:
                reason = metrics.close_reason_name(frame[3])
                counter = self._closes.get(reason)
                if counter is None:
                    counter = self._closes[reason] = metrics.BIP_CLOSES.labels(reason)
                counter.inc()
                self.ending.setdefault(cid, reason)
        for ftype, n in sent.items():
            counter = self._sent.get(ftype)
            if counter is None:
                counter = metrics.BIP_FRAMES.labels("sent", "other")
            counter.inc(n)
        ends = _ENDS
        for ev in events:  # the hot path: one dict look-up, most events (Hello, Acked) fall through
            end = ends.get(type(ev))
            if end is not None:
                self.ending.setdefault(ev.cid, end)
        received = mux.received
        for t in range(6):
            n = received[t] - self.seen[t]
            if n:
                self._received[t].inc(n)
                self.seen[t] = received[t]

    def lost(self, cid, channel, now: float) -> None:
        """The channel's end: one INFO line (task, EID, duration, frames, bytes, CLOSE reason) and counters."""
        end = self.ending.pop(cid, "dropped")
        counter = self._sessions.get(end)
        if counter is None:
            counter = self._sessions[end] = metrics.BIP_SESSIONS.labels(end)
        counter.inc()
        if channel is None:
            return
        metrics.BIP_SESSION_BYTES.inc(channel.nbytes)
        session = channel.session
        ref = None if session is None else session.owner
        log.info("bip session end", extra={  # the task by its public id, as `esimota tasks show` takes it
            "eid": channel.eid, "task_id": ref.task_id if isinstance(ref, SessionRef) else None,
            "duration_s": round(now - channel.opened, 3), "frames": channel.frames, "bytes": channel.nbytes,
            "close_reason": end, "acked": None if session is None else session.acked,
            "apdus": None if session is None else len(session.apdus)})
