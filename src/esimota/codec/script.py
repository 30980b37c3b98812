"""TS 102 226 remote APDU scripts (expanded 'AA'/'AE', 'AB'/'AF'; compact) and chunking: facade.

Public API:
    build_command_script(items, indefinite=False) -> bytes   items: C-APDU bytes or (tag, value)
    parse_command_script(buf) -> [(tag, value)]              tags 0x22 C-APDU, 0x81, 0x82
    command_apdus(buf) -> [C-APDU bytes]
    build_response_script(count, rapdus, indefinite=False) -> bytes
    parse_response_script(buf) -> (count, [R-APDU bytes])
    build_compact(apdus) / parse_compact(buf); build_compact_response / parse_compact_response
    script_size(apdus, indefinite=False) -> int
    chunk_apdus(apdus, budget, indefinite=False) -> [[C-APDU]]  split only between C-APDUs
"""

from __future__ import annotations

from esimota._impl import load

IMPL = load("esimota._ext.script", "esimota.codec._script_py")

build_command_script = IMPL.build_command_script
parse_command_script = IMPL.parse_command_script
build_response_script = IMPL.build_response_script
parse_response_script = IMPL.parse_response_script
build_compact = IMPL.build_compact
parse_compact = IMPL.parse_compact
build_compact_response = IMPL.build_compact_response
parse_compact_response = IMPL.parse_compact_response
script_size = IMPL.script_size
chunk_apdus = IMPL.chunk_apdus
TAG_CAPDU = 0x22


def command_apdus(buf) -> list[bytes]:
    """The C-APDUs of an expanded command script, in order (actions left out)."""
    return [v for t, v in parse_command_script(buf) if t == TAG_CAPDU]
