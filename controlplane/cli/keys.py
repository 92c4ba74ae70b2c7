"""``controlplane keys ...``: vault keys (generate, status, rotate)."""

from __future__ import annotations

import json

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controlplane.cli._common import console, run, settings
from controlplane.vault import Vault, format_key_ring_entry, generate_key, valid_key_id

keys_app = typer.Typer(
    help="Vault key ring: generate keys, see usage, rotate; provider keys: revalidate.", no_args_is_help=True
)


@keys_app.command("generate")
def generate(
    key_id: str = typer.Option("k1", "--id", help="Key id to prefix the key with."),
) -> None:
    """Print a new AES-256 key as a key-ring entry 'ID:<base64>' (to put in CP_VAULT_KEYS)."""
    if not valid_key_id(key_id):
        raise typer.BadParameter("must be 1-32 ASCII letters, digits, '-' or '_'", param_hint="--id")
    typer.echo(format_key_ring_entry(key_id, generate_key()))


@keys_app.command("status")
def status(as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """How many secrets each key protects; the primary key is marked."""
    from controlplane.db.session import Database
    from controlplane.rotation import count_by_key

    s = settings()
    vault = Vault.from_settings(s)

    async def go() -> dict[str, int]:
        db = Database.from_url(s.database_url)
        try:
            return await count_by_key(db)
        finally:
            await db.dispose()

    counts = run(go())
    rows = [
        {
            "key_id": kid,
            "role": "primary"
            if kid == vault.primary_key_id
            else ("decrypt-only" if kid in vault.key_ids else "MISSING"),
            "secrets": counts.get(kid, 0),
        }
        for kid in sorted(set(vault.key_ids) | set(counts))
    ]
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table(title="Secrets per vault key")
    table.add_column("key id")
    table.add_column("role")
    table.add_column("secrets", justify="right")
    for row in rows:
        table.add_row(str(row["key_id"]), str(row["role"]), str(row["secrets"]))
    console.print(table)


@keys_app.command("rotate")
def rotate(
    batch_size: int = typer.Option(500, min=1, max=10_000, help="Rows per transaction."),
    as_json: bool = typer.Option(False, "--json", help="Print the report as JSON (no progress bar)."),
) -> None:
    """Re-encrypt every secret to the primary key (resumable; safe while API and workers run).
    Audited (``vault.rotated``, actor cli:<user>); exit 1 while secrets remain off the primary."""
    from controlplane import audit
    from controlplane.cli._common import cli_actor
    from controlplane.db.session import Database
    from controlplane.rotation import count_not_on_primary, rotate_to_primary

    s = settings()
    vault = Vault.from_settings(s)

    async def go() -> dict[str, object]:
        db = Database.from_url(s.database_url)
        try:
            todo = await count_not_on_primary(db, vault)
            with Progress(
                TextColumn("re-encrypting to key [bold]{task.fields[kid]}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=console,
                transient=False,
                disable=as_json,
            ) as bar:
                task = bar.add_task("rotate", total=todo, kid=vault.primary_key_id)
                report = await rotate_to_primary(
                    db, vault, batch_size=batch_size, progress=lambda n: bar.advance(task, n)
                )
            view: dict[str, object] = {
                "primary": vault.primary_key_id,
                "rewritten": report.rewritten,
                "skipped_concurrent": report.skipped_concurrent,
                "failed": list(report.failed),
                "remaining": report.remaining,
            }
            async with db.transaction() as session:
                audit.record(session, actor=cli_actor(), action="vault.rotated", after=view)
            return view
        finally:
            await db.dispose()

    view = run(go())
    if as_json:
        typer.echo(json.dumps(view, indent=2))
    else:
        console.print(
            f"rewritten {view['rewritten']}, skipped (changed concurrently) "
            f"{view['skipped_concurrent']}, failed {len(view['failed'])}, "  # type: ignore[arg-type]
            f"still not on primary {view['remaining']}"
        )
        for row_id in view["failed"]:  # type: ignore[attr-defined]
            console.print(f"  could not decrypt secret row {row_id} (unknown key id or tampered)")
    raise typer.Exit(1 if view["remaining"] else 0)


@keys_app.command("revalidate")
def revalidate(
    tenant: str | None = typer.Option(
        None, "--tenant", metavar="EXTERNAL_ID", help="Every key of this tenant (default: the keys due)."
    ),
    limit: int = typer.Option(1000, "--limit", min=1, max=100_000, help="Most keys re-checked (due keys)."),
    as_json: bool = typer.Option(False, "--json", help="One JSON document instead of a table."),
) -> None:
    """Re-validate provider keys now through the key service's policy (free checks first; a key is
    broken only after the policy's consecutive refusals): the keys due for a check, or every key of
    one tenant. The keys themselves are never shown."""
    import json

    from sqlalchemy import select

    from controlplane.byok.revalidate import revalidate_keys
    from controlplane.byok.service import KeyService
    from controlplane.byok.validate import KeyValidator
    from controlplane.cli._common import cli_actor, open_database
    from controlplane.db.models import Tenant, utcnow
    from controlplane.desired import find_tenant

    s = settings()
    vault = Vault.from_settings(s)
    actor = cli_actor()

    async def go() -> list[dict[str, object]]:
        async with open_database(s) as db:
            tenant_id = None
            if tenant is not None:
                async with db.read() as session:
                    tenant_id = (await find_tenant(session, tenant)).id
            service = KeyService(db, vault, KeyValidator(s))
            done = await revalidate_keys(service, now=utcnow(), limit=limit, actor=actor, tenant_id=tenant_id)
            async with db.read() as session:
                names = {
                    t.id: t.external_id
                    for t in await session.scalars(
                        select(Tenant).where(Tenant.id.in_({d.tenant_id for d in done}))
                    )
                }
            return [
                {
                    "tenant": names.get(d.tenant_id, d.tenant_id),
                    "provider": d.provider,
                    "verdict": d.verdict.value,
                    "status": d.status.value,
                    "consecutive_failures": d.consecutive_failures,
                }
                for d in done
            ]

    rows = run(go())
    if as_json:
        typer.echo(json.dumps({"rechecked": rows}, indent=2))
        return
    table = Table(title=f"Keys re-validated: {len(rows)}")
    for column in ("tenant", "provider", "verdict", "status", "consecutive_failures"):
        table.add_column(column)
    for row in rows:
        table.add_row(
            *(str(row[c]) for c in ("tenant", "provider", "verdict", "status", "consecutive_failures"))
        )
    console.print(table)


def register(app: typer.Typer) -> None:
    app.add_typer(keys_app, name="keys")
