"""Test helpers: fixtures' building blocks (bip, cards, platform), the import walker of the structure tests
(imports), a partner's callback receiver (receiver) and a TCP fault-injection proxy (faultproxy; STYLE 11)."""
