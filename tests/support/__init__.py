"""Test helpers: fixtures' building blocks (bip, platform) and a TCP fault-injection proxy (faultproxy; STYLE 11)."""
