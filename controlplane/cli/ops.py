"""``controlplane audit tail`` and ``controlplane orphans``: reading the audit log, and finding (and,
behind a typed confirmation, deleting) what is on Fly without a tenant."""

from __future__ import annotations

import asyncio
import json
import signal
from datetime import datetime
from typing import Any

import typer
from rich.table import Table

from controlplane.cli._common import cli_actor, console, open_database, run, settings
from controlplane.db.models import utcnow

audit_app = typer.Typer(help="Read the audit log.", no_args_is_help=True)


def _audit_line(row: dict[str, Any]) -> str:
    details = json.dumps(row["after"], sort_keys=True, separators=(",", ":")) if row["after"] else ""
    return "  ".join(
        part
        for part in (
            row["at"][:19],
            row["actor"],
            row["action"],
            row["tenant"] or "-",
            row["reason"] or "",
            details[:200],
        )
        if part is not None
    )


@audit_app.command("tail")
def tail(
    tenant: str | None = typer.Option(None, "--tenant", help="Only this tenant (its external id)."),
    actor: str | None = typer.Option(None, "--actor", help="Only this actor (e.g. worker, cli:*)."),
    action: str | None = typer.Option(
        None, "--action", help="Only this action (e.g. tenant.stop, machine.*)."
    ),
    since: str | None = typer.Option(None, "--since", help="From this time: 30s, 15m, 2h, 7d or ISO 8601."),
    limit: int = typer.Option(50, "--limit", "-n", min=1, max=10_000, help="Rows before following."),
    follow: bool = typer.Option(
        False, "--follow", "-f", help="Keep printing new rows (Ctrl-C / SIGTERM ends)."
    ),
    interval: float = typer.Option(
        2.0, "--interval", min=0.1, max=300.0, help="Seconds between follow polls."
    ),
    as_json: bool = typer.Option(
        False, "--json", help="JSON: an array; with --follow one JSON object per line."
    ),
) -> None:
    """The last rows of the audit log, oldest first, filtered; --follow keeps printing new ones."""
    from controlplane.desired import check_external_id, find_tenant
    from controlplane.ops.audit_tail import SETTLE, AuditFilter, check_filter, newer, parse_since
    from controlplane.ops.audit_tail import tail as read_tail

    check_filter(actor, "--actor")
    check_filter(action, "--action")
    if tenant is not None:
        check_external_id(tenant, "--tenant")
    start = parse_since(since, utcnow()) if since is not None else None
    s = settings()

    def emit(rows: list[dict[str, Any]], *, stream: bool) -> None:
        if as_json and not stream:
            typer.echo(json.dumps(rows, indent=2))
            return
        for row in rows:
            typer.echo(json.dumps(row, separators=(",", ":")) if as_json else _audit_line(row))

    async def go() -> None:
        stop = asyncio.Event()
        if follow:  # before anything is printed: a reader that saw a line may stop us at once
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
        async with open_database(s) as db:
            async with db.read() as session:
                tenant_id = (await find_tenant(session, tenant)).id if tenant is not None else None
                where = AuditFilter(tenant_id=tenant_id, actor=actor, action=action, since=start)
                rows = await read_tail(session, where, limit=limit)
            emit(rows, stream=follow)
            if not follow:
                return
            seen: dict[int, datetime] = {r["id"]: datetime.fromisoformat(r["at"]) for r in rows}
            began = utcnow()  # nothing matched yet: polls look from here (less SETTLE), not the whole log
            while not stop.is_set():
                newest = max(seen.values(), default=began)
                async with db.read() as session:
                    fresh = await newer(session, where, newest_at=newest, seen=set(seen))
                emit(fresh, stream=True)
                for r in fresh:
                    seen[r["id"]] = datetime.fromisoformat(r["at"])
                if seen:  # forget what no poll can return again
                    floor = max(seen.values()) - SETTLE
                    seen = {i: at for i, at in seen.items() if at >= floor}
                try:
                    await asyncio.wait_for(stop.wait(), interval)
                except TimeoutError:
                    pass

    run(go())


def orphans(
    delete: bool = typer.Option(
        False, "--delete", help="Delete the orphan apps and volumes (asks to confirm)."
    ),
    confirm: str | None = typer.Option(
        None, "--confirm", help="With --delete: the confirmation phrase 'delete N' (else read from stdin)."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (audit log); required with --delete."),
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
) -> None:
    """Fly apps with our prefix and no tenant, machines and unattached volumes in our apps that no
    tenant records, and
    tenants whose recorded app/machine/volume is missing on Fly. A dry run unless --delete; missing
    resources are never deleted (`controlplane reconcile ID` recreates them)."""
    from controlplane.cli._confirm import typed_confirmation
    from controlplane.errors import BadInput, Unavailable
    from controlplane.fly import FlyClient, FlyConfigError, FlyError
    from controlplane.ops.orphans import OrphanReport, scan
    from controlplane.ops.orphans import delete as delete_orphans

    if delete and not reason:
        raise BadInput("--reason", "required with --delete (recorded in the audit log)")
    s = settings()
    try:
        fly = FlyClient.from_settings(s)
    except FlyConfigError as exc:
        raise BadInput("CP_FLY_API_TOKEN", str(exc)) from None

    async def go() -> tuple[OrphanReport, int | None]:
        async with open_database(s) as db, fly:
            try:
                report = await scan(db, fly, prefix=s.fly_app_prefix)
                if not delete or not report.deletable:
                    return report, None
                if not as_json:
                    _print(report)
                typed_confirmation(
                    f"delete {report.deletable}", f"delete {report.deletable} orphan(s) on Fly", confirm
                )
                assert reason is not None
                return report, await delete_orphans(db, fly, report, actor=cli_actor(), reason=reason)
            except FlyError as exc:
                raise Unavailable("fly", f"{type(exc).__name__}: {exc}") from None

    report, deleted = run(go())
    if as_json:
        typer.echo(json.dumps({**report.to_dict(), "deleted": deleted or 0}, indent=2))
    elif deleted is None:
        _print(report)
        if report.deletable:
            console.print(
                f"dry run: nothing deleted; `orphans --delete --reason ...` deletes {report.deletable}"
            )
    else:
        console.print(f"deleted {deleted} orphan(s)")


def _print(report: Any) -> None:
    console.print(f"{report.apps_scanned} apps with our prefix scanned")
    for title, rows, cols in (
        ("Fly apps with no tenant", report.apps, ("app", "machines", "volumes", "tenant")),
        ("machines no tenant records", report.machines, ("app", "machine_id", "state", "tenant")),
        (
            "volumes attached to nothing, recorded by no tenant",
            report.volumes,
            ("app", "volume_id", "size_gb", "tenant"),
        ),
        (
            "tenants' resources missing on Fly (`controlplane reconcile ID` recreates)",
            report.missing,
            ("tenant", "app", "resource", "id"),
        ),
    ):
        if not rows:
            console.print(f"{title}: none")
            continue
        table = Table(title=title, title_justify="left")
        for col in cols:
            table.add_column(col)
        for row in rows:
            table.add_row(*("-" if row[c] is None else str(row[c]) for c in cols))
        console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(audit_app, name="audit")
    app.command("orphans")(orphans)
