"""``controlplane tenant ...`` and ``controlplane fleet``: change and read tenants' desired state.

Every command that changes something goes through :mod:`controlplane.desired` (desired state +
audit row with actor ``cli:<user>`` + reconcile mark, one transaction); the workers do the rest.
Bad input (unknown tenant or plan, malformed id, a key on the command line) is one line naming the
field, exit code 2, and changes nothing. ``tenant stop|start|delete`` require ``--reason``.
"""

from __future__ import annotations

import json
from collections import Counter
from datetime import timedelta
from typing import Any

import typer
from rich.table import Table
from sqlalchemy import select

from controlplane.cli._common import cli_actor, console, open_database, read_secret_from_stdin, run, settings
from controlplane.db.models import AuditLog, Channel, FlyResources, ProviderKey, Tenant, utcnow
from controlplane.db.queue import ReconcileStatus, reconcile_status
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


# -- reading ------------------------------------------------------------------------------------
def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


async def tenant_view(session: Any, tenant: Tenant, *, audit_limit: int = 15) -> dict[str, Any]:
    """Desired vs observed, drift, reconcile state, keys (masked), channels and recent audit."""
    fly = await session.get(FlyResources, tenant.id)
    status: ReconcileStatus | None = await reconcile_status(session, tenant.id, now=utcnow())
    keys = (
        (await session.execute(select(ProviderKey).where(ProviderKey.tenant_id == tenant.id))).scalars().all()
    )
    channels = (await session.execute(select(Channel).where(Channel.tenant_id == tenant.id))).scalars().all()
    audit_rows = (
        (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant.id)
                .order_by(AuditLog.id.desc())
                .limit(audit_limit)
            )
        )
        .scalars()
        .all()
    )
    observed_rev = fly.observed_rev if fly else 0
    return {
        "external_id": tenant.external_id,
        "id": tenant.id,
        "lifecycle_state": tenant.lifecycle_state.value,
        "desired": {
            "plan": tenant.plan,
            "power": tenant.desired_power.value,
            "billing_status": tenant.billing_status.value,
            "region": tenant.region,
            "image_pin": tenant.image_pin,
            "model_preference": tenant.model_preference,
            "routing_strategy": tenant.routing_strategy.value,
            "desired_rev": tenant.desired_rev,
            "destroy_after": _iso(tenant.destroy_after),
            "billing_grace_until": _iso(tenant.billing_grace_until),
            "key_grace_until": _iso(tenant.key_grace_until),
        },
        "observed": {
            "app": fly.app_name if fly else None,
            "machine_id": fly.machine_id if fly else None,
            "volume_id": fly.volume_id if fly else None,
            "volume_size_gb": fly.volume_size_gb if fly else None,
            "machine_state": fly.observed_state if fly else None,
            "observed_rev": observed_rev,
            "config_hash": fly.config_hash if fly else None,
            "image": fly.image_ref if fly else None,
            "secrets_version": fly.secrets_version if fly else None,
            "observed_at": _iso(fly.observed_at) if fly else None,
            "pending_destroy": fly.pending_destroy if fly else None,
        },
        "drift": tenant.desired_rev != observed_rev,
        "reconcile": None
        if status is None
        else {
            "due_at": _iso(status.due_at),
            "running_now": status.leased,
            "attempts": status.attempts,
            "parked_reason": status.parked_reason,
            "last_error": status.last_error,
            "last_outcome": status.last_outcome,
            "last_run_at": _iso(status.last_run_at),
            "reason": status.reason,
        },
        "keys": [
            {
                "provider": k.provider,
                "last4": k.last4,
                "status": k.status.value,
                "verdict": k.verdict.value,
                "last_checked_at": _iso(k.last_checked_at),
            }
            for k in sorted(keys, key=lambda k: k.provider)
        ],
        "channels": [{"kind": c.kind, "enabled": c.enabled} for c in sorted(channels, key=lambda c: c.kind)],
        "audit": [
            {"at": _iso(r.at), "actor": r.actor, "action": r.action, "reason": r.reason, "after": r.after}
            for r in audit_rows
        ],
    }


@tenant_app.command("show")
def show(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Desired vs observed side by side, drift, parked reason, keys (masked), channels, recent audit."""
    from controlplane.desired import find_tenant

    s = settings()

    async def go() -> dict[str, Any]:
        async with open_database(s) as db, db.read() as session:
            return await tenant_view(session, await find_tenant(session, external_id))

    view = run(go())
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    table = Table(title=f"{view['external_id']} ({view['lifecycle_state']})", title_justify="left")
    table.add_column("desired")
    table.add_column("")
    table.add_column("observed")
    table.add_column("")
    desired, observed = list(view["desired"].items()), list(view["observed"].items())
    for i in range(max(len(desired), len(observed))):
        d = desired[i] if i < len(desired) else ("", "")
        o = observed[i] if i < len(observed) else ("", "")
        table.add_row(
            d[0], str(d[1] if d[1] is not None else "-"), o[0], str(o[1] if o[1] is not None else "-")
        )
    console.print(table)
    reconcile = view["reconcile"] or {}
    console.print(
        f"drift: {'yes' if view['drift'] else 'no'}   last reconcile: {reconcile.get('last_outcome') or '-'} "
        f"at {reconcile.get('last_run_at') or '-'}   parked: {reconcile.get('parked_reason') or 'no'}"
        + (f"   last error: {reconcile['last_error']}" if reconcile.get("last_error") else "")
    )
    keys = ", ".join(f"{k['provider']} …{k['last4']} ({k['status']})" for k in view["keys"]) or "none"
    console.print(f"keys: {keys}   channels: {', '.join(c['kind'] for c in view['channels']) or 'none'}")
    audit = Table(title="recent audit", title_justify="left")
    for col in ("at", "actor", "action", "reason"):
        audit.add_column(col)
    for row in view["audit"]:
        audit.add_row(row["at"][:19], row["actor"], row["action"], (row["reason"] or "")[:80])
    console.print(audit)


async def fleet_view(session: Any) -> dict[str, Any]:
    rows = (
        await session.execute(
            select(
                Tenant.lifecycle_state,
                Tenant.plan,
                Tenant.region,
                Tenant.desired_rev,
                FlyResources.observed_rev,
            ).outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
        )
    ).all()
    by_state: Counter[str] = Counter()
    by_plan: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    drifting = 0
    for state, plan, region, desired_rev, observed_rev in rows:
        by_state[state.value] += 1
        by_plan[plan] += 1
        by_region[region] += 1
        if state.value != "gone" and desired_rev != (observed_rev or 0):
            drifting += 1
    from controlplane.db.models import ReconcileItem

    parked = (
        await session.execute(
            select(Tenant.external_id, ReconcileItem.parked_reason)
            .join(ReconcileItem, ReconcileItem.tenant_id == Tenant.id)
            .where(ReconcileItem.parked_reason.isnot(None))
            .order_by(Tenant.external_id)
        )
    ).all()
    return {
        "tenants": len(rows),
        "by_lifecycle_state": dict(sorted(by_state.items())),
        "by_plan": dict(sorted(by_plan.items())),
        "by_region": dict(sorted(by_region.items())),
        "drifting": drifting,
        "parked": [{"external_id": e, "reason": r} for e, r in parked],
    }


def fleet(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """The fleet at a glance: tenants by lifecycle state, plan and region; drifting and parked ones."""
    s = settings()

    async def go() -> dict[str, Any]:
        async with open_database(s) as db, db.read() as session:
            return await fleet_view(session)

    view = run(go())
    if as_json:
        typer.echo(json.dumps(view, indent=2))
        return
    for title, key in (
        ("lifecycle state", "by_lifecycle_state"),
        ("plan", "by_plan"),
        ("region", "by_region"),
    ):
        table = Table(title=f"tenants by {title}", title_justify="left")
        table.add_column(title)
        table.add_column("tenants", justify="right")
        for name, count in view[key].items():
            table.add_row(name, str(count))
        console.print(table)
    console.print(f"{view['tenants']} tenants; {view['drifting']} drifting; {len(view['parked'])} parked")
    for row in view["parked"]:
        console.print(f"  parked: {row['external_id']}: {row['reason']}")


def register(app: typer.Typer) -> None:
    app.add_typer(tenant_app, name="tenant")
    app.command("fleet")(fleet)
