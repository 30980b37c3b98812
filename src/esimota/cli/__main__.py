"""`python -m esimota.cli`: the `esimota` command."""

from . import console

console()
