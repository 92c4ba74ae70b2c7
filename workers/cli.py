"""The commands that run the workers: ``controlplane worker``, ``controlplane reconcile``,
``controlplane demo`` (registered into the ``controlplane`` CLI through the ``controlplane.cli``
entry point: ``controlplane`` never imports ``workers``)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import typer

from controlplane.cli._common import cli_actor, console, open_database, run, settings
from controlplane.errors import BadInput


def worker(
    concurrency: int | None = typer.Option(
        None, "--concurrency", min=1, max=1024, help="Reconciles at once (default CP_WORKER_CONCURRENCY)."
    ),
    until_idle: bool = typer.Option(
        False, "--until-idle", help="Exit once nothing is running and nothing is due soon (scripts, tests)."
    ),
) -> None:
    """Run the worker process: claim and reconcile tenants, resync periodically, serve /metrics and
    /healthz on CP_WORKER_METRICS_PORT. SIGTERM finishes or releases every lease and exits."""
    from workers.process import WorkerProcess, run_until_signalled

    s = settings()

    async def go() -> None:
        async with WorkerProcess.open(s, concurrency=concurrency) as process:
            await run_until_signalled(process, until_idle=until_idle)

    run(go())


def reconcile(
    external_id: str | None = typer.Argument(None, metavar="EXTERNAL_ID", help="The tenant (or --all)."),
    all_tenants: bool = typer.Option(False, "--all", help="Every tenant that is not gone."),
    wait: bool = typer.Option(False, "--wait", help="Run it now in this process and print the result."),
    reason: str = typer.Option("operator request", "--reason", help="Why (recorded in the audit log)."),
) -> None:
    """Mark a tenant (or all) to be reconciled now, ahead of background work and bypassing any
    backoff or parking; with --wait, run the reconcile here and print how it ended."""
    from controlplane import audit
    from controlplane.db.queue import mark_for_reconcile
    from controlplane.desired import find_tenant

    if (external_id is None) == (not all_tenants):
        raise BadInput("EXTERNAL_ID", "give one tenant id, or --all")
    s = settings()
    actor = cli_actor()

    async def mark() -> list[str]:
        async with open_database(s) as db:
            if all_tenants:
                from controlplane.db.queue import ReconcileQueue

                count = await ReconcileQueue(db).mark_all(f"{reason} by {actor}", explicit=True)
                async with db.transaction() as session:
                    audit.record(
                        session,
                        actor=actor,
                        action="reconcile.requested",
                        reason=reason,
                        after={"tenants": count},
                    )
                return []
            async with db.transaction() as session:
                assert external_id is not None
                tenant = await find_tenant(session, external_id)
                await mark_for_reconcile(session, tenant.id, f"{reason} by {actor}")
                audit.record(
                    session, actor=actor, action="reconcile.requested", tenant_id=tenant.id, reason=reason
                )
                return [tenant.id]

    tenant_ids = run(mark())
    if not wait:
        console.print("marked: " + (external_id or "every tenant") + " (the workers pick it up first)")
        return
    result = run(_run_now(s, tenant_ids))
    typer.echo(json.dumps(result, indent=2))
    if any(r["action"] in ("retry", "park") for r in result["runs"]):
        raise typer.Exit(1)


async def _run_now(s: object, tenant_ids: list[str]) -> dict[str, Any]:
    from controlplane.settings import Settings
    from workers.handler import Handled, handle
    from workers.process import WorkerProcess

    assert isinstance(s, Settings)
    runs: list[Handled] = []
    async with WorkerProcess.open(s, on_handled=runs.append) as process:
        if not tenant_ids:  # --all: run a worker until nothing is due soon
            await process.worker.run(asyncio.Event(), until_idle=True, idle_horizon_seconds=5.0)
        for tenant_id in tenant_ids:
            for _ in range(600):
                claim = await process.queue.claim_tenant(process.worker.owner, tenant_id)
                if claim is not None:
                    handled = await handle(process.queue, claim, process.reconciler.reconcile)
                    runs.append(handled)
                    break
                await asyncio.sleep(0.5)  # another worker holds it right now
    return {
        "runs": [
            {
                "tenant_id": h.tenant_id,
                "reconcile_id": h.reconcile_id,
                "action": h.action,
                "note": h.note,
                "error": h.error,
                "requeue_after": h.requeue_after,
                "seconds": round(h.seconds, 3),
            }
            for h in runs
        ],
        "fly_calls": process.fly_calls.total(),
    }


def demo(
    speed: float = typer.Option(
        8.0,
        "--speed",
        min=1.0,
        max=100.0,
        help="Emulated seconds per real second (Fly-like latencies, sped up).",
    ),
) -> None:
    """The walk-through on the embedded default: SQLite, the built-in Fly emulator, and the real
    worker converging a fleet of about 30 tenants (see workers/demo.py)."""
    from rich.console import Console

    from controlplane.logging import configure_logging
    from workers.demo import run_demo

    configure_logging(level="ERROR", fmt="console")
    out = Console(soft_wrap=True, width=max(Console().width, 150))
    raise typer.Exit(run(run_demo(out, speed=speed)))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("reconcile")(reconcile)
    app.command("demo")(demo)


__all__ = ["register"]
