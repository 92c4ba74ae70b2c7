"""``controlplane agent-config ...``: render a tenant's OpenClaw config or Fly machine config offline.

The spec file is JSON: the fields of :class:`agents_config.TenantSpec` plus, optionally, ``catalog``
(path to a plan catalog TOML, relative to the spec file) and ``volume_id`` (for ``--machine``).
Examples: ``agents_config/examples/*.json``. Bad input exits 2 with the field named.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

agent_config_app = typer.Typer(
    help="Agent configuration: render OpenClaw and Fly machine configs, list plans.",
    no_args_is_help=True,
)

EXIT_BAD_INPUT = 2
EXIT_NO_MODEL = 3
_CLI_ONLY_FIELDS = ("catalog", "volume_id")
_PLACEHOLDER_VOLUME = "vol_placeholder"


def _fail(message: str, code: int = EXIT_BAD_INPUT) -> typer.Exit:
    from controlplane.cli.boundary import report

    report(message)
    return typer.Exit(code)


def _format_validation(exc: ValidationError, source: str) -> str:
    from controlplane.limits import path_part

    parts = []
    for err in exc.errors(include_url=False, include_input=False):
        field = ".".join(path_part(p) for p in err["loc"]) or "(spec)"
        message = err["msg"].removeprefix("Value error, ")
        parts.append(f"field {field!r}: {message}")
    return f"{source}: " + "; ".join(parts)


def _read_spec(path: Path) -> dict[str, Any]:
    """The spec file's JSON object, read within :mod:`controlplane.limits` (size, UTF-8, depth,
    number length checked before parsing)."""
    from controlplane.limits import InputRefused, load_json_file

    try:
        raw = load_json_file(path)
    except InputRefused as exc:
        raise _fail(str(exc)) from None
    if not isinstance(raw, dict):
        raise _fail(f"{path}: expected a JSON object")
    return raw


def _catalog_path(raw_value: Any, spec_path: Path, option: Path | None) -> Path | None:
    if option is not None:
        return option
    if raw_value is not None:
        if not isinstance(raw_value, str) or not raw_value:
            raise _fail(f"{spec_path}: field 'catalog': must be a path string")
        candidate = Path(raw_value)
        return candidate if candidate.is_absolute() else spec_path.parent / candidate
    from controlplane.settings import get_settings

    return get_settings().plan_catalog  # CP_PLAN_CATALOG, or None for the packaged default


@agent_config_app.command("render")
def render(
    spec: Path = typer.Option(..., "--spec", help="Tenant description (JSON).", dir_okay=False),
    machine: bool = typer.Option(False, "--machine", help="Print the Fly machine config instead."),
    catalog: Path | None = typer.Option(
        None, "--catalog", help="Plan catalog TOML (default: spec 'catalog', CP_PLAN_CATALOG, packaged)."
    ),
    compact: bool = typer.Option(False, "--compact", help="Print the canonical bytes (what is hashed)."),
) -> None:
    """Print the tenant's openclaw.json (or, with --machine, its Fly MachineConfig)."""
    # Submodule imports: they work even where the package is installed as a namespace package.
    from agents_config.canonical import canonical_json, pretty_json
    from agents_config.catalog import CatalogError, UnknownPlanError, load_catalog
    from agents_config.leakcheck import SecretLikeValueError
    from agents_config.machine_config import render_machine_config
    from agents_config.openclaw_config import render_openclaw_config
    from agents_config.routing import NoUsableModelError
    from agents_config.spec import TenantSpec

    raw = _read_spec(spec)
    extras = {k: raw.pop(k) for k in _CLI_ONLY_FIELDS if k in raw}
    try:
        tenant = TenantSpec.model_validate(raw)
    except ValidationError as exc:
        raise _fail(_format_validation(exc, str(spec))) from None
    try:
        plans = load_catalog(_catalog_path(extras.get("catalog"), spec, catalog))
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    try:
        rendered = render_openclaw_config(tenant, plans)
        volume_id = extras.get("volume_id", _PLACEHOLDER_VOLUME)
        if not isinstance(volume_id, str):
            raise _fail(f"{spec}: field 'volume_id': must be a string")
        output = (
            render_machine_config(tenant, plans, volume_id=volume_id, openclaw=rendered)
            if machine
            else rendered.config
        )
    except UnknownPlanError as exc:
        raise _fail(f"{spec}: field 'plan': {exc}") from None
    except NoUsableModelError as exc:
        raise _fail(f"{exc} (the tenant stays pending: key_missing)", EXIT_NO_MODEL) from None
    except (SecretLikeValueError, ValueError) as exc:
        raise _fail(f"{spec}: {exc}") from None
    typer.echo(canonical_json(output).decode("utf-8") if compact else pretty_json(output))
    for note in rendered.routing.notes:
        typer.secho(f"note: {note}", err=True, fg=typer.colors.YELLOW)
    for note in rendered.channel_notes:  # one line per dropped channel, with its reason
        typer.secho(f"note: channel {note}", err=True, fg=typer.colors.YELLOW)
    typer.secho(f"config hash: {rendered.sha256}", err=True, fg=typer.colors.BRIGHT_BLACK)


@agent_config_app.command("plans")
def plans_cmd(
    catalog: Path | None = typer.Option(
        None, "--catalog", help="Plan catalog TOML (default: CP_PLAN_CATALOG or packaged)."
    ),
) -> None:
    """List the catalog's plans and their feature gates."""
    from rich.table import Table

    from agents_config.catalog import CatalogError, load_catalog
    from agents_config.gates import FeatureGates
    from controlplane.cli._common import console

    try:
        if catalog is None:
            from controlplane.settings import get_settings

            catalog = get_settings().plan_catalog
        plans = load_catalog(catalog)
    except CatalogError as exc:
        raise _fail(str(exc)) from None
    table = Table(title=f"catalog {plans.name!r}")
    for column in (
        "plan",
        "price id",
        "keys",
        "channels",
        "cron",
        "skills",
        "files",
        "api",
        "phone",
        "sleeps",
        "guest",
        "volume",
    ):
        table.add_column(column)
    for plan_id in plans.plan_ids:
        plan = plans.plan(plan_id)
        gates = FeatureGates.for_plan(plan)
        table.add_row(
            plan_id,
            plan.stripe_price_id,
            plan.key_mode,
            "unlimited" if gates.max_channels is None else str(gates.max_channels),
            _yes(gates.cron),
            _yes(gates.custom_skills),
            _yes(gates.file_browser),
            _yes(gates.api_access),
            _yes(gates.phone),
            _yes(gates.sleep_when_idle),
            f"{plan.machine.cpu_kind} {plan.machine.cpus}x{plan.machine.memory_mb}MB",
            f"{plan.machine.volume_size_gb} GB",
        )
    console.print(table)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def register(app: typer.Typer) -> None:
    app.add_typer(agent_config_app, name="agent-config")
