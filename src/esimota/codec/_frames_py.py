"""Pure-Python twin of esimota._ext.frames: BCP/1 frames (DESIGN §5.1) and their MACs."""

from __future__ import annotations

from esimota.codec import _crypto
from esimota.codec.bcp import (CLOSE, COMMAND, HELLO, HELLO_POWER_ON, HELLO_RESUME, MAX_CLOSE_REASON,
                               MAX_REPORT_RESULT, REPORT, RESPONSE)
from esimota.errors import (BadMacError, BadTagError, BadValueError, LengthError,
                            StaleCounterError, TruncatedError)

TAG_EID, TAG_ICCID, TAG_IMEI, TAG_COUNTER, TAG_BUFFER, TAG_REASON = 0xC0, 0xC1, 0xC2, 0xC3, 0xC4, 0xC5
TAG_RESULT, TAG_DIAGNOSTIC, TAG_MAC = 0xC6, 0xC7, 0xCF
#: DESIGN §5.1: (tag, field, exact length or -1 for variable, optional?) in the order they appear
HELLO_LAYOUT = ((TAG_EID, "eid", 16, False), (TAG_ICCID, "iccid", 10, False),
                (TAG_IMEI, "imei", 8, True), (TAG_COUNTER, "counter", 5, False),
                (TAG_BUFFER, "buffer_size", 2, False), (TAG_REASON, "reason", 1, False),
                (TAG_MAC, "mac", 8, False))
REPORT_LAYOUT = ((TAG_EID, "eid", 16, False), (TAG_ICCID, "iccid", 10, False),
                 (TAG_COUNTER, "counter", 5, False), (TAG_RESULT, "result", 1, False),
                 (TAG_DIAGNOSTIC, "diagnostic", -1, True), (TAG_MAC, "mac", 8, False))
_INT_FIELDS = ("counter", "buffer_size", "reason", "result")


def _bytes(buf) -> bytes:
    return buf if type(buf) is bytes else bytes(buf)


def encode_frame(ftype, body):
    """LEN(2) || TYPE || BODY, LEN counting TYPE and BODY."""
    n = 1 + len(body)
    if n > 0xFFFF or not 0 <= ftype <= 255:
        raise BadValueError("frame too long or bad type", -1, None)
    return bytes((n >> 8, n & 0xFF, ftype)) + bytes(body)


def frame_size(buf):
    """Total size of the frame at the start of `buf` (0 while fewer than 2 bytes are there)."""
    if len(buf) < 2:
        return 0
    return 2 + ((buf[0] << 8) | buf[1])


def hello_mac(kid, mac_input):
    """MAC of HELLO and REPORT: first 8 bytes of AES-CMAC under K_ID over TYPE and the TLVs before 'CF'."""
    return _crypto.aes_cmac(kid, mac_input)[:8]


def _tlv(out, tag, value):
    out.append(tag)
    out.append(len(value))
    out += value


def _signed(kid, ftype, parts):
    body = bytearray((ftype,))
    for tag, value in parts:
        _tlv(body, tag, value)
    _tlv(body, TAG_MAC, hello_mac(kid, body))
    n = len(body)
    return bytes((n >> 8, n & 0xFF)) + bytes(body)


def encode_hello(kid, eid, iccid, counter, buffer_size, reason, imei=None):
    """HELLO frame with its MAC; eid 16 bytes, iccid 10 (as in EF_ICCID), imei 8 or None."""
    if len(eid) != 16 or len(iccid) != 10 or (imei is not None and len(imei) != 8):
        raise BadValueError("EID, ICCID or IMEI of the wrong size", -1, None)
    if not 0 <= counter < 1 << 40 or not 0 <= buffer_size <= 0xFFFF or not 1 <= reason <= 2:
        raise BadValueError("counter, buffer size or reason out of range", -1, None)
    parts = [(TAG_EID, eid), (TAG_ICCID, iccid)]
    if imei is not None:
        parts.append((TAG_IMEI, imei))
    parts += [(TAG_COUNTER, counter.to_bytes(5, "big")), (TAG_BUFFER, buffer_size.to_bytes(2, "big")),
              (TAG_REASON, bytes((reason,)))]
    return _signed(kid, HELLO, parts)


def encode_report(kid, eid, iccid, counter, result, diagnostic=None):
    """REPORT frame with its MAC; `diagnostic` is text (UTF-8 on the wire) or None."""
    if len(eid) != 16 or len(iccid) != 10:
        raise BadValueError("EID or ICCID of the wrong size", -1, None)
    if not 0 <= counter < 1 << 40 or not 0 <= result <= MAX_REPORT_RESULT:
        raise BadValueError("counter or result out of range", -1, None)
    parts = [(TAG_EID, eid), (TAG_ICCID, iccid), (TAG_COUNTER, counter.to_bytes(5, "big")),
             (TAG_RESULT, bytes((result,)))]
    if diagnostic is not None:
        text = diagnostic.encode("utf-8")
        if len(text) > 127:
            raise BadValueError("diagnostic text longer than 127 bytes", -1, TAG_DIAGNOSTIC)
        parts.append((TAG_DIAGNOSTIC, text))
    return _signed(kid, REPORT, parts)


def encode_close(reason, retry_after=0):
    """CLOSE frame: reason (1) and retry-after seconds (2)."""
    if not 0 <= reason <= 255 or not 0 <= retry_after <= 0xFFFF:
        raise BadValueError("reason or retry-after out of range", -1, None)
    return bytes((0, 4, CLOSE, reason, retry_after >> 8, retry_after & 0xFF))


def _field(name, value, voff, tag):
    if name in _INT_FIELDS:
        number = int.from_bytes(value, "big")
        if ((name == "reason" and not HELLO_POWER_ON <= number <= HELLO_RESUME)
                or (name == "result" and number > MAX_REPORT_RESULT)):
            raise BadValueError(f"unknown {name}", voff, tag)
        return number
    if name == "diagnostic":
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            raise BadValueError("diagnostic text is not UTF-8", voff, tag) from None
    return value


def _signed_body(buf, end, layout):
    """Walk the TLVs of HELLO/REPORT in their fixed order (DESIGN §5.1) -> fields."""
    fields = {}
    pos = 3
    counter_at = -1
    for tag, name, size, optional in layout:
        if pos >= end or buf[pos] != tag:
            if optional:
                fields[name] = None
                continue
            if pos >= end:
                raise TruncatedError("element missing", pos, tag)
            raise BadTagError("unexpected tag", pos, buf[pos])
        if pos + 1 >= end:
            raise TruncatedError("length missing", pos + 1, tag)
        length = buf[pos + 1]
        if (size >= 0 and length != size) or length > 127:
            raise LengthError("wrong length", pos + 1, tag)
        if pos + 2 + length > end:
            raise TruncatedError("value truncated", pos + 1, tag)
        fields[name] = _field(name, buf[pos + 2:pos + 2 + length], pos + 2, tag)
        if tag == TAG_COUNTER:
            counter_at = pos + 2
        pos += 2 + length
    if pos != end:
        raise LengthError("bytes after the MAC", pos, TAG_MAC)
    return fields, counter_at


def verify_frame_mac(kid, frame):
    """Check the 'CF' MAC that ends a HELLO or REPORT frame; BadMacError if it does not verify."""
    frame = _bytes(frame)
    n = len(frame)
    if n < 13:
        raise TruncatedError("frame too short for a MAC", n)
    if not _crypto.equal(hello_mac(kid, frame[2:n - 10]), frame[n - 8:]):
        raise BadMacError("MAC does not verify", n - 8, TAG_MAC)


def decode_frame(buf, kid=None, last_counter=None):
    """One whole frame -> (type, fields); with `kid`, verify the MAC; with `last_counter`, the counter."""
    buf = _bytes(buf)
    n = len(buf)
    if n < 3:
        raise TruncatedError("frame header truncated", 0)
    end = 2 + ((buf[0] << 8) | buf[1])
    if end > n:
        raise TruncatedError("frame truncated", 0)
    if end < n:
        raise LengthError("bytes after the frame", end)
    ftype = buf[2]
    if ftype == HELLO or ftype == REPORT:
        fields, counter_at = _signed_body(buf, end, HELLO_LAYOUT if ftype == HELLO else REPORT_LAYOUT)
        if kid is not None:
            verify_frame_mac(kid, buf)
        if last_counter is not None and fields["counter"] <= last_counter:
            raise StaleCounterError("card counter not above the last one seen", counter_at, TAG_COUNTER)
        return ftype, fields
    if ftype == COMMAND or ftype == RESPONSE:
        if end == 3:
            raise LengthError("empty packet", 0)
        return ftype, {"packet": buf[3:end]}
    if ftype == CLOSE:
        if end != 6:
            raise LengthError("CLOSE body is not 3 bytes", 0)
        if buf[3] > MAX_CLOSE_REASON:
            raise BadValueError("unknown CLOSE reason", 3)
        return ftype, {"reason": buf[3], "retry_after": (buf[4] << 8) | buf[5]}
    raise BadValueError("unknown frame type", 2, None)
