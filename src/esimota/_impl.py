"""Picks the compiled core or its pure-Python twin once per process (STYLE 4)."""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

PURE = os.environ.get("ESIMOTA_PURE", "") == "1"
_log = logging.getLogger("esimota.impl")
#: name -> "compiled" or "pure": what each facade actually loaded (tests check it in CI).
LOADED: dict[str, str] = {}


def load(compiled: str, pure: str) -> ModuleType:
    """Import `compiled` unless ESIMOTA_PURE=1 or it is missing (reported, never silent)."""
    if not PURE:
        try:
            mod = importlib.import_module(compiled)
            LOADED[compiled] = "compiled"
            return mod
        except ImportError as exc:
            _log.warning("compiled module %s unavailable (%s); using the pure twin %s",
                         compiled, exc, pure)
    LOADED[compiled] = "pure"
    return importlib.import_module(pure)
