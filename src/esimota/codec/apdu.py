"""ISO/IEC 7816-4 C-APDUs (cases 1-4, short and extended) and R-APDUs: facade.

Public API:
    apdu_parse(buf) -> (cla, ins, p1, p2, data, le, extended)   le None when absent (256/65536 for 00)
    apdu_build(cla, ins, p1, p2, data=b"", le=None, extended=None) -> bytes
    apdu_case(data, le) -> 1..4
    rapdu_parse(buf) -> (data, sw); rapdu_build(data, sw) -> bytes
"""

from __future__ import annotations

from esimota.codec.tlv import IMPL

apdu_parse = IMPL.apdu_parse
apdu_build = IMPL.apdu_build
rapdu_parse = IMPL.rapdu_parse
rapdu_build = IMPL.rapdu_build


def apdu_case(data: bytes, le: int | None) -> int:
    """ISO/IEC 7816-4 §5.1 case: 1 no data no Le, 2 Le only, 3 data only, 4 both."""
    return (3 if data else 1) + (1 if le is not None else 0)
