"""Facade of the channel multiplexer: the Cython-compiled `_mux` unless ESIMOTA_PURE=1 (STYLE 3, 4)."""

from .._impl import load_twin_of_compiled_py

_mod = load_twin_of_compiled_py("esimota.ota._mux")

Mux = _mod.Mux
Session = _mod.Session
plan_chunks = _mod.plan_chunks
F_CHIP_FAULT, F_DATA_ERROR = _mod.F_CHIP_FAULT, _mod.F_DATA_ERROR
# events (the service and the driver tell them apart by type)
Hello, Report, Acked, ScriptDone = _mod.Hello, _mod.Report, _mod.Acked, _mod.ScriptDone
WriteFailed, TimedOut, ProtocolError, Gone = _mod.WriteFailed, _mod.TimedOut, _mod.ProtocolError, _mod.Gone
CARD_EVENTS = (Hello, Report)      # a card's first frame, to be judged by the service
ENDS = (ScriptDone, WriteFailed, TimedOut, Gone, ProtocolError)  # the session's channel is over
# answers of the service
StartWrite, Close = _mod.StartWrite, _mod.Close
IMPLEMENTATION = "compiled" if _mod.__name__ == "esimota.ota._mux" and not _mod.__file__.endswith(".py") else "pure"
