"""Pure-Python twin of esimota._ext.packet: ETSI TS 102 225 secured command and response packets."""

from __future__ import annotations

from esimota.codec import _crypto
from esimota.codec._types import CommandPacket, ResponsePacket
from esimota.errors import (BadMacError, BadPaddingError, BadValueError, LengthError,
                            StaleCounterError, TruncatedError)

#: DESIGN §5.3: SPI '16 19', KIc '12' (AES-CBC key 1), KID '12' (AES-CMAC key 1: TS 102 225 §5.1.3.1 b2b1 = 10
#: AES, b4b3 = 00 CMAC; '1A' sets b4b3 = 10, a reserved coding a standard UICC may refuse)
SPI_BCP, KIC_BCP, KID_BCP = 0x1619, 0x12, 0x12
_CC_LEN = 8


def _bytes(buf) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


def _algo(kx, ciphering):
    """TS 102 225 §5.1.2 KIc/KID coding (b2b1 family, b4b3 mode) -> _crypto algorithm code."""
    family, mode = kx & 0x03, (kx >> 2) & 0x03
    if family == 0x02 and (mode == 0 or (mode == 2 and not ciphering)):
        return _crypto.AES  # AES-CBC for KIc; CMAC for KID ('10', and '00' as pySim codes it)
    if family == 0x01 and mode in (1, 2):  # triple DES, 2 or 3 keys, outer CBC
        return _crypto.DES3
    raise BadValueError("unsupported KIc/KID algorithm", -1, kx)


def _cc_len(mode, offset):
    """RC/CC/DS bits (TS 102 225 §5.1.1): only 'no check' and 'CC' are supported."""
    if mode == 0:
        return 0
    if mode == 2:
        return _CC_LEN
    raise BadValueError("redundancy check and digital signature are not supported", offset, None)


def wrap_command(kic, kid, tar, cntr, secured_data, spi=SPI_BCP, kic_byte=KIC_BCP, kid_byte=KID_BCP):
    """Build a command packet (TS 102 225 §5.1.1, DESIGN §5.3): CPL CHL SPI KIc KID TAR CNTR PCNTR CC data."""
    if len(tar) != 3 or not 0 <= cntr < 1 << 40 or not 0 <= spi <= 0xFFFF:
        raise BadValueError("TAR, CNTR or SPI out of range", -1, None)
    data = _bytes(secured_data)
    spi1 = spi >> 8
    cc_len = _cc_len(spi1 & 0x03, -1)
    ciphering = spi1 & 0x04
    pcntr = 0
    if ciphering:
        bs = _crypto.block_size(_algo(kic_byte, True))
        pcntr = -(6 + cc_len + len(data)) % bs
    cpl = 1 + 13 + cc_len + len(data) + pcntr
    if cpl > 0xFFFF:
        raise BadValueError("secured data too long", -1, None)
    head = bytes((cpl >> 8, cpl & 0xFF, 13 + cc_len, spi1, spi & 0xFF, kic_byte, kid_byte)) + bytes(tar)
    counter = cntr.to_bytes(5, "big") + bytes((pcntr,))
    pad = bytes(pcntr)
    cc = b""
    if cc_len:
        cc = _crypto.cc(_algo(kid_byte, False), kid, head + counter + data + pad)
    body = counter + cc + data + pad
    if ciphering:
        body = _crypto.cbc_encrypt(_algo(kic_byte, True), kic, body)
    return head + body


def _decipher(kic, algo_byte, region, offset):
    bs = _crypto.block_size(_algo(algo_byte, True))
    if not region or len(region) % bs:
        raise LengthError("ciphered part is not a whole number of blocks", offset, None)
    return _crypto.cbc_decrypt(_algo(algo_byte, True), kic, region)


def _check_padding(pcntr, available, ciphering, algo_byte, offset):
    if pcntr > available or (not ciphering and pcntr) or \
            (ciphering and pcntr >= _crypto.block_size(_algo(algo_byte, True))):
        raise BadPaddingError("padding count impossible", offset, None)


def _outer(buf, min_len, what):
    """Check the 2-byte packet length (CPL or RPL) against the buffer: returns the end."""
    n = len(buf)
    if n < min_len:
        raise TruncatedError(f"{what} header truncated", n)
    end = 2 + ((buf[0] << 8) | buf[1])
    if end > n:
        raise TruncatedError(f"{what} length past the end", 0)
    if end < n:
        raise LengthError(f"bytes after the {what}", end)
    return end


def unwrap_command(kic, kid, buf, last_cntr=None):
    """Verify and open a command packet -> CommandPacket; errors carry the packet offset."""
    buf = _bytes(buf)
    end = _outer(buf, 16, "command packet")
    spi = (buf[3] << 8) | buf[4]
    cc_len = _cc_len(buf[3] & 0x03, 3)
    if buf[2] != 13 + cc_len:
        raise LengthError("CHL disagrees with the SPI", 2, None)
    ciphering = buf[3] & 0x04
    plain = _decipher(kic, buf[5], buf[10:end], 10) if ciphering else buf[10:end]
    if len(plain) < 6 + cc_len:
        raise TruncatedError("command packet shorter than its header", end)
    if cc_len:
        mac_input = buf[:10] + plain[:6] + plain[6 + cc_len:]
        if not _crypto.equal(_crypto.cc(_algo(buf[6], False), kid, mac_input), plain[6:6 + cc_len]):
            raise BadMacError("cryptographic checksum does not verify", 16, None)
    pcntr = plain[5]
    _check_padding(pcntr, len(plain) - 6 - cc_len, ciphering, buf[5], 15)
    cntr = int.from_bytes(plain[:5], "big")
    if last_cntr is not None and cntr <= last_cntr:
        raise StaleCounterError("counter not above the last one", 10, None)
    data = plain[6 + cc_len:len(plain) - pcntr]
    return CommandPacket(spi, buf[5], buf[6], buf[7:10], cntr, pcntr, data)


def wrap_response(kic, kid, tar, cntr, status, additional_data, spi=SPI_BCP, kic_byte=KIC_BCP,
                  kid_byte=KID_BCP, udh=b""):
    """Build a response packet (TS 102 225 §5.2.1): RPL RHL TAR CNTR PCNTR status CC data.

    The SPI's second byte says whether it is ciphered and checked; `udh` is the SMS user-data
    header that the SMS-PP dialect puts in front and covers by the CC (not part of the output).
    """
    if len(tar) != 3 or not 0 <= cntr < 1 << 40 or not 0 <= status <= 255:
        raise BadValueError("TAR, CNTR or status out of range", -1, None)
    data = _bytes(additional_data)
    spi2 = spi & 0xFF
    cc_len = _cc_len((spi2 >> 2) & 0x03, -1)
    ciphering = spi2 & 0x10
    pcntr = -(7 + cc_len + len(data)) % _crypto.block_size(_algo(kic_byte, True)) if ciphering else 0
    rpl = 1 + 10 + cc_len + len(data) + pcntr
    if rpl > 0xFFFF:
        raise BadValueError("additional data too long", -1, None)
    head = bytes((rpl >> 8, rpl & 0xFF, 10 + cc_len)) + bytes(tar)
    counter = cntr.to_bytes(5, "big") + bytes((pcntr, status))
    pad = bytes(pcntr)
    cc = b""
    if cc_len:
        cc = _crypto.cc(_algo(kid_byte, False), kid, bytes(udh) + head + counter + data + pad)
    body = counter + cc + data + pad
    if ciphering:
        body = _crypto.cbc_encrypt(_algo(kic_byte, True), kic, body)
    return head + body


def unwrap_response(kic, kid, buf, spi=SPI_BCP, kic_byte=KIC_BCP, kid_byte=KID_BCP, udh=b"",
                    tar=None, cntr=None):
    """Verify and open a response packet -> ResponsePacket; `tar`/`cntr` must match if given."""
    buf = _bytes(buf)
    end = _outer(buf, 13, "response packet")
    spi2 = spi & 0xFF
    cc_len = _cc_len((spi2 >> 2) & 0x03, -1)
    if buf[2] != 10 + cc_len:
        raise LengthError("RHL disagrees with the SPI", 2, None)
    ciphering = spi2 & 0x10
    plain = _decipher(kic, kic_byte, buf[6:end], 6) if ciphering else buf[6:end]
    if len(plain) < 7 + cc_len:
        raise TruncatedError("response packet shorter than its header", end)
    if cc_len:
        mac_input = bytes(udh) + buf[:6] + plain[:7] + plain[7 + cc_len:]
        if not _crypto.equal(_crypto.cc(_algo(kid_byte, False), kid, mac_input), plain[7:7 + cc_len]):
            raise BadMacError("cryptographic checksum does not verify", 13, None)
    pcntr = plain[5]
    _check_padding(pcntr, len(plain) - 7 - cc_len, ciphering, kic_byte, 11)
    got_cntr = int.from_bytes(plain[:5], "big")
    if tar is not None and bytes(tar) != buf[3:6]:
        raise BadValueError("TAR differs from the command's", 3, None)
    if cntr is not None and cntr != got_cntr:
        raise BadValueError("CNTR differs from the command's", 6, None)
    data = plain[7 + cc_len:len(plain) - pcntr]
    return ResponsePacket(buf[3:6], got_cntr, pcntr, plain[6], data)


def max_secured_data(packet_budget, spi=SPI_BCP, kic_byte=KIC_BCP):
    """Largest secured data whose command packet fits `packet_budget` bytes (chunking helper)."""
    spi1 = spi >> 8
    cc_len = _cc_len(spi1 & 0x03, -1)
    fixed = 2 + 1 + 7 + 6 + cc_len  # CPL, CHL, SPI..TAR, CNTR+PCNTR, CC
    room = packet_budget - fixed
    if spi1 & 0x04:
        bs = _crypto.block_size(_algo(kic_byte, True))
        room = (packet_budget - 10) // bs * bs - 6 - cc_len  # ciphered part is whole blocks
    return max(room, 0)
