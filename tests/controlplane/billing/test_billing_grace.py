"""A past_due subscription: payment_failed banner and a 3-day billing grace, grace_period_ending on
its last day, stopped when it ends, running again when paid (banners cleared); cancellation stops
the agent and sets the destroy deadline; the rules themselves (entitlement) for every status."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from controlplane.billing import entitlement
from controlplane.billing.deliveries import (
    checkout_delivery,
    payment_failed_delivery,
    payment_recovered_delivery,
)
from controlplane.billing.entitlement import BillingPolicy
from controlplane.billing.grace import run_billing_grace_once
from controlplane.db.models import AuditLog, Banner, BillingNotice, ReconcileItem, Tenant
from controlplane.desired import set_power
from controlplane.enums import BannerKind, BillingStatus, DesiredPower
from tests.support.billing import FAKE_URL, SECRET, BillingWorld, billing_world
from workers.decide import Target

DAY = 86400


async def _banners(world: BillingWorld, tenant_id: str) -> dict[BannerKind, bool]:
    async with world.db.read() as s:
        return {
            b.kind: b.active for b in await s.scalars(select(Banner).where(Banner.tenant_id == tenant_id))
        }


async def test_past_due_runs_in_grace_then_stops_then_comes_back_when_paid(db) -> None:
    async with billing_world(db) as world:
        checkout = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="grace-user",
            price_id="price_pro_monthly",
            transport=world.transport(),
        )
        sub_id = checkout.subscription_id
        assert sub_id is not None
        await world.post(checkout)
        await world.sync()
        await world.give_key("grace-user")
        assert (await world.decision("grace-user")).target is Target.running
        started = world.clock.now()

        await world.post(
            await payment_failed_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        await world.sync()
        tenant = await world.tenant("grace-user")
        assert tenant is not None
        assert (
            tenant.billing_status is BillingStatus.past_due and tenant.desired_power is DesiredPower.running
        )
        assert tenant.billing_grace_until == started + timedelta(days=3)
        assert await _banners(world, tenant.id) == {BannerKind.payment_failed: True}
        decision = await world.decision("grace-user")
        assert decision.target is Target.running and decision.look_again_at == started + timedelta(days=3)

        # Day 1: nothing new. A second failure notice does not extend the grace.
        world.clock.now_monotonic += DAY
        await world.post(
            await payment_failed_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        await world.sync()
        assert (await run_billing_grace_once(world.db, world.clock.now())).ending == 0
        tenant = await world.tenant("grace-user")
        assert tenant is not None and tenant.billing_grace_until == started + timedelta(days=3)

        # Day 2 (the last day): the grace_period_ending banner goes up, once; still running.
        world.clock.now_monotonic += DAY
        assert (await run_billing_grace_once(world.db, world.clock.now())).ending == 1
        assert (await run_billing_grace_once(world.db, world.clock.now())).ending == 0
        assert (await world.decision("grace-user")).target is Target.running
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: True,
            BannerKind.grace_period_ending: True,
        }

        # Day 3: the grace is over -> the reconciler stops the agent; recorded once, marked at once.
        world.clock.now_monotonic += DAY
        assert (await run_billing_grace_once(world.db, world.clock.now())).expired == 1
        assert (await run_billing_grace_once(world.db, world.clock.now())).expired == 0
        decision = await world.decision("grace-user")
        assert decision.target in (Target.stopped, Target.absent)
        assert decision.reason == "billing: payment failed and the grace period is over"
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: True,
            BannerKind.grace_period_ending: False,
        }
        async with world.db.read() as s:
            expired = await s.scalar(select(AuditLog).where(AuditLog.action == "billing.grace_expired"))
            assert expired is not None and expired.actor == "system" and expired.tenant_id == tenant.id
            mark = await s.get(ReconcileItem, tenant.id)
            assert mark is not None and mark.reason == "billing grace over" and mark.priority == 1
            notices = (await s.scalars(select(BillingNotice.kind).order_by(BillingNotice.created_at))).all()
            assert notices == ["billing_grace.ending", "billing_grace.expired"]

        # Paid again -> running, grace cleared, banners cleared.
        world.clock.now_monotonic += DAY
        await world.post(
            await payment_recovered_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        await world.sync()
        tenant = await world.tenant("grace-user")
        assert tenant is not None
        assert tenant.billing_status is BillingStatus.active and tenant.desired_power is DesiredPower.running
        assert tenant.billing_grace_until is None and tenant.destroy_after is None
        assert (await world.decision("grace-user")).target is Target.running
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: False,
            BannerKind.grace_period_ending: False,
        }
        async with world.db.read() as s:
            raised = (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("banner.%")))).all()
        assert sorted(raised) == ["banner.cleared", "banner.cleared", "banner.raised", "banner.raised"]


async def test_cancellation_stops_and_sets_the_destroy_deadline_an_operator_stop_survives_payment(db) -> None:
    async with billing_world(db) as world:
        checkout = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="ops-user",
            price_id="price_pro_monthly",
            transport=world.transport(),
        )
        sub_id = checkout.subscription_id
        assert sub_id is not None
        await world.post(checkout)
        await world.sync()
        # An operator stops the agent; later renewals (still active) never start it again.
        async with world.db.transaction() as s:
            tenant = await s.scalar(select(Tenant).where(Tenant.external_id == "ops-user"))
            assert tenant is not None
            await set_power(s, tenant, DesiredPower.stopped, actor="cli:ops", reason="abuse report")
        await world.mark(sub_id)
        await world.sync()
        tenant = await world.tenant("ops-user")
        assert tenant is not None and tenant.desired_power is DesiredPower.stopped

        world.fake.set_status(sub_id, "canceled")
        await world.mark(sub_id)
        await world.sync()
        tenant = await world.tenant("ops-user")
        assert tenant is not None and tenant.billing_status is BillingStatus.canceled
        assert tenant.desired_power is DesiredPower.stopped
        assert tenant.destroy_after == world.clock.now() + timedelta(days=7)
        decision = await world.decision("ops-user")
        assert (
            decision.target in (Target.stopped, Target.absent)
            and decision.look_again_at == tenant.destroy_after
        )
        world.clock.now_monotonic += 7 * DAY
        assert (await world.decision("ops-user")).target is Target.destroyed


async def test_the_grace_length_is_the_operators_setting(db) -> None:
    async with billing_world(
        db, policy=BillingPolicy(grace=timedelta(days=1), retention=timedelta(days=30))
    ) as world:
        checkout = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="short",
            price_id="price_pro_monthly",
            transport=world.transport(),
        )
        assert checkout.subscription_id is not None
        await world.post(checkout)
        await world.sync()
        world.fake.set_status(checkout.subscription_id, "past_due")
        await world.mark(checkout.subscription_id)
        await world.sync()
        tenant = await world.tenant("short")
        assert tenant is not None and tenant.billing_grace_until == world.clock.now() + timedelta(days=1)
        world.fake.set_status(checkout.subscription_id, "unpaid")
        await world.mark(checkout.subscription_id)
        await world.sync()
        tenant = await world.tenant("short")
        assert tenant is not None and tenant.billing_status is BillingStatus.unpaid
        assert tenant.desired_power is DesiredPower.stopped
        assert tenant.destroy_after == world.clock.now() + timedelta(days=30)


@dataclass
class _View:
    billing_status: BillingStatus
    billing_grace_until: datetime | None = None
    key_grace_until: datetime | None = None
    destroy_after: datetime | None = None
    desired_power: DesiredPower = DesiredPower.running


NOW = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("status", "entitled", "grace", "destroy", "power"),
    [
        ("active", True, False, False, DesiredPower.running),
        ("trialing", True, False, False, DesiredPower.running),
        ("past_due", True, True, False, DesiredPower.running),
        ("unpaid", False, False, True, DesiredPower.stopped),
        ("canceled", False, False, True, DesiredPower.stopped),
        ("incomplete_expired", False, False, True, DesiredPower.stopped),
        ("incomplete", False, False, False, DesiredPower.running),
        ("paused", False, False, False, DesiredPower.running),
        ("some_future_status", False, False, False, DesiredPower.running),
    ],
)
def test_status_mapping_from_active(
    status: str, entitled: bool, grace: bool, destroy: bool, power: DesiredPower
) -> None:
    policy = BillingPolicy()
    current = _View(BillingStatus.active)
    new = entitlement.parse_status(status)
    fields = entitlement.billing_fields_for(new, current, NOW, policy)
    assert (fields.billing_grace_until is not None) == grace
    assert (fields.destroy_after is not None) == destroy
    assert entitlement.power_after(current.billing_status, new, current.desired_power) is power
    view = _View(fields.billing_status, fields.billing_grace_until, None, fields.destroy_after)
    assert entitlement.billing_allows_running(view, NOW) is entitled
    assert entitlement.billing_allows_running(view, NOW + policy.grace) is (entitled and status != "past_due")


def test_paid_again_after_the_end_restarts_but_deadlines_of_others_are_kept() -> None:
    policy = BillingPolicy()
    ended = _View(
        BillingStatus.canceled, destroy_after=NOW + timedelta(days=5), desired_power=DesiredPower.stopped
    )
    fields = entitlement.billing_fields_for(BillingStatus.active, ended, NOW, policy)
    assert fields.destroy_after is None
    assert (
        entitlement.power_after(BillingStatus.canceled, BillingStatus.active, DesiredPower.stopped)
        is DesiredPower.running
    )
    # An operator's deletion (gone) keeps its deadline and stays gone whatever Stripe says.
    deleted = _View(
        BillingStatus.active, destroy_after=NOW + timedelta(days=1), desired_power=DesiredPower.gone
    )
    assert (
        entitlement.billing_fields_for(BillingStatus.active, deleted, NOW, policy).destroy_after
        == deleted.destroy_after
    )
    assert (
        entitlement.billing_fields_for(BillingStatus.canceled, deleted, NOW, policy).destroy_after
        == deleted.destroy_after
    )
    assert (
        entitlement.power_after(BillingStatus.active, BillingStatus.canceled, DesiredPower.gone)
        is DesiredPower.gone
    )
    # A cancellation seen twice keeps the first deadline; a second past_due keeps the first grace.
    again = _View(BillingStatus.canceled, destroy_after=NOW - timedelta(days=1))
    assert (
        entitlement.billing_fields_for(BillingStatus.canceled, again, NOW, policy).destroy_after
        == again.destroy_after
    )
    late = _View(BillingStatus.past_due, billing_grace_until=NOW + timedelta(hours=1))
    assert (
        entitlement.billing_fields_for(BillingStatus.past_due, late, NOW, policy).billing_grace_until
        == late.billing_grace_until
    )
