"""Picks the compiled core or its pure-Python twin once per process (STYLE 4)."""

from __future__ import annotations

import importlib
import logging
import os
from types import ModuleType

PURE = os.environ.get("ESIMOTA_PURE", "") == "1"
_log = logging.getLogger("esimota.impl")


def load(compiled: str, pure: str) -> ModuleType:
    """Import `compiled` unless ESIMOTA_PURE=1 or it is missing (reported, never silent)."""
    if not PURE:
        try:
            return importlib.import_module(compiled)
        except ImportError as exc:
            _log.warning("compiled module %s unavailable (%s); using the pure twin %s",
                         compiled, exc, pure)
    return importlib.import_module(pure)


def kind(mod: ModuleType) -> str:
    """What `mod` is: "compiled" (an extension module) or "pure"; CI checks which one a facade loaded."""
    import importlib.machinery

    return "compiled" if isinstance(getattr(mod, "__loader__", None), importlib.machinery.ExtensionFileLoader) \
        else "pure"


def load_source(name: str) -> ModuleType:
    """The .py source of a module that is also compiled in place, loaded as `<name>_pure` (the twin)."""
    import importlib.machinery
    import importlib.util
    import sys

    pure_name = name + "_pure"
    if pure_name in sys.modules:
        return sys.modules[pure_name]
    spec = importlib.util.find_spec(name)
    origin = spec.origin if spec else None
    if origin is None or not origin.endswith(".py"):
        base = (origin or "").rsplit("/", 1)[0]
        origin = f"{base}/{name.rsplit('.', 1)[1]}.py"
    loader = importlib.machinery.SourceFileLoader(pure_name, origin)
    mod = importlib.util.module_from_spec(importlib.util.spec_from_loader(pure_name, loader))
    sys.modules[pure_name] = mod
    loader.exec_module(mod)
    return mod


def load_twin_of_compiled_py(name: str) -> ModuleType:
    """For a .py module that is also compiled in place (STYLE 3): the extension unless ESIMOTA_PURE=1,
    else the same source loaded as `<name>_pure`, so both stay importable by name."""
    if not PURE:
        mod = importlib.import_module(name)
        if kind(mod) != "compiled":
            _log.warning("compiled module %s unavailable; running its source", name)
        return mod
    return load_source(name)
