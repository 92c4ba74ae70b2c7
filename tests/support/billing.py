"""Billing test world: the local fake of Stripe's API, the StripeClient on it (in-process), the
webhook router on a bare FastAPI app, and the sync job's dependencies, all on one FakeClock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import httpx
from fastapi import FastAPI
from sqlalchemy import func, select

from agents_config.catalog import PlanCatalog, load_catalog
from controlplane.billing.deliveries import WebhookDelivery
from controlplane.billing.entitlement import BillingPolicy
from controlplane.billing.fake_stripe import FakeStripe
from controlplane.billing.stripe_client import StripeClient
from controlplane.billing.sync import SyncDeps, SyncReport, run_billing_sync_once
from controlplane.billing.sync_queue import BillingSyncQueue
from controlplane.billing.webhook import WebhookIngestor
from controlplane.billing.webhook_route import PATH, webhook_router
from controlplane.db.models import BillingSyncItem, ProviderKey, Secret, Tenant
from controlplane.db.session import Database
from controlplane.db.tenants import load_desired
from controlplane.enums import KeyStatus, KeyVerdict
from controlplane.retry import Backoff
from controlplane.testing import FakeClock
from workers.decide import Decision, decide

SECRET = "whsec_" + "test0secret0for0billing0tests00"
OLD_SECRET = "whsec_" + "previous0secret0being0rotated0"
API_KEY = "sk_test_" + "billing0tests0key"
FAKE_URL = "https://fake-stripe.invalid"

#: Legacy plans of the seeds (not in any catalog): what their subscriptions pay today.
LEGACY_PRICES = {
    "free": ("price_free_monthly", 0),
    "lite": ("price_lite_monthly", 1000),
    "business": ("price_business_monthly", 6000),
    "basic": ("price_basic_monthly", 500),
    "plus": ("price_plus_monthly", 2900),
}


def fake_stripe_for(*catalogs: PlanCatalog, seed: int = 0) -> FakeStripe:
    fake = FakeStripe(seed=seed)
    for catalog in catalogs:
        for plan in catalog.plans.values():
            fake.add_price(plan.stripe_price_id, plan.monthly_price_cents)
    for price_id, amount in LEGACY_PRICES.values():
        fake.add_price(price_id, amount)
    return fake


@dataclass
class BillingWorld:
    db: Database
    fake: FakeStripe
    stripe: StripeClient
    clock: FakeClock
    catalog: PlanCatalog
    api: httpx.AsyncClient
    deps: SyncDeps

    async def post(self, delivery: WebhookDelivery) -> httpx.Response:
        return await self.api.post(PATH, content=delivery.body, headers=delivery.headers)

    async def sync(self, *, rounds: int = 10, owner: str = "test-worker") -> SyncReport:
        """Run the sync job until nothing is due (at most ``rounds`` passes); summed report."""
        total = SyncReport()
        for _ in range(rounds):
            report = await run_billing_sync_once(self.deps, owner=owner)
            for name in total.__dataclass_fields__:
                setattr(total, name, getattr(total, name) + getattr(report, name))
            if report.claimed == 0:
                break
        return total

    async def mark(self, subscription_id: str) -> None:
        """Queue a read of ``subscription_id`` as a webhook would."""
        async with self.db.transaction() as s:
            await self.deps.queue.mark(s, subscription_id, now=self.clock.now(), reason="test")

    async def tenant(self, external_id: str) -> Tenant | None:
        async with self.db.transaction() as s:  # objects stay loaded after a commit (not after read())
            tenant: Tenant | None = await s.scalar(select(Tenant).where(Tenant.external_id == external_id))
            return tenant

    async def queued(self) -> int:
        async with self.db.read() as s:
            return int(await s.scalar(select(func.count()).select_from(BillingSyncItem)) or 0)

    def transport(self) -> httpx.AsyncBaseTransport:
        return self.fake.transport()

    async def decision(self, external_id: str, *, platform: tuple[str, ...] = ()) -> Decision:
        """What the reconciler would do with the tenant now (``workers/decide.py``)."""
        tenant = await self.tenant(external_id)
        assert tenant is not None
        return await decision_for(self.db, self.catalog, tenant.id, self.clock.now(), platform=platform)

    async def give_key(self, external_id: str) -> None:
        tenant = await self.tenant(external_id)
        assert tenant is not None
        await add_usable_key(self.db, tenant.id)


async def decision_for(
    db: Database, catalog: PlanCatalog, tenant_id: str, now: datetime, *, platform: tuple[str, ...] = ()
) -> Decision:
    desired = await load_desired(db, tenant_id)
    assert desired is not None
    return decide(desired, catalog.plan(desired.plan), platform_providers=platform, now=now)


async def add_usable_key(db: Database, tenant_id: str, provider: str = "anthropic") -> None:
    """A stored, usable key row (the ciphertext is never read by billing or the decision)."""
    async with db.transaction() as s:
        secret = Secret(tenant_id=tenant_id, name=f"provider:{provider}", key_id="k2", value="v1:k2:AAAA")
        s.add(secret)
        await s.flush()
        s.add(
            ProviderKey(
                tenant_id=tenant_id,
                provider=provider,
                secret_id=secret.id,
                last4="abcd",
                fingerprint="f" * 64,
                verdict=KeyVerdict.ok,
                status=KeyStatus.usable,
            )
        )


@asynccontextmanager
async def billing_world(
    db: Database, *, catalog: PlanCatalog | None = None, secrets: tuple[str, ...] = (SECRET,), **deps: Any
) -> AsyncIterator[BillingWorld]:
    catalog = catalog or load_catalog()
    fake = fake_stripe_for(catalog)
    clock = FakeClock()
    app = FastAPI()
    queue = BillingSyncQueue(backoff=Backoff(initial=5.0, factor=2.0, cap=900.0, jitter=False))
    app.include_router(webhook_router(WebhookIngestor(db, list(secrets), queue=queue, clock=clock)))
    async with (
        StripeClient(API_KEY, api_base=FAKE_URL, transport=fake.transport(), clock=clock) as stripe,
        httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api.test") as api,
    ):
        sync_deps = SyncDeps(
            db=db,
            stripe=stripe,
            catalog=catalog,
            clock=clock,
            queue=queue,
            policy=deps.pop("policy", BillingPolicy()),
        )
        yield BillingWorld(db, fake, stripe, clock, catalog, api, sync_deps)


__all__ = [
    "API_KEY",
    "FAKE_URL",
    "LEGACY_PRICES",
    "add_usable_key",
    "decision_for",
    "OLD_SECRET",
    "SECRET",
    "BillingWorld",
    "billing_world",
    "fake_stripe_for",
]
