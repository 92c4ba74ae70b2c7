"""The single console entry point, ``controlplane`` (Typer + Rich).

Each area registers its commands from its own module (``register(app)``) so that the tree stays
one-way: the CLI imports the parts, never the reverse.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from controlplane.cli import agent_config, byok, db, fly, keys, plans, rollout, serve, settings_cmd, tenant

app = typer.Typer(
    name="controlplane",
    help="Fleet provisioning control plane for hosted OpenClaw agents on Fly.io.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (settings_cmd, db, keys, byok, agent_config, fly, plans, tenant, rollout, serve):
    _module.register(app)

# Commands of the layers above (the worker process, the demo, `reconcile --wait` live in `workers`,
# which `controlplane` never imports): each registers itself through the ``controlplane.cli`` entry
# point group declared in pyproject.toml, as Flask's and pytest's plugins do.
for _plugin in entry_points(group="controlplane.cli"):
    _plugin.load()(app)


def main() -> None:
    """Console-script entry: configuration errors exit 2 with a readable message; any other
    unexpected error is logged through the redacting logger (never a raw traceback that could
    carry a secret) and exits 1."""
    from controlplane.errors import ControlPlaneError
    from controlplane.redaction import redact_text
    from controlplane.settings import SettingsError

    try:
        app()
    except ControlPlaneError as exc:
        typer.secho(f"error: {redact_text(str(exc))}", err=True, fg=typer.colors.RED)
        sys.exit(exc.exit_code)
    except SettingsError as exc:
        typer.secho(f"error: {redact_text(str(exc))}", err=True, fg=typer.colors.RED)
        sys.exit(2)
    except Exception as exc:
        import structlog

        structlog.get_logger("controlplane.cli").error("command_failed", exc_info=True)
        typer.secho(f"error: {type(exc).__name__}: {redact_text(str(exc))}", err=True, fg=typer.colors.RED)
        sys.exit(1)
