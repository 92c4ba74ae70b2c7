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


health_app = typer.Typer(help="Fleet health: the sweep that raises and clears banners.", no_args_is_help=True)


@health_app.command("sweep")
def health_sweep(
    once: bool = typer.Option(False, "--once", help="One sweep, then exit (default: every interval)."),
    as_json: bool = typer.Option(False, "--json", help="Print each sweep's report as one JSON line."),
) -> None:
    """Read the fleet's machine states (org-wide listing), probe running agents' /readyz, read the
    agents' own view of their keys and channels (exec), mark drift to reconcile and raise or clear
    banners. Changes nothing on Fly and never wakes a sleeping agent. Without --once it sweeps every
    CP_HEALTH_SWEEP_INTERVAL_SECONDS until SIGTERM/SIGINT. (The worker process also runs the sweep
    as a periodic job, exactly once per period across workers.)"""
    import signal

    from workers.process import WorkerProcess

    s = settings()

    def show(report: Any) -> None:
        data = report.to_dict()
        if as_json:
            typer.echo(json.dumps(data, sort_keys=True))
        else:
            console.print(
                f"sweep: {data['machines_known']} machines, {data['tenants']} tenants, "
                f"{data['fly_api_calls']} Fly API calls ({data['fly_list_calls']} listing), "
                f"{data['probes_sent']} probes ({data['probes_failed']} failed), "
                f"{data['introspected']} introspected, {data['drift_marked']} marked to reconcile, "
                f"banners +{data['banners_raised']} -{data['banners_cleared']} in {data['seconds']} s"
            )

    async def go() -> int:
        async with WorkerProcess.open(s) as process:
            assert process.housekeeping is not None
            sweeper = process.housekeeping.sweeper
            if once:
                show(await sweeper.sweep())
                return 0
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            while not stop.is_set():
                try:
                    show(await sweeper.sweep())
                except Exception as exc:  # the database or Fly unreachable: try again next interval
                    console.print(f"sweep failed: {type(exc).__name__}")
                try:
                    await asyncio.wait_for(stop.wait(), timeout=sweeper.config.sweep_interval_seconds)
                except TimeoutError:
                    pass
            return 0

    raise typer.Exit(run(go()))


def register(app: typer.Typer) -> None:
    app.command("worker")(worker)
    app.command("reconcile")(reconcile)
    app.command("demo")(demo)
    app.add_typer(health_app, name="health")


__all__ = ["register"]
