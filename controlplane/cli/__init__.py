"""The single console entry point, ``controlplane`` (Typer + Rich).

Each area registers its commands from its own module (``register(app)``) so that the tree stays
one-way: the CLI imports the parts, never the reverse.
"""

from __future__ import annotations

import sys

import typer

from controlplane.cli import agent_config, byok, db, demo, fly, keys, settings_cmd

app = typer.Typer(
    name="controlplane",
    help="Fleet provisioning control plane for hosted OpenClaw agents on Fly.io.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (settings_cmd, db, keys, byok, agent_config, fly, demo):
    _module.register(app)


def main() -> None:
    """Console-script entry: configuration errors exit 2 with a readable message, no traceback."""
    from controlplane.settings import SettingsError

    try:
        app()
    except SettingsError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        sys.exit(2)
