"""The webhook as the dashboard API app serves it (``controlplane serve``): mounted without a service
token (Stripe signs its deliveries), refused without a configured secret, not part of the dashboard's
published contract, and answering in the API's one error shape."""

from __future__ import annotations

from sqlalchemy import func, select

from agents_config.catalog import load_catalog
from controlplane.billing.deliveries import checkout_delivery
from controlplane.billing.webhook_route import PATH
from controlplane.db.models import BillingSyncItem, StripeEvent
from tests.support.api import api_harness, api_settings
from tests.support.billing import FAKE_URL, SECRET, fake_stripe_for


async def test_the_api_app_serves_the_webhook_without_a_service_token(db) -> None:
    url = db.engine.url.render_as_string(hide_password=False)
    fake = fake_stripe_for(load_catalog())
    async with api_harness(db, settings=api_settings(url, stripe_webhook_secret=SECRET)) as api:
        delivery = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="api-user",
            price_id="price_pro_monthly",
            transport=fake.transport(),
        )
        accepted = await api.anonymous.post(PATH, content=delivery.body, headers=delivery.headers)
        assert accepted.status_code == 200 and accepted.json()["duplicate"] is False
        again = await api.client.post(
            PATH, content=delivery.body, headers=delivery.headers
        )  # a token changes nothing
        assert again.status_code == 200 and again.json()["duplicate"] is True
        forged = await api.anonymous.post(
            PATH, content=delivery.body, headers={"Stripe-Signature": "t=1,v1=00"}
        )
        assert forged.status_code == 400
        assert forged.json() == {
            "error": {
                "code": "bad_signature",
                "message": "Stripe-Signature: no valid signature for this body within the tolerance",
                "field": "Stripe-Signature",
            }
        }
        spec = (await api.anonymous.get("/openapi.json")).json()
        assert PATH not in spec["paths"]  # Stripe calls it, not the dashboard
        async with db.transaction() as s:
            assert await s.scalar(select(func.count()).select_from(StripeEvent)) == 1
            assert await s.scalar(select(func.count()).select_from(BillingSyncItem)) == 1
        await api.assert_nothing_leaked()


async def test_without_a_webhook_secret_deliveries_are_refused_for_stripe_to_retry(db) -> None:
    fake = fake_stripe_for(load_catalog())
    async with api_harness(db) as api:
        delivery = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="x",
            price_id="price_pro_monthly",
            transport=fake.transport(),
        )
        response = await api.anonymous.post(PATH, content=delivery.body, headers=delivery.headers)
        assert response.status_code == 503
        assert response.json()["error"]["code"] == "not_configured"
        assert "CP_STRIPE_WEBHOOK_SECRET" in response.json()["error"]["message"]
        async with db.transaction() as s:
            assert await s.scalar(select(func.count()).select_from(StripeEvent)) == 0
