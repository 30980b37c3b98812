"""The operator console (R13, R24, R28, R29): server-rendered pages at /console/ on the operations listener."""
