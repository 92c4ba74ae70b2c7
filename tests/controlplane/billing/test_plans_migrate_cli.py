"""``controlplane plans migrate`` end to end: the fake Stripe API on loopback, a fresh SQLite or
PostgreSQL database migrated with the project's migrations; dry run (table and JSON), a run that
fails on Stripe (exit 1) and its resumption (exit 0), --reverse, a held lease (exit 3), bad input
(exit 2, one line naming the option)."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import typer
from sqlalchemy import select
from typer.testing import CliRunner, Result

from agents_config.catalog import load_catalog
from controlplane.billing.migration import PlanMap
from controlplane.cli.plans import register
from controlplane.db import migrate
from controlplane.db.models import PlanMigration, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.enums import BillingStatus
from controlplane.settings import reset_settings_cache
from tests.support.billing import API_KEY, LEGACY_PRICES, fake_stripe_for

CATALOG = load_catalog()


@pytest.fixture
def app() -> Iterator[typer.Typer]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    application = typer.Typer()
    application.command("noop")(lambda: None)
    register(application)
    yield application
    root.handlers, root.level = handlers, level


async def _invoke(app: typer.Typer, *args: str) -> Result:
    # The command runs its own event loop: give it a thread, like a separate process.
    return await asyncio.to_thread(CliRunner().invoke, app, list(args))


async def test_migrate_dry_run_fail_resume_reverse_and_refuse(
    app: typer.Typer, fresh_database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    migrate.upgrade(fresh_database_url)
    db = Database.from_url(fresh_database_url)
    fake = fake_stripe_for(CATALOG)
    subs = {}
    async with db.transaction() as s:
        for n, plan in enumerate(["lite", "lite", "starter"]):
            customer = fake.create_customer()
            sub = fake.create_subscription(
                customer["id"], LEGACY_PRICES[plan][0] if plan in LEGACY_PRICES else "price_starter_monthly"
            )
            subs[sub["id"]] = plan
            s.add(
                Tenant(
                    external_id=f"t{n}",
                    plan=plan,
                    region="iad",
                    billing_status=BillingStatus.active,
                    stripe_subscription_id=sub["id"],
                )
            )
    map_file = tmp_path / "pivot.toml"
    map_file.write_text('[map]\nlite = "starter"\nstarter = "pro"\n')

    async def plans() -> dict[str, str]:
        async with db.transaction() as s:
            return {t.stripe_subscription_id or "": t.plan for t in await s.scalars(select(Tenant))}

    try:
        async with fake.serve() as url:
            monkeypatch.setenv("CP_DATABASE_URL", fresh_database_url)
            monkeypatch.setenv("CP_STRIPE_SECRET_KEY", API_KEY)
            monkeypatch.setenv("CP_STRIPE_API_BASE", url)
            reset_settings_cache()

            dry = await _invoke(app, "plans", "migrate", "--map", str(map_file), "--dry-run", "--json")
            assert dry.exit_code == 0, dry.stderr
            moves = json.loads(dry.stdout)["moves"]
            assert sorted((m["from_plan"], m["to_plan"], m["now_cents"], m["next_cents"]) for m in moves) == [
                ("lite", "starter", 1000, 2000),
                ("lite", "starter", 1000, 2000),
                ("starter", "pro", 2000, 3000),
            ]
            table = await _invoke(app, "plans", "migrate", "--map", str(map_file), "--dry-run")
            assert table.exit_code == 0 and "$10.00" in table.stdout and "3 subscriptions" in table.stdout
            assert await plans() == subs  # the dry run changed nothing

            fake.set_fault_rate(1.0, ("503",))
            failed = await _invoke(app, "plans", "migrate", "--map", str(map_file))
            assert failed.exit_code == 1
            assert "3 failed" in failed.stdout and "run the same command again" in failed.stderr
            assert await plans() == subs

            fake.clear_faults()
            done = await _invoke(app, "plans", "migrate", "--map", str(map_file), "--batch", "2", "--json")
            assert done.exit_code == 0, done.stderr
            report = json.loads(done.stdout)
            assert (report["total"], report["done"], report["failed"]) == (3, 3, 0)
            assert sorted((await plans()).values()) == ["pro", "starter", "starter"]

            back = await _invoke(app, "plans", "migrate", "--map", str(map_file), "--reverse")
            assert back.exit_code == 0, back.stderr
            assert await plans() == subs

            # Another run holds the migration's lease: refused with exit 3, nothing done.
            async with db.transaction() as s:
                row = await s.get(PlanMigration, PlanMap({"lite": "starter", "starter": "pro"}).migration_id)
                assert row is not None
                row.lock_owner, row.lock_expires_at = "cli:someone-else:1234", utcnow() + timedelta(minutes=5)
            refused = await _invoke(app, "plans", "migrate", "--map", str(map_file))
            assert refused.exit_code == 3 and "being run by cli:someone-else" in refused.stderr
            assert await plans() == subs
    finally:
        await db.dispose()
        reset_settings_cache()


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--map", "missing.toml"], "--map: missing.toml: cannot read: No such file"),
        (["--map", "bad.toml"], "--map: bad.toml: new plan 'gold' is not in catalog"),
        (["--map", "bad.toml", "--batch", "0"], "--batch"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    app: typer.Typer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str], expected: str
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "bad.toml").write_text('lite = "gold"\n')
    result = CliRunner().invoke(app, ["plans", "migrate", *args])
    assert result.exit_code == 2
    assert expected in result.stderr and "Traceback" not in result.stderr
