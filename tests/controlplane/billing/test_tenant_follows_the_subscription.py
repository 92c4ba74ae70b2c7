"""Order-proof billing: the same event delivered five times changes state once; a subscription's
events delivered in reverse order (and days late) end in the state of the subscription; a re-read
failing with 5xx/429 is retried without losing the event; checkout creates (or finds) the tenant."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from agents_config.catalog import load_catalog
from controlplane.billing.deliveries import (
    checkout_delivery,
    make_event,
    payment_failed_delivery,
    payment_recovered_delivery,
    sign_delivery,
)
from controlplane.db.models import AuditLog, BillingSyncItem, ReconcileItem, StripeEvent, Tenant
from controlplane.enums import BillingStatus, DesiredPower, LifecycleState
from tests.support.billing import FAKE_URL, SECRET, BillingWorld, billing_world


async def _checkout(world: BillingWorld, external_id: str, price_id: str = "price_pro_monthly"):  # type: ignore[no-untyped-def]
    return await checkout_delivery(
        FAKE_URL,
        webhook_secret=SECRET,
        external_id=external_id,
        price_id=price_id,
        transport=world.transport(),
    )


async def _audits(world: BillingWorld, action: str) -> int:
    async with world.db.read() as s:
        return int(
            await s.scalar(select(func.count()).select_from(AuditLog).where(AuditLog.action == action)) or 0
        )


async def test_checkout_creates_the_tenant_on_the_subscriptions_plan(db) -> None:
    async with billing_world(db) as world:
        delivery = await _checkout(world, "user-42", "price_power_monthly")
        assert (await world.post(delivery)).status_code == 200
        assert await world.tenant("user-42") is None  # the webhook only queued a read
        report = await world.sync()
        assert (report.synced, report.changed) == (1, 1)
        tenant = await world.tenant("user-42")
        assert tenant is not None
        assert tenant.plan == "power" and tenant.billing_status is BillingStatus.active
        assert tenant.stripe_subscription_id == delivery.subscription_id
        assert tenant.stripe_customer_id == delivery.customer_id
        # BYOK plan, no key yet: pending (the reconciler provisions once a usable key exists).
        assert (
            tenant.lifecycle_state is LifecycleState.pending and tenant.desired_power is DesiredPower.running
        )
        async with world.db.read() as s:
            assert await s.get(ReconcileItem, tenant.id) is not None
            created = await s.scalar(select(AuditLog).where(AuditLog.action == "billing.tenant_created"))
            assert created is not None and created.actor == "webhook" and created.tenant_id == tenant.id
        assert await world.queued() == 0


async def test_checkout_on_a_platform_plan_asks_for_provisioning_at_once(db) -> None:
    catalog = load_catalog(Path(__file__).parents[3] / "agents_config/catalogs/platform-tiers.toml")
    async with billing_world(db, catalog=catalog) as world:
        await world.post(await _checkout(world, "kimi-user", "price_platform_starter_monthly"))
        await world.sync()
        tenant = await world.tenant("kimi-user")
        assert (
            tenant is not None and tenant.plan == "starter" and tenant.desired_power is DesiredPower.running
        )
        async with world.db.read() as s:
            assert await s.get(ReconcileItem, tenant.id) is not None


async def test_checkout_finds_an_existing_tenant_by_reference(db, tenant_factory) -> None:
    existing = await tenant_factory(external_id="known-user", plan="starter")
    async with billing_world(db) as world:
        delivery = await _checkout(world, "known-user", "price_pro_monthly")
        await world.post(delivery)
        await world.sync()
        tenant = await world.tenant("known-user")
        assert tenant is not None and tenant.id == existing.id
        assert tenant.plan == "pro" and tenant.stripe_subscription_id == delivery.subscription_id
        async with world.db.read() as s:
            assert await s.scalar(select(func.count()).select_from(Tenant)) == 1


async def test_the_same_event_five_times_changes_state_once(db) -> None:
    async with billing_world(db) as world:
        checkout = await _checkout(world, "dup-user")
        await world.post(checkout)
        await world.sync()
        failed = await payment_failed_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            subscription_id=checkout.subscription_id,
            transport=world.transport(),
        )
        answers = [await world.post(failed) for _ in range(3)]
        answers += await asyncio.gather(world.post(failed), world.post(failed))  # two at once
        assert [a.status_code for a in answers] == [200] * 5
        assert sum(not a.json()["duplicate"] for a in answers) == 1
        report = await world.sync()
        assert report.synced == 1
        tenant = await world.tenant("dup-user")
        assert tenant is not None and tenant.billing_status is BillingStatus.past_due
        assert tenant.desired_rev == 3  # created (2), past_due (3): once
        assert await _audits(world, "billing.subscription_synced") == 1
        assert await _audits(world, "billing.event_received") == 2  # checkout + the failure, once each
        async with world.db.read() as s:
            assert await s.scalar(select(func.count()).select_from(StripeEvent)) == 2


async def test_events_in_reverse_order_end_in_the_subscriptions_state(db) -> None:
    async with billing_world(db) as world:
        # A whole history: checkout, a failed payment, the recovery, a second failure, the cancellation.
        checkout = await _checkout(world, "late-user")
        sub_id = checkout.subscription_id
        assert sub_id is not None
        history = [checkout]
        history.append(
            await payment_failed_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        history.append(
            await payment_recovered_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        history.append(
            await payment_failed_delivery(
                FAKE_URL, webhook_secret=SECRET, subscription_id=sub_id, transport=world.transport()
            )
        )
        history.append(
            sign_delivery(
                make_event("customer.subscription.updated", world.fake.subscriptions[sub_id]), SECRET
            )
        )
        # Stripe has them all; they arrive newest first, the checkout last.
        for delivery in reversed(history):
            assert (await world.post(delivery)).status_code == 200
        await world.sync()
        tenant = await world.tenant("late-user")
        assert tenant is not None and tenant.billing_status is BillingStatus.past_due  # as Stripe says now
        assert tenant.desired_power is DesiredPower.running  # in its billing grace

        # Then it is canceled; the cancellation arrives first, and days-late old events after it.
        sub, _ = world.fake.set_status(sub_id, "canceled")
        await world.post(sign_delivery(make_event("customer.subscription.deleted", sub), SECRET))
        await world.sync()
        world.clock.now_monotonic += 2 * 86400
        late = [make_event("invoice.paid", {"id": "in_late", "object": "invoice", "subscription": sub_id})]
        late.append(
            make_event("customer.subscription.updated", {**sub, "status": "active"})
        )  # a stale snapshot
        for event in late:
            await world.post(sign_delivery(event, SECRET))
        for delivery in history:  # and Stripe's redeliveries of everything
            await world.post(delivery)
        await world.sync()
        tenant = await world.tenant("late-user")
        assert tenant is not None
        assert (
            tenant.billing_status is BillingStatus.canceled and tenant.desired_power is DesiredPower.stopped
        )
        # The retention deadline was set at the cancellation and is not pushed back by later reads.
        assert tenant.destroy_after == world.clock.now() - timedelta(days=2) + timedelta(days=7)


async def test_an_ended_subscription_never_links_to_an_existing_tenant(db, tenant_factory) -> None:
    existing = await tenant_factory(external_id="api-made", plan="pro")
    async with billing_world(db) as world:
        checkout = await _checkout(world, "api-made")
        assert checkout.subscription_id is not None
        world.fake.set_status(checkout.subscription_id, "canceled")
        await world.post(checkout)
        report = await world.sync()
        assert report.dropped == 1
        tenant = await world.tenant("api-made")
        assert tenant is not None and tenant.id == existing.id
        assert tenant.stripe_subscription_id is None and tenant.destroy_after is None
        assert tenant.desired_power is DesiredPower.running and tenant.desired_rev == 1


async def test_an_ended_subscription_of_an_unknown_tenant_creates_nobody(db) -> None:
    async with billing_world(db) as world:
        checkout = await _checkout(world, "gone-user")
        assert checkout.subscription_id is not None
        world.fake.set_status(checkout.subscription_id, "canceled")
        await world.post(checkout)  # the checkout arrives only after the cancellation
        report = await world.sync()
        assert report.dropped == 1 and await world.tenant("gone-user") is None


async def test_a_failing_reread_is_retried_with_backoff_and_the_event_is_not_lost(db) -> None:
    async with billing_world(db) as world:
        checkout = await _checkout(world, "retry-user")
        await world.post(checkout)
        # Every attempt of the first pass fails (500, 429, 503, 500): the client gives up, the queue keeps it.
        for kind in ("500", "429", "503", "500"):
            world.fake.inject(kind, path_prefix="/v1/subscriptions/")
        report = await world.sync(rounds=1)
        assert (report.claimed, report.retried, report.synced) == (1, 1, 0)
        async with world.db.read() as s:
            row = await s.scalar(select(BillingSyncItem))
            assert row is not None and row.attempts == 1 and "after 4 attempts" in (row.last_error or "")
            assert row.lease_owner is None and row.run_after == world.clock.now() + timedelta(seconds=5)
            assert row.tenant_ref == "retry-user"
        assert (await world.sync(rounds=1)).claimed == 0  # not due yet: backing off
        world.clock.now_monotonic += 5
        world.fake.inject("502", path_prefix="/v1/subscriptions/")  # one more failure, retried in-process
        report = await world.sync()
        assert report.synced == 1 and await world.queued() == 0
        tenant = await world.tenant("retry-user")
        assert tenant is not None and tenant.billing_status is BillingStatus.active
        statuses = [r.status for r in world.fake.requests if r.path.startswith("/v1/subscriptions/")]
        assert statuses == [500, 429, 503, 500, 502, 200]


async def test_a_mark_while_the_subscription_is_being_read_requeues_it(db) -> None:
    async with billing_world(db) as world:
        checkout = await _checkout(world, "busy-user")
        await world.post(checkout)
        async with world.db.transaction() as s:
            claims = await world.deps.queue.claim(s, owner="w1", now=world.clock.now())
        assert [c.subscription_id for c in claims] == [checkout.subscription_id]
        failed = await payment_failed_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            subscription_id=checkout.subscription_id,
            transport=world.transport(),
        )
        await world.post(failed)  # arrives while w1 holds the lease
        async with world.db.transaction() as s:
            assert await world.deps.queue.claim(s, owner="w2", now=world.clock.now()) == []
            assert await world.deps.queue.finish(
                s, checkout.subscription_id, owner="w1", now=world.clock.now()
            )
        assert await world.queued() == 1  # requeued, due now, not deleted
        await world.sync()
        tenant = await world.tenant("busy-user")
        assert tenant is not None and tenant.billing_status is BillingStatus.past_due


async def test_a_resubscription_relinks_and_the_old_subscription_no_longer_counts(db) -> None:
    async with billing_world(db) as world:
        first = await _checkout(world, "again-user")
        await world.post(first)
        await world.sync()
        assert first.subscription_id is not None
        old_sub, _ = world.fake.set_status(first.subscription_id, "canceled")
        await world.post(sign_delivery(make_event("customer.subscription.deleted", old_sub), SECRET))
        await world.sync()
        tenant = await world.tenant("again-user")
        assert (
            tenant is not None
            and tenant.desired_power is DesiredPower.stopped
            and tenant.destroy_after is not None
        )

        second = await _checkout(world, "again-user", "price_starter_monthly")
        await world.post(second)
        await world.sync()
        tenant = await world.tenant("again-user")
        assert tenant is not None and tenant.stripe_subscription_id == second.subscription_id
        assert tenant.plan == "starter" and tenant.billing_status is BillingStatus.active
        assert tenant.desired_power is DesiredPower.running and tenant.destroy_after is None
        # A late event of the old subscription does not stop the tenant again.
        await world.post(sign_delivery(make_event("customer.subscription.updated", old_sub), SECRET))
        report = await world.sync()
        assert report.dropped == 1
        tenant = await world.tenant("again-user")
        assert tenant is not None and tenant.desired_power is DesiredPower.running
