"""Test helpers: fixtures' building blocks and a TCP fault-injection proxy (STYLE 11)."""
