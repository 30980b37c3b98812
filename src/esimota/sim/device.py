"""A simulated IoT device: module + seed chip, powering up and being written over BCP/1 (DESIGN §5.4).

The module opens a TCP client channel to the BIP endpoint (OPEN CHANNEL, §5.2.2.2), the chip speaks
BCP/1 through it: HELLO, COMMAND/RESPONSE, CLOSE; after COMMIT the card refreshes, re-attaches with the
operational number, checks it can communicate and opens a new channel whose first frame is REPORT.
Faults are switched on per device to exercise every path of the platform.
"""

from __future__ import annotations

import asyncio
import collections
import time
from dataclasses import dataclass, field

from ..codec import bcp, packet
from ..codec.bcp import REPORT_NO_COMM, REPORT_SUCCESS
from ..ota import wire
from .card import MF, Applet, CardFiles, command_refusal



@dataclass
class Faults:
    """What goes wrong on this device (all off by default)."""

    drop_at_frame: int = 0        # cut the channel after receiving the k-th platform frame (1-based), once
    bad_mac: bool = False         # HELLO carries a wrong MAC
    replay_counter: bool = False  # HELLO repeats the last counter
    chip_fault: bool = False      # every UPDATE answers 6581
    no_comm: int = 0              # the first k REPORTs say 01 (number cannot communicate)
    latency: float = 0.0          # seconds added before every frame the device sends
    corrupt_readback: bool = False  # READ BINARY returns altered data (a data error)
    early_report: int = 0         # after the k-th platform frame, drop and REPORT 00 before the script is done, once
    report_iccid: str = ""        # REPORT names this ICCID instead of the one EF_ICCID holds (a lying card)


@dataclass
class DeviceSpec:
    eid: str
    temp_iccid: str
    imei: str | None
    kic: bytes
    kid: bytes
    dek: bytes
    buffer_size: int = 1024
    alpha_len: int = 0
    counter: int = 0
    faults: Faults = field(default_factory=Faults)


@dataclass
class Outcome:
    """What happened: the final CLOSE reason seen, the REPORT result, timings and counts."""

    eid: str
    ok: bool = False
    close_reason: int | None = None
    report_result: int | None = None
    seconds: float = 0.0
    channels: int = 0
    frames_in: int = 0
    frames_out: int = 0
    early_close: int | None = None  # what the platform answered a REPORT sent before the script was done
    error: str = ""


class _Link(asyncio.Protocol):
    """One BIP channel as the module sees it: whole BCP/1 frames in (2-byte length first), bytes out.
    A protocol rather than asyncio streams: a fleet runs hundreds of thousands of these."""

    __slots__ = ("transport", "buf", "frames", "waiter", "closed")

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.frames: collections.deque = collections.deque()
        self.waiter: asyncio.Future | None = None
        self.closed = False

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        buf = self.buf
        buf += data
        while len(buf) >= 2:
            end = 2 + ((buf[0] << 8) | buf[1])
            if len(buf) < end:
                break
            self.frames.append(bytes(buf[2:end]))
            del buf[:end]
        self._wake()

    def eof_received(self) -> bool:
        return False

    def connection_lost(self, exc) -> None:
        self.closed = True
        self._wake()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    async def read(self) -> bytes | None:
        """The next whole frame; None once the platform closed the channel first."""
        while not self.frames:
            if self.closed:
                return None
            self.waiter = asyncio.get_running_loop().create_future()
            await self.waiter
        return self.frames.popleft()

    def write(self, data: bytes) -> None:
        if self.transport is not None and not self.closed:
            self.transport.write(data)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


class Device:
    """One device; `await run()` powers it on and returns its Outcome."""

    def __init__(self, spec: DeviceSpec, host: str, port: int, *, source: str | None = None,
                 frame_timeout: float = 30.0, max_channels: int = 20) -> None:
        self.spec = spec
        self.host, self.port, self.source = host, port, source
        self.frame_timeout = frame_timeout
        self.max_channels = max_channels
        self.files = CardFiles(alpha_len=spec.alpha_len)
        self.applet = Applet(self.files, spec.dek, chip_fault=spec.faults.chip_fault)
        self.counter = spec.counter
        self.last_ota_cntr = -1
        self.dropped = False
        self.early = False
        self.reports = 0
        self.out = Outcome(spec.eid)

    # -- the whole life -----------------------------------------------------------------------
    async def run(self) -> Outcome:
        t0 = time.perf_counter()
        try:
            await self._power_on()
        except (OSError, asyncio.TimeoutError, wire.CodecError) as exc:
            self.out.error = f"{type(exc).__name__}: {exc}"
        self.out.seconds = time.perf_counter() - t0
        return self.out

    async def _power_on(self) -> None:
        reason = bcp.HELLO_POWER_ON
        while self.out.channels < self.max_channels:
            close = await self._write_channel(reason)
            if close is None:  # dropped: resume (§5.4.4)
                if self.early and self.out.early_close is None:  # a card that reports too soon
                    self.out.early_close = await self._report_channel(REPORT_SUCCESS)
                reason = bcp.HELLO_RESUME  # resume with HELLO(02) (§5.4.4; after CLOSE 04 to a REPORT: §5.4 step 5)
                continue
            self.out.close_reason = close
            if close != bcp.CLOSE_DONE or not self.applet.committed:
                return
            await self._refresh_and_report()
            return
        self.out.error = "too many channels"

    async def _refresh_and_report(self) -> None:
        """COMMIT → REFRESH, re-attach with the operational number, check it, REPORT (§6.2.4.1)."""
        while self.out.channels < self.max_channels:
            self.reports += 1
            result = REPORT_NO_COMM if self.reports <= self.spec.faults.no_comm else REPORT_SUCCESS
            close = await self._report_channel(result)
            if close is None:
                continue  # no answer: the same result again, with a new counter
            self.out.report_result = result
            self.out.close_reason = close
            if close == bcp.CLOSE_DONE and result == REPORT_SUCCESS:
                self.out.ok = True
                return
            if close == bcp.CLOSE_STATE and self.out.channels < self.max_channels:
                # The platform has not seen every chunk acknowledged (a drop or a restart lost the last
                # RESPONSE): resume with HELLO(02), which resends the chunks, then REPORT again (§5.4 step 5).
                again = await self._write_channel(bcp.HELLO_RESUME)
                if again not in (None, bcp.CLOSE_DONE):
                    self.out.close_reason = again
                    return
                continue
            if close != bcp.CLOSE_DONE or result != REPORT_NO_COMM:
                return
        self.out.error = "too many channels"

    # -- channels ---------------------------------------------------------------------------
    async def _connect(self) -> _Link:
        self.out.channels += 1
        local = (self.source, 0) if self.source else None
        async with asyncio.timeout(self.frame_timeout):  # no task per call, unlike wait_for
            _, link = await asyncio.get_running_loop().create_connection(_Link, self.host, self.port,
                                                                         local_addr=local)
        return link

    def _next_counter(self) -> int:
        if not self.spec.faults.replay_counter or self.counter == 0:
            self.counter += 1
        return self.counter

    async def _send(self, link: _Link, frame: bytes) -> None:
        if self.spec.faults.latency:
            await asyncio.sleep(self.spec.faults.latency)
        link.write(frame)
        self.out.frames_out += 1

    async def _write_channel(self, reason: int) -> int | None:
        """A channel of the write: HELLO, then answer COMMANDs until CLOSE. None if it dropped."""
        link = await self._connect()
        try:
            kid = bytes(16) if self.spec.faults.bad_mac else self.spec.kid
            iccid = wire.ef_iccid_text(self.files.read(MF, 0x2FE2)) or self.spec.temp_iccid
            await self._send(link, wire.hello_frame(kid, self.spec.eid, iccid, self.spec.imei,
                                                      self._next_counter(), self.spec.buffer_size, reason))
            while True:
                ftype, body = await self._read_frame(link)
                if ftype is None:
                    return None
                if self._should_drop():
                    return None
                if ftype == bcp.CLOSE:
                    return body[0] if body else bcp.CLOSE_PROTOCOL
                if ftype != bcp.COMMAND:
                    return bcp.CLOSE_PROTOCOL
                await self._send(link, self._answer(body))
        finally:
            link.close()

    def _should_drop(self) -> bool:
        k = self.spec.faults.drop_at_frame
        if k and not self.dropped and self.out.frames_in >= k:
            self.dropped = True
            return True
        k = self.spec.faults.early_report
        if k and not self.early and self.out.frames_in >= k:
            self.early = True
            return True
        return False

    def _answer(self, body: bytes) -> bytes:
        """Unwrap a command packet, run its script on the applet, wrap the response packet."""
        refusal = command_refusal(body)
        if refusal is not None:  # answered in the clear header's TAR, counter 0: nothing was opened
            return wire.response_frame(self.spec.kic, self.spec.kid, bytes(packet_tar(body)), 0, refusal, [])
        tar, cntr, apdus = wire.open_command(self.spec.kic, self.spec.kid, body)
        if cntr <= self.last_ota_cntr:  # TS 102 225 table 5.2: counter low
            return wire.response_frame(self.spec.kic, self.spec.kid, tar, cntr, 0x02, [])
        self.last_ota_cntr = cntr
        rapdus = []
        for apdu in apdus:
            r = self.applet.execute(apdu)
            if self.spec.faults.corrupt_readback and apdu[1] == 0xB0 and len(r) > 2:
                r = bytes([r[0] ^ 0xFF]) + r[1:]
            rapdus.append(r)
            if r[-2] not in (0x90, 0x91):  # TS 102 226: execution stops at the first error
                break
        return wire.response_frame(self.spec.kic, self.spec.kid, tar, cntr, 0x00, rapdus)

    async def _report_channel(self, result: int) -> int | None:
        link = await self._connect()
        try:
            iccid = self.spec.faults.report_iccid or wire.ef_iccid_text(self.files.read(MF, 0x2FE2)) \
                or self.spec.temp_iccid
            await self._send(link, wire.report_frame(self.spec.kid, self.spec.eid, iccid,
                                                     self._next_counter(), result))
            ftype, body = await self._read_frame(link)
            if ftype != bcp.CLOSE:
                return None
            return body[0] if body else bcp.CLOSE_PROTOCOL
        finally:
            link.close()

    async def _read_frame(self, link: _Link) -> tuple[int | None, bytes]:
        """(frame type, body); (None, b"") when the channel closed or stayed silent for frame_timeout."""
        try:
            async with asyncio.timeout(self.frame_timeout):
                frame = await link.read()
        except (ConnectionError, asyncio.TimeoutError):
            return None, b""
        if not frame:  # closed, or an empty frame (no type): the channel is as good as dropped
            return None, b""
        self.out.frames_in += 1
        return frame[0], frame[1:]


def packet_tar(body: bytes) -> bytes:
    """The TAR of a command packet's clear header (zeros when even that is cut short)."""
    try:
        return packet.peek_command(body)["tar"]
    except wire.CodecError:
        return bytes(3)
