"""What the BIP service records besides the write itself: each channel session (R1 "every step traceable")
and the blacklist refusal at HELLO (R32). Called by service/bip.py; writes ride on its group commit."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

from ..codec.bcp import CLOSE_DONE, CLOSE_PROTOCOL
from ..ota.mux import Acked, Gone, ProtocolError, ScriptDone, TimedOut, WriteFailed
from ..store import alerts as alert_store
from ..store import history
from . import ops

# -- R32: a chip blacklisted after its apply is refused at HELLO ---------------------------------------
RELOAD_S = 60.0   # the whole list again (an entry removed by hand is forgotten within a minute)
OVERLAP_S = 60.0  # rows stamped before a late commit are read again, not missed


class HelloGuard:
    """The blacklist as one worker sees it: brought up to date once per group of HELLOs (one small
    query), so that a HELLO costs no round trip of its own."""

    def __init__(self) -> None:
        self.eids: set[str] = set()
        self.imeis: set[str] = set()
        self.newest = None
        self.loaded_at = 0.0
        self.group: Any = None

    async def _refresh(self, conn: Any) -> None:
        if time.monotonic() - self.loaded_at > RELOAD_S:
            self.eids, self.imeis, self.newest, self.loaded_at = set(), set(), None, time.monotonic()
        since = None if self.newest is None else self.newest - dt.timedelta(seconds=OVERLAP_S)
        for r in await alert_store.blacklist_since(conn, since):
            (self.eids if r["kind"] == "eid" else self.imeis).add(r["value"])
            self.newest = r["created_at"] if self.newest is None else max(self.newest, r["created_at"])

    async def refusal(self, conn: Any, group: Any, chip: Any, hello_imei: str | None) -> str | None:
        """Why this HELLO is refused (its chip's EID, bound IMEI or the device's IMEI is blacklisted), or None.

        A refusal also opens the BLACKLISTED_AT_HELLO exception, in the group's transaction."""
        if self.group is not group:
            await self._refresh(conn)
            self.group = group
        if chip["eid"] in self.eids:
            why = f"EID {chip['eid']} is blacklisted"
        elif chip["imei"] in self.imeis or (hello_imei and hello_imei in self.imeis):
            why = f"IMEI {hello_imei if hello_imei in self.imeis else chip['imei']} is blacklisted"
        else:
            return None
        group.finals.append(lambda conn, c=chip, w=why: ops.raise_exception(
            conn, "BLACKLISTED_AT_HELLO", chip_id=c["id"], task_id=c["task_pk"], client_id=c["client_id"], detail=w))
        return why


# -- channel sessions ------------------------------------------------------------------------------
# how a session ended, and the CLOSE reason the platform sent (None: the channel was cut or dropped)
ENDINGS = {ScriptDone: ("done", CLOSE_DONE), WriteFailed: ("failed", CLOSE_DONE), TimedOut: ("timeout", None),
           Gone: ("gone", None), ProtocolError: ("protocol error", CLOSE_PROTOCOL)}


class _Flush:
    """The session rows of one group, written by the group's transaction (one of its `finals`). The log's
    counters change only here, so a group judged again after a deadlock counts nothing twice."""

    def __init__(self, log: "SessionLog") -> None:
        self.log = log
        self.starts: list[tuple] = []
        self.acks: dict[int, int] = {}
        self.ends: list[tuple] = []  # (id(session), end event, close reason, bytes)

    async def __call__(self, conn: Any) -> None:
        if self.starts:
            await history.supersede_sessions(conn, sorted({s[1] for s in self.starts}))
            await history.start_sessions(conn, self.starts)
        opened = self.log.open
        for key, n in self.acks.items():
            if key in opened:
                opened[key][1] += n
        rows = []
        for key, name, reason, traffic in self.ends:
            entry = opened.pop(key, None)
            if entry is not None:
                rows.append((entry[0], name, reason, 1 + 2 * entry[1] + (reason is not None), traffic))
        if rows:
            await history.end_sessions(conn, rows)


class SessionLog:
    """Sessions of one worker: start at an accepted HELLO, end at done, failure, timeout, drop or protocol
    error. Frames: the HELLO, a COMMAND and a RESPONSE per acknowledged chunk, the CLOSE sent (retries
    of a chunk are in the bytes, not in the frames)."""

    def __init__(self) -> None:
        self.open: dict[int, list] = {}  # id(session) -> [session_ref, acknowledged chunks]

    def _flush(self, group: Any) -> _Flush:
        for final in group.finals:
            if isinstance(final, _Flush):
                return final
        flush = _Flush(self)
        group.finals.append(flush)
        return flush

    def started(self, group: Any, session: Any, chip: Any, resumed: bool) -> None:
        ref = secrets.randbits(62)
        self.open[id(session)] = [ref, 0]
        self._flush(group).starts.append((ref, chip["id"], chip["task_pk"], resumed))

    def event(self, group: Any, ev: Any) -> None:
        """Every event of a running session (call before its traffic is charged: the bytes are read here)."""
        kind, session = type(ev), getattr(ev, "session", None)
        if session is None or id(session) not in self.open:
            return
        if kind is Acked:
            acks = self._flush(group).acks
            acks[id(session)] = acks.get(id(session), 0) + 1
        elif kind in ENDINGS:
            name, reason = ENDINGS[kind]
            self._flush(group).ends.append((id(session), name, reason, session.traffic))
