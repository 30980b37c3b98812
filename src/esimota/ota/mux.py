"""Facade of the channel multiplexer: the Cython-compiled `_mux` unless ESIMOTA_PURE=1 (STYLE 3, 4)."""

from .._impl import load_twin_of_compiled_py

_mod = load_twin_of_compiled_py("esimota.ota._mux")

Mux = _mod.Mux
Session = _mod.Session
plan_chunks = _mod.plan_chunks
IMPLEMENTATION = "compiled" if _mod.__name__ == "esimota.ota._mux" and not _mod.__file__.endswith(".py") else "pure"
