"""The demo's billing walk, as the demo runs it: the fake Stripe API on a loopback port, the runner
built from settings (CP_STRIPE_API_BASE pointing at the fake), signed deliveries from the demo
helpers posted to the webhook route: a checkout, a failed payment with its banner and grace, and
the recovery."""

from __future__ import annotations

import httpx
from fastapi import FastAPI
from sqlalchemy import select

from agents_config.catalog import load_catalog
from controlplane.billing.deliveries import (
    checkout_delivery,
    payment_failed_delivery,
    payment_recovered_delivery,
)
from controlplane.billing.runner import BillingRunner
from controlplane.billing.webhook import WebhookIngestor
from controlplane.billing.webhook_route import PATH, webhook_router
from controlplane.db.models import Banner, Tenant
from controlplane.enums import BannerKind, BillingStatus
from controlplane.settings import load_settings
from controlplane.testing import FakeClock
from tests.support.billing import API_KEY, OLD_SECRET, SECRET, fake_stripe_for


async def test_checkout_failure_and_recovery_through_the_runner(db) -> None:
    catalog = load_catalog()
    fake = fake_stripe_for(catalog)
    clock = FakeClock()
    async with fake.serve() as url:
        settings = load_settings(
            stripe_secret_key=API_KEY,
            stripe_api_base=url,
            stripe_webhook_secret=f"{SECRET},{OLD_SECRET}",
            billing_grace_days=2,
        )
        app = FastAPI()
        app.include_router(
            webhook_router(WebhookIngestor(db, settings.stripe_webhook_secrets(), clock=clock))
        )
        async with (
            BillingRunner.open(db, settings, catalog, clock=clock, owner="demo-worker") as billing,
            httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://api") as api,
        ):

            async def post(delivery) -> None:  # type: ignore[no-untyped-def]
                response = await api.post(PATH, content=delivery.body, headers=delivery.headers)
                assert response.status_code == 200, response.text

            checkout = await checkout_delivery(
                url,
                webhook_secret=SECRET,
                external_id="demo-1",
                price_id="price_starter_monthly",
                email="d@example.com",
            )
            await post(checkout)
            assert (await billing.sync_once()).changed == 1
            assert checkout.subscription_id is not None

            await post(
                await payment_failed_delivery(
                    url, webhook_secret=SECRET, subscription_id=checkout.subscription_id
                )
            )
            assert (await billing.sync_once()).changed == 1
            for _, _, job in billing.periodic():
                await job(clock.now())
            async with db.transaction() as s:
                tenant = await s.scalar(select(Tenant).where(Tenant.external_id == "demo-1"))
                assert tenant is not None and tenant.plan == "starter"
                assert tenant.billing_status is BillingStatus.past_due
                assert tenant.billing_grace_until is not None
                assert (tenant.billing_grace_until - clock.now()).days == 2
                banner = await s.scalar(select(Banner).where(Banner.tenant_id == tenant.id))
                assert banner is not None and banner.kind is BannerKind.payment_failed and banner.active

            await post(
                await payment_recovered_delivery(
                    url, webhook_secret=OLD_SECRET, subscription_id=checkout.subscription_id
                )
            )
            assert (await billing.sync_once()).changed == 1
            async with db.transaction() as s:
                tenant = await s.scalar(select(Tenant).where(Tenant.external_id == "demo-1"))
                assert tenant is not None and tenant.billing_status is BillingStatus.active
                banner = await s.scalar(select(Banner).where(Banner.tenant_id == tenant.id))
                assert banner is not None and not banner.active
    # Every Stripe call went over the loopback socket to the fake, with the configured key.
    assert {r.path.split("/")[2] for r in fake.requests if r.path.startswith("/v1/")} == {
        "customers",
        "subscriptions",
    }
    assert all(r.status in (200,) for r in fake.requests)
