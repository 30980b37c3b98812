"""BCP/1 protocol numbers (DESIGN §5.1): the one definition of frame types, CLOSE reasons, HELLO reasons and REPORT results.

Plain ints (not enums): the compiled multiplexer and the frame codec compare them on every frame. The
codec, the ota core, the service, the simulator and the tests all take them from here.
"""

from __future__ import annotations

# frame types: LEN(2) TYPE(1) BODY (DESIGN §5.1)
HELLO, COMMAND, RESPONSE, REPORT, CLOSE = 1, 2, 3, 4, 5
FRAME_NAMES = {HELLO: "hello", COMMAND: "command", RESPONSE: "response", REPORT: "report", CLOSE: "close"}

# CLOSE reasons 00..07 (DESIGN §5.1)
CLOSE_DONE = 0          # the write (or the REPORT) is durable
CLOSE_UNKNOWN_CARD = 1  # no such EID
CLOSE_BAD_MAC = 2       # the frame's MAC does not verify under K_ID
CLOSE_REPLAYED = 3      # the card counter did not grow (§5.4 step 1)
CLOSE_STATE = 4         # the chip's state allows no write (or no REPORT) now
CLOSE_NO_TRAFFIC = 5    # no test traffic left (R3)
CLOSE_PROTOCOL = 6      # malformed or unexpected frame
CLOSE_BUSY = 7          # platform busy: retry after the given seconds
MAX_CLOSE_REASON = CLOSE_BUSY
CLOSE_NAMES = {CLOSE_DONE: "done", CLOSE_UNKNOWN_CARD: "unknown_card", CLOSE_BAD_MAC: "bad_mac",
               CLOSE_REPLAYED: "replayed_counter", CLOSE_STATE: "state_not_allowed",
               CLOSE_NO_TRAFFIC: "no_test_traffic", CLOSE_PROTOCOL: "protocol_error", CLOSE_BUSY: "busy"}

# HELLO reasons ('C5')
HELLO_POWER_ON, HELLO_RESUME = 1, 2

# the write applet's TAR in every command packet (DESIGN §5.3)
TAR_WRITE_APPLET = b"\x45\x57\x41"

# REPORT results ('C6', §5.4 step 5)
REPORT_SUCCESS = 0       # the operational number works
REPORT_NO_COMM = 1       # 运营号无法通信: the card reports again later (§6.2.4.1)
REPORT_CHIP_FAULT = 2
REPORT_DATA_ERROR = 3
MAX_REPORT_RESULT = REPORT_DATA_ERROR
REPORT_NAMES = {REPORT_SUCCESS: "success", REPORT_NO_COMM: "not_communicating", REPORT_CHIP_FAULT: "chip_fault",
                REPORT_DATA_ERROR: "data_error"}
