"""Plan migration over 500 subscriptions with Stripe failures injected halfway: running it again
completes it with no double proration (one idempotency key per subscription and direction, reused
on every retry) and no tenant left halfway; --reverse restores the old plans; the dry run says who
moves where and what they pay; a crash between Stripe and the database never charges twice."""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

import pytest
from sqlalchemy import func, select

from agents_config.catalog import load_catalog
from controlplane.billing.fake_stripe import FakeStripe
from controlplane.billing.migration import Migrator, PlanMap, load_plan_map
from controlplane.billing.stripe_client import StripeClient
from controlplane.db.models import Announcement, AuditLog, PlanMigrationItem, Tenant
from controlplane.db.session import Database
from controlplane.enums import BillingStatus, MigrationItemState
from controlplane.errors import BadInput, Refused
from controlplane.testing import FakeClock
from tests.support.billing import API_KEY, FAKE_URL, LEGACY_PRICES, fake_stripe_for

CATALOG = load_catalog()
SEED_MAP = {"free": "starter", "lite": "starter", "starter": "pro", "pro": "power", "business": "power"}
PRICE = {
    **{p: v[0] for p, v in LEGACY_PRICES.items()},
    **{p.id: p.stripe_price_id for p in CATALOG.plans.values()},
}
AMOUNT = {
    **{p: v[1] for p, v in LEGACY_PRICES.items()},
    **{p.id: p.monthly_price_cents for p in CATALOG.plans.values()},
}


class ProcessDied(Exception):
    pass


async def _subscribers(db: Database, fake: FakeStripe, plans: dict[str, int]) -> dict[str, str]:
    """``plans``: how many tenants per plan, each with a Stripe customer + subscription on the plan's
    price. Returns subscription id -> old plan."""
    subs: dict[str, str] = {}
    async with db.transaction() as s:
        for plan, count in plans.items():
            for n in range(count):
                customer = fake.create_customer(metadata={"external_id": f"{plan}-{n}"})
                sub = fake.create_subscription(customer["id"], PRICE[plan])
                s.add(
                    Tenant(
                        external_id=f"{plan}-{n}",
                        plan=plan,
                        region="iad",
                        billing_status=BillingStatus.active,
                        stripe_customer_id=customer["id"],
                        stripe_subscription_id=sub["id"],
                    )
                )
                subs[sub["id"]] = plan
    return subs


def _switches(fake: FakeStripe) -> dict[str, list[str | None]]:
    """subscription id -> idempotency keys of every price switch request (incl. failed ones)."""
    keys: dict[str, list[str | None]] = defaultdict(list)
    for r in fake.requests:
        if r.method == "POST" and r.path.startswith("/v1/subscriptions/") and "items" in r.params:
            keys[r.path.rsplit("/", 1)[1]].append(r.idempotency_key)
    return keys


async def _tenants(db: Database) -> dict[str, Tenant]:
    async with db.transaction() as s:
        return {t.stripe_subscription_id or "": t for t in await s.scalars(select(Tenant))}


async def test_500_subscriptions_with_failures_halfway_complete_on_rerun_and_reverse(db) -> None:
    fake = fake_stripe_for(CATALOG, seed=12)
    subs = await _subscribers(
        db, fake, {"free": 100, "lite": 100, "starter": 100, "pro": 100, "business": 100}
    )
    clock = FakeClock()
    plan_map = PlanMap(SEED_MAP)
    async with StripeClient(API_KEY, api_base=FAKE_URL, transport=fake.transport(), clock=clock) as stripe:
        migrator = Migrator(db, stripe, CATALOG, plan_map, actor="cli:ops", clock=clock)

        # The first half meets flaky Stripe (lost answers after the switch ran, 5xx, 429, dropped
        # connections: retried in-process with the same key); then Stripe goes down altogether.
        fake.set_fault_rate(0.25, ("ambiguous", "500", "429", "drop"))
        batches = {"n": 0}

        def outage(_: int) -> None:
            batches["n"] += 1
            if batches["n"] == 5:
                fake.set_fault_rate(1.0, ("503",))

        first = await migrator.run(batch=50, on_batch=outage)
        assert first.total == 500
        assert 200 <= first.done < 500 and first.failed == 500 - first.done
        assert first.done + first.failed == 500

        fake.clear_faults()
        second = await migrator.run(batch=50)
        assert (second.total, second.done, second.failed) == (first.failed, first.failed, 0)
        third = await migrator.run(batch=50)  # nothing left: a no-op
        assert (third.total, third.done) == (0, 0)

        tenants = await _tenants(db)
        for sub_id, old_plan in subs.items():
            new_plan = SEED_MAP[old_plan]  # starter -> pro, never on to power
            assert tenants[sub_id].plan == new_plan, sub_id
            assert fake.subscriptions[sub_id]["items"]["data"][0]["price"]["id"] == PRICE[new_plan]
            # No double proration: exactly one charge per subscription, under its one key.
            prorations = fake.prorations_of(sub_id)
            assert len(prorations) == 1
            assert (
                abs(prorations[0].amount - (AMOUNT[new_plan] - AMOUNT[old_plan])) <= 1
            )  # the whole period left
        keys = _switches(fake)
        assert set(keys) == set(subs)
        assert all(len(set(k)) == 1 and k[0] is not None for k in keys.values())  # reused on every retry
        assert len({k[0] for k in keys.values()}) == 500  # unique per subscription
        assert sum(len(k) > 1 for k in keys.values()) > 0  # some were retried (faults really happened)
        async with db.read() as s:
            states = Counter((await s.scalars(select(PlanMigrationItem.state))).all())
            assert states == {MigrationItemState.done: 500}
            assert await s.scalar(select(func.count()).select_from(Announcement)) == 500
            grace = await s.scalar(
                select(func.count()).select_from(Tenant).where(Tenant.key_grace_until.isnot(None))
            )
            assert grace == 500  # BYOK plans, nobody has a key yet: 30 days on the platform key
            audits = await s.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "billing.plan_migrated")
            )
            assert audits == 500

        # --reverse restores the old plans and prices, with new keys, once each.
        back = await migrator.run(reverse=True, batch=100)
        assert (back.total, back.done, back.failed) == (500, 500, 0)
        tenants = await _tenants(db)
        reverse_keys = _switches(fake)
        for sub_id, old_plan in subs.items():
            assert tenants[sub_id].plan == old_plan
            assert tenants[sub_id].key_grace_until is None
            assert fake.subscriptions[sub_id]["items"]["data"][0]["price"]["id"] == PRICE[old_plan]
            assert len(fake.prorations_of(sub_id)) == 2
            assert len(set(reverse_keys[sub_id])) == 2 and reverse_keys[sub_id][-1].endswith(":reverse:1")
        async with db.read() as s:  # nothing deleted
            states = Counter((await s.scalars(select(PlanMigrationItem.state))).all())
            assert states == {MigrationItemState.reversed: 500}


async def test_a_crash_after_stripe_switched_resumes_without_a_second_charge(db, monkeypatch) -> None:
    fake = fake_stripe_for(CATALOG)
    subs = await _subscribers(db, fake, {"starter": 3})
    clock = FakeClock()
    async with StripeClient(API_KEY, api_base=FAKE_URL, transport=fake.transport(), clock=clock) as stripe:
        migrator = Migrator(db, stripe, CATALOG, PlanMap({"starter": "pro"}), actor="cli:ops", clock=clock)
        original = Migrator._finish

        async def die(self: Migrator, sub, reverse):  # type: ignore[no-untyped-def]
            raise ProcessDied  # after Stripe switched, before the database

        monkeypatch.setattr(Migrator, "_finish", die)
        with pytest.raises(ExceptionGroup) as died:
            await migrator.run(batch=10)
        assert died.group_contains(ProcessDied)
        monkeypatch.setattr(Migrator, "_finish", original)
        switched = [s for s in subs if fake.prorations_of(s)]
        assert switched  # Stripe did switch at least one before the "crash"
        async with db.read() as s:
            assert set((await s.scalars(select(PlanMigrationItem.state))).all()) <= {
                MigrationItemState.switching,
                MigrationItemState.planned,
            }
        shown = {m.subscription_id: m for m in await migrator.dry_run()}
        assert set(shown) == set(subs) and {m.to_plan for m in shown.values()} == {"pro"}
        assert {m.state for m in shown.values()} <= {"switching", "planned"}
        report = await migrator.run(batch=10)
        assert report.done == 3 and report.already == len(switched)
    for sub_id in subs:
        assert len(fake.prorations_of(sub_id)) == 1
    assert all(len(set(k)) == 1 for k in _switches(fake).values())
    tenants = await _tenants(db)
    assert {t.plan for t in tenants.values()} == {"pro"}


async def test_the_dry_run_shows_moves_and_money_and_changes_nothing(db) -> None:
    fake = fake_stripe_for(CATALOG)
    await _subscribers(db, fake, {"lite": 2, "starter": 1, "business": 1})
    async with db.transaction() as s:  # a tenant without a subscription is not on Stripe: not listed
        s.add(Tenant(external_id="manual", plan="lite", region="iad"))
    clock = FakeClock()
    async with StripeClient(API_KEY, api_base=FAKE_URL, transport=fake.transport(), clock=clock) as stripe:
        migrator = Migrator(db, stripe, CATALOG, PlanMap(SEED_MAP), actor="cli:ops", clock=clock)
        moves = await migrator.dry_run()
    assert [(m.from_plan, m.to_plan, m.now_cents, m.next_cents) for m in moves] == [
        ("business", "power", 6000, 4000),
        ("lite", "starter", 1000, 2000),
        ("lite", "starter", 1000, 2000),
        ("starter", "pro", 2000, 3000),
    ]
    assert all(m.key_grace and m.state == "not planned" for m in moves)
    # A switch right after the period started prorates (almost) the whole difference.
    assert [m.prorated_now_cents for m in moves] == [-2000, 1000, 1000, 1000]
    assert not any(r.method == "POST" for r in fake.requests)
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(PlanMigrationItem)) == 0
        assert {t.plan for t in await s.scalars(select(Tenant))} == {"lite", "starter", "business"}


async def test_a_second_run_of_the_same_migration_is_refused_while_the_first_holds_it(db) -> None:
    fake = fake_stripe_for(CATALOG)
    await _subscribers(db, fake, {"starter": 1})
    clock = FakeClock()
    async with StripeClient(API_KEY, api_base=FAKE_URL, transport=fake.transport(), clock=clock) as stripe:
        first = Migrator(db, stripe, CATALOG, PlanMap({"starter": "pro"}), actor="cli:a", clock=clock)
        second = Migrator(db, stripe, CATALOG, PlanMap({"starter": "pro"}), actor="cli:b", clock=clock)
        await first._lock()
        with pytest.raises(Refused) as refused:
            await second.run()
        assert refused.value.exit_code == 3 and first.id in str(refused.value)
        clock.now_monotonic += 11 * 60  # the first run's lease expired (it died)
        assert (await second.run()).done == 1


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("map.toml", 'free = "gold"', "new plan 'gold' is not in catalog"),
        ("map.toml", 'free = "free"', "maps to itself"),
        ("map.toml", "free = 3", "must be a plan id string"),
        ("map.toml", "[map]\n", "expected a table"),
        ("map.json", "[1, 2]", "expected a table"),
        ("map.json", "{not json", "map.json: invalid JSON at line 1"),
        ("map.json", "[" * 1000, "map.json: nested deeper than"),
        ("map.toml", "free = " + "9" * 5000, "map.toml: holds a number longer than"),
        ("map.toml", '"Free Plan" = "starter"', "not plan ids"),
    ],
)
def test_bad_maps_name_the_option_and_the_reason(tmp_path: Path, name: str, text: str, message: str) -> None:
    path = tmp_path / name
    path.write_text(text)
    with pytest.raises(BadInput) as bad:
        load_plan_map(path, CATALOG)
    assert bad.value.field == "--map" and message in str(bad.value) and bad.value.exit_code == 2


def test_a_good_map_in_either_format_gives_the_same_migration_id(tmp_path: Path) -> None:
    (tmp_path / "a.toml").write_text('[map]\nfree = "starter"\nlite = "starter"\nstarter = "pro"\n')
    (tmp_path / "b.json").write_text('{"starter": "pro", "lite": "starter", "free": "starter"}')
    a, b = load_plan_map(tmp_path / "a.toml", CATALOG), load_plan_map(tmp_path / "b.json", CATALOG)
    assert a.moves == b.moves and a.migration_id == b.migration_id and a.migration_id.startswith("mig_")
