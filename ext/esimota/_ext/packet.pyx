"""Compiled ETSI TS 102 225 secured command and response packets (twin: codec/_packet_py.py)."""

# The ciphers and MACs are `cryptography`'s, through esimota.codec._crypto (cached key objects);
# this module only lays out and checks the bytes around them.

cimport cython

from esimota._ext.tlv cimport tlv_bytes

from esimota.codec import _crypto
from esimota.codec._types import CommandPacket, ResponsePacket
from esimota.errors import (BadMacError, BadPaddingError, BadValueError, LengthError,
                            StaleCounterError, TruncatedError)

SPI_BCP, KIC_BCP, KID_BCP = 0x1619, 0x12, 0x12
cdef int AES = _crypto.AES, DES3 = _crypto.DES3
_cc = _crypto.cc
_encrypt = _crypto.cbc_encrypt
_decrypt = _crypto.cbc_decrypt
_equal = _crypto.equal


cdef int _algo(int kx, bint ciphering) except -1:
    """TS 102 225 §5.1.2 KIc/KID coding (b2b1 family, b4b3 mode) -> _crypto algorithm code."""
    cdef int family = kx & 0x03, mode = (kx >> 2) & 0x03
    if family == 0x02 and (mode == 0 or (mode == 2 and not ciphering)):
        return AES  # AES-CBC for KIc; CMAC for KID ('10', and '00' as pySim codes it)
    if family == 0x01 and (mode == 1 or mode == 2):
        return DES3
    raise BadValueError("unsupported KIc/KID algorithm", -1, kx)


cdef inline int _bs(int algo):
    return 16 if algo == AES else 8


cdef inline Py_ssize_t _pad(Py_ssize_t size, int bs):
    """Zero padding that brings `size` to a whole number of cipher blocks."""
    return (bs - size % bs) % bs


cdef int _cc_len(int mode, Py_ssize_t offset) except -1:
    if mode == 0:
        return 0
    if mode == 2:
        return 8
    raise BadValueError("redundancy check and digital signature are not supported", offset, None)


def wrap_command(kic, kid, tar, cntr, secured_data, int spi=SPI_BCP, int kic_byte=KIC_BCP,
                 int kid_byte=KID_BCP):
    """Build a command packet (TS 102 225 §5.1.1, DESIGN §5.3): CPL CHL SPI KIc KID TAR CNTR PCNTR CC data."""
    if len(tar) != 3 or not 0 <= cntr < 1 << 40 or not 0 <= spi <= 0xFFFF:
        raise BadValueError("TAR, CNTR or SPI out of range", -1, None)
    cdef bytes data = tlv_bytes(secured_data)
    cdef int spi1 = spi >> 8
    cdef int cc_len = _cc_len(spi1 & 0x03, -1)
    cdef bint ciphering = spi1 & 0x04
    cdef Py_ssize_t pcntr = 0, cpl
    if ciphering:
        pcntr = _pad(6 + cc_len + len(data), _bs(_algo(kic_byte, True)))
    cpl = 1 + 13 + cc_len + len(data) + pcntr
    if cpl > 0xFFFF:
        raise BadValueError("secured data too long", -1, None)
    cdef bytes head = bytes((cpl >> 8, cpl & 0xFF, 13 + cc_len, spi1, spi & 0xFF, kic_byte,
                             kid_byte)) + bytes(tar)
    cdef bytes counter = (<object>cntr).to_bytes(5, "big") + bytes((pcntr,))
    cdef bytes pad = bytes(pcntr)
    cdef bytes cc = b""
    if cc_len:
        cc = _cc(_algo(kid_byte, False), kid, head + counter + data + pad)
    body = counter + cc + data + pad
    if ciphering:
        body = _encrypt(_algo(kic_byte, True), kic, body)
    return head + body


cdef bytes _decipher(kic, int algo_byte, bytes region, Py_ssize_t offset):
    cdef int algo = _algo(algo_byte, True)
    if not region or len(region) % _bs(algo):
        raise LengthError("ciphered part is not a whole number of blocks", offset, None)
    return _decrypt(algo, kic, region)


cdef int _check_padding(int pcntr, Py_ssize_t available, bint ciphering, int algo_byte,
                        Py_ssize_t offset) except -1:
    if pcntr > available or (not ciphering and pcntr) or \
            (ciphering and pcntr >= _bs(_algo(algo_byte, True))):
        raise BadPaddingError("padding count impossible", offset, None)
    return 0


cdef Py_ssize_t _outer(const unsigned char* p, Py_ssize_t n, Py_ssize_t min_len, str what) except -1:
    """Check the 2-byte packet length (CPL or RPL) against the buffer: returns the end."""
    cdef Py_ssize_t end
    if n < min_len:
        raise TruncatedError(f"{what} header truncated", n)
    end = 2 + ((p[0] << 8) | p[1])
    if end > n:
        raise TruncatedError(f"{what} length past the end", 0)
    if end < n:
        raise LengthError(f"bytes after the {what}", end)
    return end


cdef long long _int40(const unsigned char* p):
    cdef long long v = 0
    cdef int i
    for i in range(5):
        v = (v << 8) | p[i]
    return v


@cython.boundscheck(False)
@cython.wraparound(False)
def unwrap_command(kic, kid, buf, last_cntr=None):
    """Verify and open a command packet -> CommandPacket; errors carry the packet offset."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t end = _outer(p, len(b), 16, "command packet"), plen
    cdef int cc_len = _cc_len(p[3] & 0x03, 3)
    cdef bint ciphering = p[3] & 0x04
    cdef bytes plain
    cdef const unsigned char* q
    if p[2] != 13 + cc_len:
        raise LengthError("CHL disagrees with the SPI", 2, None)
    plain = _decipher(kic, p[5], b[10:end], 10) if ciphering else b[10:end]
    plen = len(plain)
    q = plain
    if plen < 6 + cc_len:
        raise TruncatedError("command packet shorter than its header", end)
    if cc_len:
        mac_input = b[:10] + plain[:6] + plain[6 + cc_len:]
        if not _equal(_cc(_algo(p[6], False), kid, mac_input), plain[6:6 + cc_len]):
            raise BadMacError("cryptographic checksum does not verify", 16, None)
    cdef int pcntr = q[5]
    _check_padding(pcntr, plen - 6 - cc_len, ciphering, p[5], 15)
    cdef long long cntr = _int40(q)
    if last_cntr is not None and cntr <= last_cntr:
        raise StaleCounterError("counter not above the last one", 10, None)
    return CommandPacket((p[3] << 8) | p[4], p[5], p[6], b[7:10], cntr, pcntr,
                         plain[6 + cc_len:plen - pcntr])


def wrap_response(kic, kid, tar, cntr, status, additional_data, int spi=SPI_BCP,
                  int kic_byte=KIC_BCP, int kid_byte=KID_BCP, udh=b""):
    """Build a response packet (TS 102 225 §5.2.1): RPL RHL TAR CNTR PCNTR status CC data."""
    if len(tar) != 3 or not 0 <= cntr < 1 << 40 or not 0 <= status <= 255:
        raise BadValueError("TAR, CNTR or status out of range", -1, None)
    cdef bytes data = tlv_bytes(additional_data)
    cdef int spi2 = spi & 0xFF
    cdef int cc_len = _cc_len((spi2 >> 2) & 0x03, -1)
    cdef bint ciphering = spi2 & 0x10
    cdef Py_ssize_t pcntr = 0, rpl
    if ciphering:
        pcntr = _pad(7 + cc_len + len(data), _bs(_algo(kic_byte, True)))
    rpl = 1 + 10 + cc_len + len(data) + pcntr
    if rpl > 0xFFFF:
        raise BadValueError("additional data too long", -1, None)
    cdef bytes head = bytes((rpl >> 8, rpl & 0xFF, 10 + cc_len)) + bytes(tar)
    cdef bytes counter = (<object>cntr).to_bytes(5, "big") + bytes((pcntr, status))
    cdef bytes pad = bytes(pcntr)
    cdef bytes cc = b""
    if cc_len:
        cc = _cc(_algo(kid_byte, False), kid, bytes(udh) + head + counter + data + pad)
    body = counter + cc + data + pad
    if ciphering:
        body = _encrypt(_algo(kic_byte, True), kic, body)
    return head + body


@cython.boundscheck(False)
@cython.wraparound(False)
def unwrap_response(kic, kid, buf, int spi=SPI_BCP, int kic_byte=KIC_BCP, int kid_byte=KID_BCP,
                    udh=b"", tar=None, cntr=None):
    """Verify and open a response packet -> ResponsePacket; `tar`/`cntr` must match if given."""
    cdef bytes b = tlv_bytes(buf)
    cdef const unsigned char* p = b
    cdef Py_ssize_t end = _outer(p, len(b), 13, "response packet"), plen
    cdef int spi2 = spi & 0xFF
    cdef int cc_len = _cc_len((spi2 >> 2) & 0x03, -1)
    cdef bint ciphering = spi2 & 0x10
    cdef bytes plain
    cdef const unsigned char* q
    if p[2] != 10 + cc_len:
        raise LengthError("RHL disagrees with the SPI", 2, None)
    plain = _decipher(kic, kic_byte, b[6:end], 6) if ciphering else b[6:end]
    plen = len(plain)
    q = plain
    if plen < 7 + cc_len:
        raise TruncatedError("response packet shorter than its header", end)
    if cc_len:
        mac_input = bytes(udh) + b[:6] + plain[:7] + plain[7 + cc_len:]
        if not _equal(_cc(_algo(kid_byte, False), kid, mac_input), plain[7:7 + cc_len]):
            raise BadMacError("cryptographic checksum does not verify", 13, None)
    cdef int pcntr = q[5]
    _check_padding(pcntr, plen - 7 - cc_len, ciphering, kic_byte, 11)
    cdef long long got = _int40(q)
    if tar is not None and bytes(tar) != b[3:6]:
        raise BadValueError("TAR differs from the command's", 3, None)
    if cntr is not None and cntr != got:
        raise BadValueError("CNTR differs from the command's", 6, None)
    return ResponsePacket(b[3:6], got, pcntr, q[6], plain[7 + cc_len:plen - pcntr])


def max_secured_data(packet_budget, int spi=SPI_BCP, int kic_byte=KIC_BCP):
    """Largest secured data whose command packet fits `packet_budget` bytes (chunking helper)."""
    cdef int spi1 = spi >> 8
    cdef int cc_len = _cc_len(spi1 & 0x03, -1)
    cdef long long room = packet_budget - (2 + 1 + 7 + 6 + cc_len)
    cdef int bs
    if spi1 & 0x04:
        bs = _bs(_algo(kic_byte, True))
        room = (packet_budget - 10) // bs * bs - 6 - cc_len
    return max(room, 0)
