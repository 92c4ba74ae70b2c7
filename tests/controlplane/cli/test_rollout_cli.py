"""``controlplane rollout ...`` and ``tenant set-cohort|pin|unpin`` on a migrated database of every
backend: output, --json that parses, exit codes (2 bad input with nothing changed, 3 refused),
--reason where something changes, audit rows by ``cli:<user>``. The worker's side (the driver moving
machines) is tests/workers/test_rollout.py."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
import typer
from sqlalchemy import func, select, update
from typer.testing import CliRunner, Result

from controlplane.cli import rollout as rollout_cli
from controlplane.cli import tenant as tenant_cli
from controlplane.db import migrate
from controlplane.db import rollouts as store
from controlplane.db.models import AuditLog, Rollout, RolloutItem, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.enums import RolloutItemState
from controlplane.settings import reset_settings_cache

OLD = "ghcr.io/openclaw/openclaw:2026.9.6"
NEW = "ghcr.io/openclaw/openclaw:2026.10.1"


@pytest.fixture
def app() -> Iterator[typer.Typer]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    application = typer.Typer()
    tenant_cli.register(application)
    rollout_cli.register(application)
    yield application
    root.handlers, root.level = handlers, level


@pytest.fixture
async def db(fresh_database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    migrate.upgrade(fresh_database_url)
    monkeypatch.setenv("CP_DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("CP_OPENCLAW_IMAGE", OLD)
    monkeypatch.setenv("CP_LOG_FORMAT", "json")
    reset_settings_cache()
    database = Database.from_url(fresh_database_url)
    async with database.transaction() as s:
        for n in range(6):
            s.add(Tenant(external_id=f"t{n}", plan="pro", region="iad"))
    try:
        yield database
    finally:
        reset_settings_cache()
        await database.dispose()


async def invoke(app: typer.Typer, *args: str) -> Result:
    # The command runs its own event loop: give it a thread, like a separate process.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def counts(db: Database) -> tuple[int, int, int]:
    async with db.read() as s:
        rollouts = await s.scalar(select(func.count()).select_from(Rollout))
        audit = await s.scalar(select(func.count()).select_from(AuditLog))
        cohorts = await s.scalar(select(func.count()).where(Tenant.cohort.is_not(None)))
    return int(rollouts or 0), int(audit or 0), int(cohorts or 0)


async def test_cohorts_pins_start_status_pause_resume_abort_rollback(app: typer.Typer, db: Database) -> None:
    for external_id in ("t0", "t1"):
        result = await invoke(
            app, "tenant", "set-cohort", external_id, "canary", "--reason", "early adopters"
        )
        assert result.exit_code == 0, result.output
    result = await invoke(app, "tenant", "pin", "t5", OLD, "--reason", "customer asked to wait")
    assert result.exit_code == 0 and "pinned to" in result.output

    nothing = await counts(db)
    for bad in (
        ("tenant", "set-cohort", "t2", "Not A Label", "--reason", "x"),
        ("tenant", "set-cohort", "t2", "--reason", "x"),  # neither a label nor --clear
        ("tenant", "set-cohort", "nobody", "canary", "--reason", "x"),
        ("tenant", "pin", "t2", "ghcr.io/openclaw/openclaw:latest", "--reason", "x"),
        ("tenant", "pin", "t2", OLD),  # no --reason
        (
            "rollout",
            "start",
            "--image",
            "ghcr.io/openclaw/openclaw:latest",
            "--batch",
            "2",
            "--max-in-flight",
            "1",
        ),
        ("rollout", "start", "--image", "not an image", "--batch", "2", "--max-in-flight", "1"),
        (
            "rollout",
            "start",
            "--image",
            NEW,
            "--cohort",
            "canary",
            "--percent",
            "10",
            "--batch",
            "2",
            "--max-in-flight",
            "1",
        ),
        ("rollout", "start", "--image", NEW, "--percent", "0", "--batch", "2", "--max-in-flight", "1"),
        ("rollout", "start", "--image", NEW, "--batch", "0", "--max-in-flight", "1"),
        ("rollout", "start", "--image", NEW, "--batch", "2", "--max-in-flight", "0"),
        ("rollout", "start", "--image", NEW, "--batch", "2"),  # no --max-in-flight
        ("rollout", "status", "no-such-rollout"),
    ):
        result = await invoke(app, *bad)
        assert result.exit_code == 2, (bad, result.output)
    assert await counts(db) == nothing  # nothing changed
    result = await invoke(app, "rollout", "status")
    assert result.exit_code == 2 and "no rollout yet" in result.output

    result = await invoke(
        app,
        "rollout",
        "start",
        "--image",
        NEW,
        "--cohort",
        "canary",
        "--batch",
        "1",
        "--max-in-flight",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.output
    started = json.loads(result.output)
    assert (started["total"], started["pending"], started["state"], started["batches"]) == (
        2,
        2,
        "running",
        2,
    )
    assert started["selector"] == {"cohort": "canary"} and started["image"] == NEW

    result = await invoke(app, "rollout", "start", "--image", NEW, "--batch", "5", "--max-in-flight", "2")
    assert result.exit_code == 3 and "another rollout" in result.output  # one active rollout at a time

    result = await invoke(app, "rollout", "status")
    assert result.exit_code == 0
    for word in ("done", "in flight", "failed", "skipped", "0 of 2 finished", "running"):
        assert word in result.output, result.output
    assert "[" + "░" * 40 + "]   0%" in result.output  # the progress bar

    assert (await invoke(app, "rollout", "pause")).exit_code == 2  # --reason required
    result = await invoke(app, "rollout", "pause", "--reason", "looking at metrics", "--json")
    assert result.exit_code == 0 and json.loads(result.output)["state"] == "paused"
    assert (await invoke(app, "rollout", "pause", "--reason", "again")).exit_code == 3
    result = await invoke(app, "rollout", "resume", "--reason", "metrics fine")
    assert result.exit_code == 0 and "running" in result.output
    result = await invoke(app, "rollout", "abort", started["id"], "--reason", "wrong image", "--json")
    aborted = json.loads(result.output)
    assert result.exit_code == 0 and aborted["state"] == "aborted" and aborted["skipped_count"] == 2
    assert aborted["finished_at"] is not None  # nothing was in flight: closed at once
    result = await invoke(app, "rollout", "rollback", "--batch", "2", "--max-in-flight", "1", "--reason", "x")
    assert result.exit_code == 3 and "nothing to roll back" in result.output

    # Every tenant, the pinned one reported as skipped; then pretend the workers finished it.
    result = await invoke(
        app, "rollout", "start", "--image", NEW, "--batch", "2", "--max-in-flight", "2", "--json"
    )
    view = json.loads(result.output)
    assert result.exit_code == 0 and (view["total"], view["pending"], view["skipped_count"]) == (6, 5, 1)
    assert view["skipped"] == [{"external_id": "t5", "state": "skipped", "note": f"pinned to {OLD}"}]
    async with db.transaction() as s:  # what the workers would have done
        await s.execute(
            update(RolloutItem)
            .where(RolloutItem.rollout_id == view["id"], RolloutItem.state == RolloutItemState.pending)
            .values(state=RolloutItemState.done)
        )
        await s.execute(update(Tenant).where(Tenant.image_pin.is_(None)).values(desired_image=NEW))
    assert await store.finish_if_complete(db, view["id"], utcnow())
    result = await invoke(app, "rollout", "status", view["id"], "--json")
    assert json.loads(result.output)["state"] == "done" and json.loads(result.output)["done"] == 5

    async with db.transaction() as s:  # someone moved t4 by hand since: the rollback leaves it alone
        await s.execute(update(Tenant).where(Tenant.external_id == "t4").values(desired_image=OLD))
    result = await invoke(
        app, "rollout", "rollback", "--batch", "2", "--max-in-flight", "1", "--reason", "bad", "--json"
    )
    assert result.exit_code == 0, result.output
    back = json.loads(result.output)
    assert back["rollback_of"] == view["id"] and back["state"] == "running"
    assert (back["pending"], back["skipped_count"]) == (4, 1)  # t5 was never moved: not in it
    assert [(n["external_id"], n["note"]) for n in back["skipped"]] == [
        ("t4", "its image changed since the rollout")
    ]
    async with db.read() as s:
        targets = set(
            (
                await s.scalars(select(RolloutItem.target_image).where(RolloutItem.rollout_id == back["id"]))
            ).all()
        )
    assert targets == {OLD}

    async with db.read() as s:
        actors = set((await s.scalars(select(AuditLog.actor).where(AuditLog.action.like("rollout.%")))).all())
        actions = set((await s.scalars(select(AuditLog.action))).all())
    assert all(a.startswith("cli:") for a in actors - {"worker"})
    assert {"rollout.started", "rollout.pause", "rollout.resume", "rollout.abort", "tenant.cohort"} <= actions
    assert {"tenant.image_pin", "rollout.rolled_back"} <= actions

    result = await invoke(app, "tenant", "unpin", "t5", "--reason", "caught up")
    assert result.exit_code == 0 and "unpinned" in result.output
    result = await invoke(app, "tenant", "set-cohort", "t0", "--clear", "--reason", "done")
    assert result.exit_code == 0 and (await counts(db))[2] == 1
