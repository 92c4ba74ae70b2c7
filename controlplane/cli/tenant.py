"""``controlplane tenant ...`` and ``controlplane fleet``: change and read tenants' desired state.

Every command that changes something goes through :mod:`controlplane.desired` (desired state +
audit row with actor ``cli:<user>`` + reconcile mark, one transaction); the workers do the rest.
Bad input (unknown tenant or plan, malformed id, a key on the command line) is one line naming the
field, exit code 2, and changes nothing. ``tenant stop|start|recreate|delete`` require ``--reason``;
they mark the tenant explicitly (due now, ahead of background work, past any backoff or parking:
invariant 6).
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import typer
from rich.table import Table

from controlplane.cli._common import cli_actor, console, open_database, read_secret_from_stdin, run, settings
from controlplane.db.models import utcnow
from controlplane.enums import DesiredPower

tenant_app = typer.Typer(help="Create, change, stop, start, delete and show tenants.", no_args_is_help=True)

REASON = typer.Option(..., "--reason", help="Why (recorded in the audit log).")


def _catalog() -> Any:
    from agents_config import load_catalog

    return load_catalog(settings().plan_catalog)


@tenant_app.command("create")
def create(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID", help="The operator's id of the user."),
    plan: str = typer.Option(..., "--plan", help="Plan id from the catalog."),
    region: str | None = typer.Option(None, "--region", help="Fly region (default CP_FLY_DEFAULT_REGION)."),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit log)."),
) -> None:
    """Create a tenant; it stays pending until it has a usable model key."""
    from controlplane.desired import create_tenant

    s = settings()
    catalog = _catalog()

    async def go() -> str:
        async with open_database(s) as db, db.transaction() as session:
            tenant = await create_tenant(
                session,
                catalog,
                external_id=external_id,
                plan=plan,
                region=region or s.fly_default_region,
                actor=cli_actor(),
                reason=reason,
            )
            return tenant.id

    tenant_id = run(go())
    console.print(
        f"tenant {external_id} created (id {tenant_id}, plan {plan}); pending until it has a usable key"
    )


@tenant_app.command("set-key")
def set_key(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    provider: str = typer.Option(..., "--provider", help="Provider id, e.g. anthropic, openai."),
    stray: list[str] | None = typer.Argument(None, hidden=True),
) -> None:
    """Save a provider key read from STANDARD INPUT (never the command line): validated with the
    provider, encrypted, and pushed to the agent at the next reconcile."""
    from controlplane.errors import BadInput

    if stray:
        # Never echoed: it is most likely the key itself, now in the shell history.
        raise BadInput(
            "KEY",
            "keys are read from standard input only, never the command line; what was given there "
            "was ignored: treat it as exposed and rotate it",
        )
    from controlplane.byok.catalog import get_spec
    from controlplane.byok.errors import KeyFormatRefused, KeyRefused, UnknownProvider
    from controlplane.byok.service import KeyService
    from controlplane.byok.validate import KeyValidator
    from controlplane.desired import find_tenant
    from controlplane.errors import Refused
    from controlplane.vault import Vault

    s = settings()
    try:
        spec = get_spec(provider)
    except UnknownProvider:
        raise BadInput("--provider", "unknown provider (see `controlplane agent-config plans`)") from None
    key = read_secret_from_stdin("API key")

    async def go() -> dict[str, Any]:
        async with open_database(s) as db:
            async with db.read() as session:
                tenant_id = (await find_tenant(session, external_id)).id
            service = KeyService(db, Vault.from_settings(s), KeyValidator.from_settings(s))
            try:
                saved = await service.save(tenant_id, spec.id, key, actor=cli_actor())
            except KeyFormatRefused as exc:
                raise BadInput("key (stdin)", exc.reason) from None
            except KeyRefused as exc:
                raise Refused("key (stdin)", f"{exc.verdict.verdict.value}: {exc.verdict.message}") from None
            return {**saved.key.to_dict(), "replaced": saved.replaced, "unchanged": saved.unchanged}

    view = run(go())
    console.print(
        f"{spec.display_name} key …{view['last4']} saved for {external_id}: {view['status']} "
        f"({view['verdict']}){' (same key as before)' if view['unchanged'] else ''}"
    )


@tenant_app.command("set-plan")
def set_plan(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    plan: str = typer.Argument(..., metavar="PLAN"),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit log)."),
) -> None:
    """Move a tenant to another plan (config, machine size and volume follow at the next reconcile)."""
    from controlplane.desired import change_plan, find_tenant

    s = settings()
    catalog = _catalog()

    async def go() -> bool:
        async with open_database(s) as db, db.transaction() as session:
            tenant = await find_tenant(session, external_id, for_update=True)
            return await change_plan(session, catalog, tenant, plan, actor=cli_actor(), reason=reason)

    changed = run(go())
    console.print(f"{external_id}: plan {plan}" + ("" if changed else " (unchanged)"))


def _power(external_id: str, power: DesiredPower, reason: str) -> bool:
    from controlplane.desired import find_tenant, set_power

    s = settings()

    async def go() -> bool:
        async with open_database(s) as db, db.transaction() as session:
            tenant = await find_tenant(session, external_id, for_update=True)
            return await set_power(session, tenant, power, actor=cli_actor(), reason=reason)

    return run(go())


@tenant_app.command("stop")
def stop(external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"), reason: str = REASON) -> None:
    """Stop the agent, with Fly's autostart off (nothing can wake it) until `tenant start`."""
    changed = _power(external_id, DesiredPower.stopped, reason)
    console.print(f"{external_id}: stop requested" + ("" if changed else " (already stopped; reconciling)"))


@tenant_app.command("start")
def start(external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"), reason: str = REASON) -> None:
    """Run the agent again (also cancels a pending deletion); bypasses any backoff or parking."""
    changed = _power(external_id, DesiredPower.running, reason)
    console.print(f"{external_id}: start requested" + ("" if changed else " (already running; reconciling)"))


@tenant_app.command("delete")
def delete(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    now: bool = typer.Option(False, "--now", help="Destroy at once instead of after the retention period."),
    reason: str = REASON,
) -> None:
    """Stop the agent now and destroy its machine, volume and app after the retention period
    (CP_TENANT_RETENTION_DAYS) or, with --now, at once. The tenant row and its audit log stay."""
    from controlplane.desired import find_tenant, request_deletion

    s = settings()
    retention = timedelta(0) if now else timedelta(days=s.tenant_retention_days)

    async def go() -> str:
        async with open_database(s) as db, db.transaction() as session:
            tenant = await find_tenant(session, external_id, for_update=True)
            when = await request_deletion(
                session, tenant, retention=retention, now=utcnow(), actor=cli_actor(), reason=reason
            )
            return when.isoformat()

    when = run(go())
    console.print(f"{external_id}: stopped; resources destroyed {'now' if now else 'after ' + when}")


@tenant_app.command("recreate")
def recreate(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    reason: str = REASON,
    fresh_volume: bool = typer.Option(
        False, "--fresh-volume", help="Also destroy the volume and start from an empty one (DATA LOST)."
    ),
    confirm: str | None = typer.Option(
        None, "--confirm", help="With --fresh-volume: the tenant's id, typed (else read from stdin)."
    ),
) -> None:
    """Destroy the tenant's machine and create it again from desired state, KEEPING the volume (the
    agent's state) unless --fresh-volume. Done by the workers, ahead of any backoff or parking."""
    from controlplane.cli._confirm import typed_confirmation
    from controlplane.desired import check_external_id, find_tenant
    from controlplane.ops.recreate import request_recreate

    check_external_id(external_id)
    if fresh_volume:
        typed_confirmation(external_id, "destroy the volume (the agent's data) and recreate", confirm)
    s = settings()

    async def go() -> dict[str, Any]:
        async with open_database(s) as db, db.transaction() as session:
            tenant = await find_tenant(session, external_id, for_update=True)
            return await request_recreate(
                session, tenant, fresh_volume=fresh_volume, actor=cli_actor(), reason=reason
            )

    request = run(go())
    console.print(
        f"{external_id}: recreate requested (machine {request['machine']}"
        + (f", volume {request['volume']} with it" if request["volume"] else "; volume kept")
        + "); the workers pick it up first"
    )


# -- reading ------------------------------------------------------------------------------------
def _cell(value: Any) -> str:
    return "-" if value is None else str(value)


@tenant_app.command("show")
def show(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    audit_limit: int = typer.Option(15, "--audit", min=0, max=500, help="Recent audit rows to show."),
    live: bool = typer.Option(False, "--live", help="Also read the machine and volume from Fly now."),
) -> None:
    """Desired vs observed side by side, drift, parked reason, banners, keys (masked), channels,
    recent audit; with --live, what Fly says right now (exit 1 if Fly could not be read)."""
    from controlplane.desired import find_tenant
    from controlplane.ops.views import live_view, tenant_view

    s = settings()

    async def go() -> dict[str, Any]:
        async with open_database(s) as db:
            async with db.read() as session:
                tenant = await find_tenant(session, external_id)
                view = await tenant_view(
                    session, tenant, default_image=s.openclaw_image, audit_limit=audit_limit
                )
        if live:
            from controlplane.errors import BadInput
            from controlplane.fly import FlyClient, FlyConfigError

            try:
                fly = FlyClient.from_settings(s)
            except FlyConfigError as exc:
                raise BadInput("CP_FLY_API_TOKEN", str(exc)) from None
            async with fly:
                observed = view["observed"]
                view["live"] = await live_view(
                    fly, observed["app"], observed["machine_id"], observed["volume_id"]
                )
        return view

    view = run(go())
    failed = bool(view.get("live", {}).get("error"))
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        raise typer.Exit(1 if failed else 0)
    table = Table(title=f"{view['external_id']} ({view['lifecycle_state']})", title_justify="left")
    for col in ("desired", "", "observed", ""):
        table.add_column(col)
    desired, observed = list(view["desired"].items()), list(view["observed"].items())
    for i in range(max(len(desired), len(observed))):
        d = desired[i] if i < len(desired) else ("", "")
        o = observed[i] if i < len(observed) else ("", "")
        table.add_row(d[0], _cell(d[1]) if d[0] else "", o[0], _cell(o[1]) if o[0] else "")
    console.print(table)
    reconcile = view["reconcile"] or {}
    console.print(
        f"drift: {'yes' if view['drift'] else 'no'}   last reconcile: {reconcile.get('last_outcome') or '-'} "
        f"at {reconcile.get('last_run_at') or '-'}   parked: {reconcile.get('parked_reason') or 'no'}"
        + (f"   last error: {reconcile['last_error']}" if reconcile.get("last_error") else "")
    )
    for banner in view["banners"]:
        console.print(f"banner {banner['kind']}: {banner['message']}")
    keys = (
        ", ".join(f"{k['provider']} …{k['last4'] or '????'} ({k['status']})" for k in view["keys"]) or "none"
    )
    console.print(f"keys: {keys}   channels: {', '.join(c['kind'] for c in view['channels']) or 'none'}")
    audit = Table(title="recent audit", title_justify="left")
    for col in ("at", "actor", "action", "reason"):
        audit.add_column(col)
    for row in view["audit"]:
        audit.add_row(row["at"][:19], row["actor"], row["action"], (row["reason"] or "")[:80])
    console.print(audit)
    if "live" in view:
        now = view["live"]
        console.print(f"Fly now: machine {now['machine'] or '-'}; volume {now['volume'] or '-'}")
        if failed:
            console.print(f"Fly could not be read: {now['error']}")
            raise typer.Exit(1)


def fleet(
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    limit: int = typer.Option(100, "--limit", min=0, max=100_000, help="Tenants needing attention to list."),
) -> None:
    """The fleet at a glance: tenants by lifecycle state, plan, region, image and banner; the tenants
    needing attention (parked, drifting, crash-looping, failing, with banners)."""
    from controlplane.ops.views import fleet_view

    s = settings()

    async def go() -> dict[str, Any]:
        async with open_database(s) as db, db.read() as session:
            return await fleet_view(session, default_image=s.openclaw_image, attention_limit=limit)

    view = run(go())
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    for title, key in (
        ("lifecycle state", "by_lifecycle_state"),
        ("plan", "by_plan"),
        ("region", "by_region"),
        ("image (running)", "by_image"),
        ("image (desired)", "by_desired_image"),
        ("active banner", "by_banner"),
    ):
        table = Table(title=f"tenants by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("tenants", justify="right")
        for name, count in view[key].items():
            table.add_row(name, str(count))
        console.print(table)
    console.print(
        f"{view['tenants']} tenants; {view['drifting']} drifting; {view['parked_count']} parked; "
        f"{view['crashlooping']} crash-looping; {view['failing']} failing; "
        f"{view['attention_total']} need attention"
    )
    if view["attention"]:
        table = Table(title="needing attention", title_justify="left")
        for col in ("tenant", "state", "why"):
            table.add_column(col)
        for row in view["attention"]:
            table.add_row(row["external_id"], row["lifecycle_state"], "; ".join(row["reasons"]))
        console.print(table)
        if view["attention_total"] > len(view["attention"]):
            console.print(f"… and {view['attention_total'] - len(view['attention'])} more (--limit, --json)")


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")
    app.command("fleet")(fleet)
