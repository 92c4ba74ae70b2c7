"""``controlplane settings show``: the settings in effect, secrets masked."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from controlplane.cli._common import settings

settings_app = typer.Typer(help="Inspect the configuration.", no_args_is_help=True)


@settings_app.command("show")
def show() -> None:
    """Print every setting in effect (secret values are never shown)."""
    s = settings()
    table = Table(title="Settings in effect")
    table.add_column("variable")
    table.add_column("value", overflow="fold")  # never cut a value short: wrap it
    for name, value in s.public_view().items():
        table.add_row(name, value)
    # A console made now reads the terminal's width (COLUMNS) as it is now, not at import.
    Console(soft_wrap=True).print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(settings_app, name="settings")
