"""``controlplane plans migrate``: move subscribers from old plans to new ones (Stripe + fleet).

Exit codes: 0 done (or nothing to do), 1 some subscriptions failed on Stripe or the database failed
(run it again: it resumes), 2 bad input (the map, the options, the settings), 3 refused (another run
of the same migration holds its lease).
"""

from __future__ import annotations

import getpass
import json
import re
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from controlplane.cli._common import console, err_console, run, settings

if TYPE_CHECKING:
    from controlplane.billing.migration import MigrationReport, Migrator, Move

plans_app = typer.Typer(help="Plan operations: migrate subscribers between plans.", no_args_is_help=True)


def _actor() -> str:
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = "operator"
    user = re.sub(r"[^A-Za-z0-9._@-]", "_", user)[:100] or "operator"
    return f"cli:{user}"


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    found: list[BaseException] = []
    for exc in group.exceptions:
        found.extend(_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    return found


def _money(cents: int | None, currency: str = "usd") -> str:
    if cents is None:
        return "?"
    sign = "-" if cents < 0 else ""
    symbol = "$" if currency == "usd" else f"{currency.upper()} "
    return f"{sign}{symbol}{abs(cents) / 100:,.2f}"


@plans_app.command("migrate")
def migrate(
    map_file: Path = typer.Option(..., "--map", help="TOML or JSON file: old plan id = new plan id."),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Show who moves where and what they pay; change nothing."
    ),
    reverse: bool = typer.Option(
        False, "--reverse", help="Undo this map: back to each subscription's old price."
    ),
    batch: int = typer.Option(
        100, "--batch", min=1, max=10_000, help="Subscriptions per batch (progress step)."
    ),
    as_json: bool = typer.Option(False, "--json", help="Machine-readable output."),
) -> None:
    """Move every subscription on an old plan of the map to its new plan: Stripe price switched with
    immediate proration under an idempotency key, tenant plan changed, announcement stored, key grace
    started where the new plan needs a key. Resumable; --reverse undoes it; nothing is deleted."""
    from agents_config.catalog import CatalogError, load_catalog
    from controlplane.billing.migration import Migrator, load_plan_map
    from controlplane.billing.stripe_client import StripeClient
    from controlplane.cli.boundary import report as report_error
    from controlplane.db.session import Database
    from controlplane.errors import BadInput, ControlPlaneError

    s = settings()
    try:
        catalog = load_catalog(s.plan_catalog)
        plan_map = load_plan_map(map_file, catalog)
    except CatalogError as exc:
        report_error(f"CP_PLAN_CATALOG: {exc}")
        raise typer.Exit(2) from None
    except BadInput as exc:
        report_error(str(exc))
        raise typer.Exit(exc.exit_code) from None

    async def go() -> int:
        db = Database.from_url(s.database_url)
        try:
            async with StripeClient.from_settings(s) as stripe:
                migrator = Migrator(db, stripe, catalog, plan_map, actor=_actor())
                if dry_run:
                    moves = await migrator.dry_run(reverse=reverse)
                    if as_json:
                        typer.echo(
                            json.dumps(
                                {
                                    "migration_id": migrator.id,
                                    "reverse": reverse,
                                    "moves": [m.as_dict() for m in moves],
                                },
                                indent=2,
                            )
                        )
                    else:
                        _print_moves(migrator.id, reverse, moves)
                    return 0
                report = await _run_with_progress(
                    migrator, reverse, batch, show=console.is_terminal and not as_json
                )
                if as_json:
                    typer.echo(
                        json.dumps({k: getattr(report, k) for k in report.__dataclass_fields__}, indent=2)
                    )
                else:
                    console.print(
                        f"migration {report.migration_id}{' (reverse)' if reverse else ''}: {report.done} moved "
                        f"({report.already} already on the target price), {report.failed} failed, "
                        f"{report.skipped} skipped, of {report.total}",
                        markup=False,
                    )
                    for line in report.errors[:20]:
                        err_console.print(f"  {line}", markup=False)
                    if report.failed:
                        err_console.print(
                            "run the same command again to retry the failed subscriptions", markup=False
                        )
                return 1 if report.failed else 0
        except ControlPlaneError as exc:
            report_error(str(exc))
            return exc.exit_code
        except ExceptionGroup as group:  # a batch's task failed outside Stripe (the database ...)
            first = _leaves(group)[0]
            if isinstance(first, ControlPlaneError):
                report_error(str(first))
                return first.exit_code
            report_error(f"{type(first).__name__}: {str(first)[:300]}")
            return 1
        except (OSError, ConnectionError) as exc:
            report_error(f"database: {type(exc).__name__}")
            return 1
        finally:
            await db.dispose()

    raise typer.Exit(run(go()))


async def _run_with_progress(migrator: Migrator, reverse: bool, batch: int, *, show: bool) -> MigrationReport:
    if not show:
        return await migrator.run(reverse=reverse, batch=batch)
    with Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
    ) as bar:
        task = bar.add_task(f"{migrator.id}{' reverse' if reverse else ''}", total=None)
        report = await migrator.run(
            reverse=reverse,
            batch=batch,
            on_total=lambda n: bar.update(task, total=n),
            on_batch=lambda n: bar.advance(task, n),
        )
    return report


def _print_moves(migration_id: str, reverse: bool, moves: list[Move]) -> None:
    table = Table(title=f"plan migration {migration_id}{' (reverse)' if reverse else ''}: dry run")
    for column in (
        "tenant",
        "subscription",
        "from",
        "to",
        "pays now /mo",
        "from next month",
        "charged now (prorated)",
        "key grace",
        "state",
    ):
        table.add_column(
            column, justify="right" if "pay" in column or "charged" in column or "month" in column else "left"
        )
    for m in moves:
        table.add_row(
            m.external_id,
            m.subscription_id,
            m.from_plan,
            m.to_plan,
            _money(m.now_cents, m.currency),
            _money(m.next_cents, m.currency),
            _money(m.prorated_now_cents, m.currency),
            "30 days" if m.key_grace else "",
            m.state + (f" ({m.note})" if m.note else ""),
        )
    console.print(table)
    now_total = sum(m.now_cents or 0 for m in moves)
    next_total = sum(m.next_cents or 0 for m in moves)
    console.print(
        f"{len(moves)} subscriptions; monthly total now {_money(now_total)}, from next month {_money(next_total)}; "
        f"{sum(1 for m in moves if m.key_grace)} start a 30-day key grace",
        markup=False,
    )


def register(app: typer.Typer) -> None:
    app.add_typer(plans_app, name="plans")
