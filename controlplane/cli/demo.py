"""``controlplane demo``: the visible walk-through on the embedded default (see controlplane/demo.py)."""

from __future__ import annotations

import typer
from rich.console import Console

from controlplane.cli._common import run


def demo() -> None:
    """Migrate the embedded database, start the Fly emulator, store three tenants' keys and
    provision their agents on the emulator end to end; print the fleet and the audit log."""
    from controlplane.demo import run_demo
    from controlplane.logging import configure_logging
    from controlplane.settings import get_settings

    # Expected retries (e.g. Fly's 412 while secrets propagate) are narrated by the demo itself.
    configure_logging(level="ERROR", fmt=get_settings().log_format)
    console = Console(soft_wrap=True)
    if console.width < 160:
        console = Console(soft_wrap=True, width=160)
    raise typer.Exit(run(run_demo(console)))


def register(app: typer.Typer) -> None:
    app.command("demo")(demo)
