"""Typed confirmations for commands that destroy things (``orphans --delete``, ``tenant recreate
--fresh-volume``): the operator types a given phrase, or passes it with ``--confirm`` in scripts."""

from __future__ import annotations

import sys

import typer

from controlplane.errors import Refused


def typed_confirmation(phrase: str, what: str, given: str | None) -> None:
    """Return when ``given`` (or, without it, the line read from standard input, prompted on a
    terminal) is exactly ``phrase``; otherwise refuse (exit 3) with nothing changed."""
    if given is None:
        if sys.stdin.isatty():
            given = str(typer.prompt(f"{what}: type '{phrase}' to confirm", default="", show_default=False))
        else:
            given = sys.stdin.readline()
    if given.strip() != phrase:
        raise Refused("--confirm", f"{what}: the confirmation did not read '{phrase}'; nothing was changed")


__all__ = ["typed_confirmation"]
