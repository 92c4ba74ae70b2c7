"""``controlplane rollout ...``: move the fleet to a new OpenClaw image in health-gated batches, and
``tenant set-cohort`` / ``tenant pin`` / ``tenant unpin`` that choose who moves.

The commands only record intent (``controlplane/db/rollouts.py``); the worker's rollout driver
(``workers/rollout.py``) changes tenants' desired images batch by batch and the reconciler updates the
machines. Exit codes: 0 done, 1 the database failed, 2 bad input (nothing changed), 3 refused by a
safety check (another rollout active, nothing to roll back, a state that does not allow the action).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.table import Table

from controlplane.cli._common import cli_actor, console, err_console, open_database, run, settings
from controlplane.cli.tenant import tenant_app

if TYPE_CHECKING:
    from collections.abc import Coroutine

    from controlplane.db.rollouts import RolloutView

T = TypeVar("T")


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an expected failure is one line on stderr and its exit code
    (2 bad input, 3 refused, 1 a dependency), the same as the console entry point does."""
    from controlplane.errors import ControlPlaneError
    from controlplane.redaction import redact_text

    try:
        return run(coro)
    except ControlPlaneError as exc:
        err_console.print(f"error: {redact_text(str(exc))}", markup=False)
        raise typer.Exit(exc.exit_code) from None


rollout_app = typer.Typer(
    help="Roll the agents' OpenClaw image out in health-gated batches (the worker does the updates).",
    no_args_is_help=True,
)
ROLLOUT_ID = typer.Argument(
    None, metavar="[ROLLOUT_ID]", help="Default: the active (else the latest) rollout."
)
REASON = typer.Option(..., "--reason", help="Why (recorded in the audit log).")
JSON = typer.Option(False, "--json", help="Machine-readable output.")


def _bar(done: int, total: int, width: int = 40) -> str:
    """A progress bar that reads the same on a terminal, in a pipe and in a log."""
    filled = width if total <= 0 else round(width * min(done, total) / total)
    percent = 100 if total <= 0 else 100 * min(done, total) // total
    return f"[{'█' * filled}{'░' * (width - filled)}] {percent:3d}%"


def _show(view: RolloutView, *, as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(view.as_dict(), indent=2))
        return
    moving = view.total - view.skipped_count
    finished = view.done + view.counts.get("rolled_back", 0)
    what = f"rollback of {view.rollback_of}" if view.rollback_of else view.image
    selector = ", ".join(f"{k} {v}" for k, v in view.selector.items()) or "every tenant"
    console.print(f"rollout {view.id}: {what} ({selector})", markup=False)
    console.print(
        f"state {view.state}"
        + (f": {view.reason}" if view.reason else "")
        + f"   batch {'-' if view.current_batch is None else view.current_batch + 1} of {view.batches}"
        + f" (size {view.batch_size}), at most {view.max_in_flight} in flight",
        markup=False,
    )
    console.print(f"{_bar(finished, moving)} {finished} of {moving} finished", markup=False)
    table = Table(show_header=True)
    for column in ("done", "in flight", "failed (rolled back)", "skipped", "not started", "total"):
        table.add_column(column, justify="right")
    table.add_row(
        str(view.done),
        str(view.in_flight),
        str(view.failed_count),
        str(view.skipped_count),
        str(view.pending),
        str(view.total),
    )
    console.print(table)
    for label, notes in (("failed", view.failed), ("skipped", view.skipped)):
        for note in notes:
            console.print(f"  {label}: {note.external_id} ({note.state}): {note.note or ''}", markup=False)


@rollout_app.command("start")
def start(
    image: str = typer.Option(..., "--image", help="Pinned image: an exact version tag or a @sha256 digest."),
    cohort: str | None = typer.Option(None, "--cohort", help="Only tenants with this cohort label."),
    percent: int | None = typer.Option(None, "--percent", help="Only a stable N% of tenants (1-100)."),
    batch: int = typer.Option(..., "--batch", help="Tenants per batch; a batch waits for the previous one."),
    max_in_flight: int = typer.Option(
        ..., "--max-in-flight", help="Most machine updates at once, fleet-wide."
    ),
    reason: str | None = typer.Option(None, "--reason", help="Why (recorded in the audit log)."),
    as_json: bool = JSON,
) -> None:
    """Record a rollout; the workers move tenants batch by batch, each batch only once the previous
    one's machines run the new image and pass /readyz. Pinned tenants are skipped."""
    from controlplane.db import rollouts

    s = settings()

    async def go() -> RolloutView:
        async with open_database(s) as db:
            return await rollouts.start_rollout(
                db,
                image=image,
                default_image=s.openclaw_image,
                batch_size=batch,
                max_in_flight=max_in_flight,
                actor=cli_actor(),
                cohort=cohort,
                percent=percent,
                reason=reason,
            )

    view = _run(go())
    if as_json:
        _show(view, as_json=True)
        return
    console.print(
        f"rollout {view.id} started: {view.pending} tenants to move to {view.image} in {view.batches} "
        f"batches of {view.batch_size} (at most {view.max_in_flight} in flight); {view.skipped_count} "
        f"skipped (pinned), {view.done} already on it. Follow it with `controlplane rollout status`.",
        markup=False,
    )


@rollout_app.command("status")
def status(rollout_id: str | None = ROLLOUT_ID, as_json: bool = JSON) -> None:
    """Done / in flight / failed / skipped, with a progress bar."""
    from controlplane.db import rollouts

    s = settings()

    async def go() -> RolloutView:
        async with open_database(s) as db:
            return await rollouts.read_status(db, rollout_id)

    _show(_run(go()), as_json=as_json)


def _change(action: str, rollout_id: str | None, reason: str, as_json: bool) -> None:
    from controlplane.db import rollouts

    s = settings()

    async def go() -> RolloutView:
        async with open_database(s) as db:
            return await rollouts.change_state(
                db, action, actor=cli_actor(), reason=reason, rollout_id=rollout_id
            )

    view = _run(go())
    if as_json:
        _show(view, as_json=True)
    else:
        console.print(f"rollout {view.id}: {view.state}", markup=False)


@rollout_app.command("pause")
def pause(rollout_id: str | None = ROLLOUT_ID, reason: str = REASON, as_json: bool = JSON) -> None:
    """Start nothing new; updates in flight finish (and are still checked)."""
    _change("pause", rollout_id, reason, as_json)


@rollout_app.command("resume")
def resume(rollout_id: str | None = ROLLOUT_ID, reason: str = REASON, as_json: bool = JSON) -> None:
    """Carry on from where it paused (a tenant that failed stays rolled back)."""
    _change("resume", rollout_id, reason, as_json)


@rollout_app.command("abort")
def abort(rollout_id: str | None = ROLLOUT_ID, reason: str = REASON, as_json: bool = JSON) -> None:
    """Stop for good: tenants not started stay on their image; updates in flight finish."""
    _change("abort", rollout_id, reason, as_json)


@rollout_app.command("rollback")
def rollback(
    rollout_id: str | None = ROLLOUT_ID,
    batch: int = typer.Option(..., "--batch", help="Tenants per batch."),
    max_in_flight: int = typer.Option(..., "--max-in-flight", help="Most machine updates at once."),
    reason: str = REASON,
    as_json: bool = JSON,
) -> None:
    """A new rollout moving every tenant a finished or aborted rollout moved back to the image it
    had, in batches with the same health checks."""
    from controlplane.db import rollouts
    from controlplane.errors import BadInput

    s = settings()

    async def go() -> RolloutView:
        if batch < 1 or max_in_flight < 1:
            raise BadInput("--batch" if batch < 1 else "--max-in-flight", "at least 1")
        async with open_database(s) as db:
            return await rollouts.start_rollback(
                db,
                rollout_id,
                batch_size=batch,
                max_in_flight=max_in_flight,
                actor=cli_actor(),
                reason=reason,
            )

    view = _run(go())
    if as_json:
        _show(view, as_json=True)
    else:
        console.print(
            f"rollout {view.id} started: {view.pending} tenants back to their previous image "
            f"(rollback of {view.rollback_of}); {view.skipped_count} skipped",
            markup=False,
        )


# -- choosing who moves ----------------------------------------------------------------------------
@tenant_app.command("set-cohort")
def set_cohort(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    label: str | None = typer.Argument(None, metavar="[LABEL]", help="a-z 0-9 . _ - (e.g. canary)."),
    clear: bool = typer.Option(False, "--clear", help="Remove the tenant's cohort label."),
    reason: str = REASON,
) -> None:
    """Label a tenant for `rollout start --cohort LABEL` (changes nothing on Fly)."""
    from controlplane.db import rollouts
    from controlplane.errors import BadInput

    s = settings()

    async def go() -> bool:
        if (label is None) == (not clear):
            raise BadInput("LABEL", "give a LABEL, or --clear")
        async with open_database(s) as db:
            return await rollouts.set_cohort(db, external_id, label, actor=cli_actor(), reason=reason)

    changed = _run(go())
    console.print(
        f"tenant {external_id}: cohort {label or '(none)'}{'' if changed else ' (unchanged)'}", markup=False
    )


def _pin(external_id: str, image: str | None, reason: str) -> None:
    from controlplane.db import rollouts

    s = settings()

    async def go() -> bool:
        async with open_database(s) as db:
            return await rollouts.set_image_pin(db, external_id, image, actor=cli_actor(), reason=reason)

    changed = _run(go())
    what = f"pinned to {image}" if image else f"unpinned (follows rollouts; default {s.openclaw_image})"
    console.print(f"tenant {external_id}: {what}{'' if changed else ' (unchanged)'}", markup=False)


@tenant_app.command("pin")
def pin(
    external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"),
    image: str = typer.Argument(..., metavar="IMAGE", help="Exact version tag or @sha256 digest."),
    reason: str = REASON,
) -> None:
    """Keep a tenant on an image: rollouts skip it (and report it)."""
    _pin(external_id, image, reason)


@tenant_app.command("unpin")
def unpin(external_id: str = typer.Argument(..., metavar="EXTERNAL_ID"), reason: str = REASON) -> None:
    """Let a pinned tenant follow rollouts again."""
    _pin(external_id, None, reason)


def register(app: typer.Typer) -> None:
    app.add_typer(rollout_app, name="rollout")
