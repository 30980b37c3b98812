"""The simulated seed chip: its file system (TS 102 221 / TS 31.102 EFs of DESIGN §5.4), the write applet."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..codec import packet
from ..codec.keys import unwrap_ki_opc
from ..errors import CodecError
from ..ota import personalise as P
from ..ota import wire

SW_OK = b"\x90\x00"
SW_WRONG_LENGTH = b"\x67\x00"
SW_NOT_FOUND = b"\x6A\x82"
SW_WRONG_DATA = b"\x6A\x80"
SW_NO_EF = b"\x69\x86"  # command not allowed, no current EF
SW_INS = b"\x6D\x00"
SW_CLA = b"\x6E\x00"
SW_P1P2 = b"\x6B\x00"
SW_MEMORY = b"\x65\x81"  # memory problem: the chip fault of DESIGN §5.4 step 3
SW_OFFSET = b"\x6B\x00"

MF, ADF = 0x3F00, "ADF.USIM"

# The command packet header DESIGN §5.3 fixes: CHL '15', SPI '16 19', KIc '12', KID '12', TAR 'EWA'.
CHL_BCP = 0x15
# TS 102 225 table 5.2 statuses the card answers a packet it will not open with
POR_SECURITY_ERROR, POR_TAR_UNKNOWN, POR_INSUFFICIENT_SECURITY = 0x06, 0x09, 0x0A


def command_refusal(body: bytes) -> int | None:
    """Why the card refuses a command packet before opening it (TS 102 225 §5.1.1, table 5.2), or None.

    A standard UICC answers only the security it was personalised with: CHL, SPI, KIc, KID and TAR
    must be exactly those of DESIGN §5.3 (KID '12': AES-CMAC; '1A' is a reserved coding, §5.1.3.1).
    """
    try:
        head = packet.peek_command(body)
    except CodecError:
        return POR_SECURITY_ERROR
    if head["tar"] != wire.TAR:
        return POR_TAR_UNKNOWN
    if head["chl"] != CHL_BCP or head["spi"] != packet.SPI_BCP:
        return POR_INSUFFICIENT_SECURITY
    if head["kic"] != packet.KIC_BCP or head["kid"] != packet.KID_BCP:
        return POR_SECURITY_ERROR
    return None


@dataclass
class EF:
    size: int
    data: bytearray
    record: int = 0  # record size; 0 = transparent


def _fresh_files(alpha_len: int) -> dict:
    rec = alpha_len + 14
    return {
        (MF, 0x2FE2): EF(10, bytearray(b"\xFF" * 10)),
        (ADF, 0x6F07): EF(9, bytearray(b"\xFF" * 9)),
        (ADF, 0x6F78): EF(2, bytearray(2)),
        (ADF, 0x6F40): EF(rec * 2, bytearray(b"\xFF" * rec * 2), record=rec),
        (ADF, 0x6F7E): EF(11, bytearray(b"\xFF" * 11)),
        (ADF, 0x6F73): EF(14, bytearray(b"\xFF" * 14)),
        (ADF, 0x6FE3): EF(18, bytearray(b"\xFF" * 18)),
    }


@dataclass
class CardFiles:
    """The EFs a write touches, selected by the ordinary SELECT rules (MF, ADF by AID, EF by FID)."""

    alpha_len: int = 0
    files: dict = field(default_factory=dict)
    df: object = MF
    ef: tuple | None = None

    def __post_init__(self) -> None:
        if not self.files:
            self.files = _fresh_files(self.alpha_len)

    def read(self, df, fid) -> bytes:
        return bytes(self.files[(df, fid)].data)

    def select(self, apdu: bytes) -> bytes:
        p1, data = apdu[2], apdu[5:5 + apdu[4]] if len(apdu) > 4 else b""
        if p1 == 0x04:
            if data == P.ADF_USIM_AID:
                self.df, self.ef = ADF, None
                return SW_OK
            return SW_NOT_FOUND
        if p1 != 0x00 or len(data) != 2:
            return SW_P1P2
        fid = int.from_bytes(data, "big")
        if fid == MF:
            self.df, self.ef = MF, None
            return SW_OK
        if (self.df, fid) in self.files:
            self.ef = (self.df, fid)
            return SW_OK
        return SW_NOT_FOUND


@dataclass
class Applet:
    """The write applet (TAR 'ESW' = 45 57 41): executes the script's C-APDUs against the files."""

    files: CardFiles
    dek: bytes
    chip_fault: bool = False  # every UPDATE answers 6581
    staged: tuple | None = None  # (Ki, OPc) after STORE DATA
    committed: bool = False
    ki: bytes = b""
    opc: bytes = b""

    def execute(self, apdu: bytes) -> bytes:
        """One C-APDU in, its R-APDU (data ‖ SW1SW2) out."""
        if len(apdu) < 4:
            return SW_WRONG_LENGTH
        cla, ins = apdu[0], apdu[1]
        if cla == 0x00 and ins == 0xA4:
            return self.files.select(apdu)
        if cla == 0x00 and ins in (0xD6, 0xDC):
            return SW_MEMORY if self.chip_fault else self._update(apdu)
        if cla == 0x00 and ins == 0xB0:
            return self._read(apdu)
        if cla == 0x80 and ins == 0xE2:
            return self._store_data(apdu)
        if cla == 0x80 and ins == 0x7E:
            return self._commit()
        return SW_INS if cla in (0x00, 0x80) else SW_CLA

    def _body(self, apdu: bytes) -> bytes | None:
        if len(apdu) < 5 or len(apdu) != 5 + apdu[4]:
            return None
        return apdu[5:]

    def _update(self, apdu: bytes) -> bytes:
        data = self._body(apdu)
        if data is None:
            return SW_WRONG_LENGTH
        if self.files.ef is None:
            return SW_NO_EF
        ef = self.files.files[self.files.ef]
        if apdu[1] == 0xDC:  # UPDATE RECORD, absolute mode (P2 = 04)
            rec = apdu[2]
            if apdu[3] != 0x04 or ef.record == 0 or not 1 <= rec <= ef.size // ef.record:
                return SW_P1P2
            if len(data) != ef.record:
                return SW_WRONG_LENGTH
            ef.data[(rec - 1) * ef.record:rec * ef.record] = data
            return SW_OK
        offset = (apdu[2] << 8) | apdu[3]
        if ef.record or offset + len(data) > ef.size:
            return SW_OFFSET if not ef.record else SW_NO_EF
        ef.data[offset:offset + len(data)] = data
        return SW_OK

    def _read(self, apdu: bytes) -> bytes:
        if len(apdu) != 5:
            return SW_WRONG_LENGTH
        if self.files.ef is None:
            return SW_NO_EF
        ef = self.files.files[self.files.ef]
        offset, le = (apdu[2] << 8) | apdu[3], apdu[4] or 256
        if offset + le > ef.size:
            return SW_WRONG_LENGTH
        return bytes(ef.data[offset:offset + le]) + SW_OK

    def _store_data(self, apdu: bytes) -> bytes:
        data = self._body(apdu)
        if data is None:
            return SW_WRONG_LENGTH
        if len(data) != 43 or data[:2] != P.DGI_KEYS or data[2] != 40:
            return SW_WRONG_DATA
        try:
            self.staged = unwrap_ki_opc(self.dek, data[3:])
        except CodecError:
            return SW_WRONG_DATA
        return SW_OK

    def _commit(self) -> bytes:
        if self.staged is None:
            return b"\x69\x85"  # conditions of use not satisfied: no keys stored
        self.ki, self.opc = self.staged
        self.committed = True
        return SW_OK
