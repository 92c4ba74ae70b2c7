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
from controlplane.db.models import AuditLog, Banner
from controlplane.enums import BannerKind, BillingStatus, DesiredPower
from tests.support.billing import FAKE_URL, SECRET, BillingWorld, billing_world

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

        # Day 1: nothing new. A second failure notice does not extend the grace.
        world.clock.now_monotonic += DAY
        await world.post(
            await payment_failed_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        await world.sync()
        assert (await run_billing_grace_once(world.db, world.clock.now())).stopped == 0
        tenant = await world.tenant("grace-user")
        assert tenant is not None and tenant.billing_grace_until == started + timedelta(days=3)

        # Day 2 (the last day): the grace_period_ending banner goes up; still running.
        world.clock.now_monotonic += DAY
        assert (await run_billing_grace_once(world.db, world.clock.now())).stopped == 0
        tenant = await world.tenant("grace-user")
        assert tenant is not None and tenant.desired_power is DesiredPower.running
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: True,
            BannerKind.grace_period_ending: True,
        }

        # Day 3: the grace is over -> stopped, once (a second pass changes nothing).
        world.clock.now_monotonic += DAY
        assert (await run_billing_grace_once(world.db, world.clock.now())).stopped == 1
        assert (await run_billing_grace_once(world.db, world.clock.now())).stopped == 0
        tenant = await world.tenant("grace-user")
        assert tenant is not None and tenant.desired_power is DesiredPower.stopped
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: True,
            BannerKind.grace_period_ending: False,
        }
        async with world.db.read() as s:
            expired = await s.scalar(select(AuditLog).where(AuditLog.action == "billing.grace_expired"))
            assert expired is not None and expired.actor == "system"
            assert (
                expired.before == {"desired_power": "running"} and expired.after["desired_power"] == "stopped"
            )

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
        assert await _banners(world, tenant.id) == {
            BannerKind.payment_failed: False,
            BannerKind.grace_period_ending: False,
        }
        async with world.db.read() as s:
            raised = (await s.scalars(select(AuditLog.action).where(AuditLog.action.like("banner.%")))).all()
        assert sorted(raised) == ["banner.cleared", "banner.cleared", "banner.raised", "banner.raised"]


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
    ("status", "power", "grace", "destroy"),
    [
        ("active", DesiredPower.running, False, False),
        ("trialing", DesiredPower.running, False, False),
        ("past_due", DesiredPower.running, True, False),
        ("unpaid", DesiredPower.stopped, False, True),
        ("canceled", DesiredPower.stopped, False, True),
        ("incomplete_expired", DesiredPower.stopped, False, True),
        ("incomplete", DesiredPower.stopped, False, False),
        ("paused", DesiredPower.stopped, False, False),
        ("some_future_status", DesiredPower.stopped, False, False),
    ],
)
def test_status_mapping(status: str, power: DesiredPower, grace: bool, destroy: bool) -> None:
    policy = BillingPolicy()
    current = _View(BillingStatus.active)
    fields = entitlement.billing_fields_for(entitlement.parse_status(status), current, NOW, policy)
    assert (fields.billing_grace_until is not None) == grace
    assert (fields.destroy_after is not None) == destroy
    view = _View(fields.billing_status, fields.billing_grace_until, None, fields.destroy_after)
    assert entitlement.desired_power(view, NOW) is power
    assert entitlement.desired_power(view, NOW + policy.grace) is (
        DesiredPower.stopped if status == "past_due" else power
    )


def test_key_grace_and_gone_win_over_billing() -> None:
    paid = _View(BillingStatus.active, key_grace_until=NOW + timedelta(days=1))
    assert entitlement.desired_power(paid, NOW) is DesiredPower.running
    assert entitlement.desired_power(paid, NOW + timedelta(days=1)) is DesiredPower.stopped
    assert (
        entitlement.desired_power(_View(BillingStatus.active, desired_power=DesiredPower.gone), NOW)
        is DesiredPower.gone
    )
    assert entitlement.desired_power(_View(BillingStatus.none), NOW) is DesiredPower.running
