"""Test access to the platform launcher (esimota.sim.launch): `serve` on free loopback ports."""

from esimota.sim.launch import Served, free_port, serve  # noqa: F401
