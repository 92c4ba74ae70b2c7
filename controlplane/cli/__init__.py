"""The single console entry point, ``controlplane`` (Typer + Rich).

Each area registers its commands from its own module (``register(app)``) so that the tree stays
one-way: the CLI imports the parts, never the reverse.
"""

from __future__ import annotations

import sys
from importlib.metadata import entry_points

import typer

from controlplane.cli import (
    agent_config,
    byok,
    db,
    fly,
    keys,
    ops,
    plans,
    rollout,
    serve,
    settings_cmd,
    tenant,
)

app = typer.Typer(
    name="controlplane",
    help="Fleet provisioning control plane for hosted OpenClaw agents on Fly.io.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)

for _module in (settings_cmd, db, keys, byok, agent_config, fly, plans, tenant, rollout, serve, ops):
    _module.register(app)

# Commands of the layers above (the worker process, the demo, `reconcile --wait` live in `workers`,
# which `controlplane` never imports): each registers itself through the ``controlplane.cli`` entry
# point group declared in pyproject.toml, as Flask's and pytest's plugins do.
for _plugin in entry_points(group="controlplane.cli"):
    _plugin.load()(app)


def main() -> None:
    """Console-script entry: every command runs behind the one error boundary
    (:mod:`controlplane.cli.boundary`): expected failures print one line naming the field or the
    resource and exit 2 (bad input), 1 (a dependency unreachable) or 3 (refused); anything else
    prints one redacted line pointing at the debug log. Never a traceback."""
    from controlplane.cli.boundary import run

    sys.exit(run(app))
