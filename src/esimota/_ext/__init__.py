"""Compiled core (Cython), built from ext/esimota/_ext; each module has a pure twin (DESIGN §1)."""
