"""Signed Stripe webhook deliveries, as Stripe would POST them: for the demo, tests and benchmarks.

:func:`sign_delivery` signs an event with Stripe's scheme (stripe-python's own
``WebhookSignature.generate_signature_header``). The three flows the demo walks through take the
URL of the local fake of Stripe's API (:mod:`controlplane.billing.fake_stripe`), change the world
there through Stripe's API (customers, subscriptions) or the fake's controls (a failed payment, a
recovery), and return the delivery Stripe would send for it, ready to POST to the webhook route:

* :func:`checkout_delivery`: customer + subscription created, ``checkout.session.completed``;
* :func:`payment_failed_delivery`: the subscription goes ``past_due``, ``invoice.payment_failed``;
* :func:`payment_recovered_delivery`: the invoice is paid, ``active`` again, ``invoice.paid``;
* :func:`cancellation_delivery`: the subscription ends, ``customer.subscription.deleted``.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
import stripe

from controlplane.billing.fake_stripe import objects
from controlplane.billing.fake_stripe.fake import API_VERSION
from controlplane.billing.stripe_client import StripeClient
from controlplane.billing.sync import EXTERNAL_ID_KEY

DEMO_API_KEY = "sk_test_demo_controlplane"


@dataclass(frozen=True, slots=True)
class WebhookDelivery:
    """One delivery: POST ``body`` with ``headers`` to the webhook route."""

    body: bytes
    headers: dict[str, str]
    event_id: str
    event_type: str
    subscription_id: str | None = None
    customer_id: str | None = None


def sign_delivery(
    event: Mapping[str, Any], secret: str, *, timestamp: int | None = None, **ids: str | None
) -> WebhookDelivery:
    """Serialise ``event`` and sign it with ``secret`` at ``timestamp`` (default: now)."""
    body = json.dumps(event, separators=(",", ":")).encode()
    header = stripe.WebhookSignature.generate_signature_header(
        body.decode(), secret, timestamp=int(time.time()) if timestamp is None else timestamp
    )
    return WebhookDelivery(
        body=body,
        headers={"Content-Type": "application/json", "Stripe-Signature": header},
        event_id=str(event["id"]),
        event_type=str(event["type"]),
        subscription_id=ids.get("subscription_id"),
        customer_id=ids.get("customer_id"),
    )


def make_event(event_type: str, obj: Mapping[str, Any], *, now: int | None = None) -> dict[str, Any]:
    """A Stripe snapshot event carrying ``obj`` (the published event fixture, filled in)."""
    return objects.event(
        event_type, dict(obj), now=int(time.time()) if now is None else now, api_version=API_VERSION
    )


async def checkout_delivery(
    fake_url: str,
    *,
    webhook_secret: str,
    external_id: str,
    price_id: str,
    email: str | None = None,
    api_key: str = DEMO_API_KEY,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebhookDelivery:
    """A customer checks out ``price_id``: the customer and subscription exist in the fake, and the
    returned delivery is the ``checkout.session.completed`` event naming ``external_id``."""
    run = uuid.uuid4().hex
    async with StripeClient(api_key, api_base=fake_url, transport=transport) as client:
        customer = await client.create_customer(
            email=email, metadata={EXTERNAL_ID_KEY: external_id}, idempotency_key=f"demo-cus-{run}"
        )
        sub = await client.create_subscription(
            customer_id=customer.id,
            price_id=price_id,
            metadata={EXTERNAL_ID_KEY: external_id},
            idempotency_key=f"demo-sub-{run}",
        )
    amount = sub.item.price.unit_amount if sub.item and sub.item.price.unit_amount is not None else 0
    session = objects.checkout_session(
        now=int(time.time()),
        customer_id=customer.id,
        subscription_id=sub.id,
        client_reference_id=external_id,
        email=email,
        amount_total=amount,
    )
    return sign_delivery(
        make_event("checkout.session.completed", session),
        webhook_secret,
        subscription_id=sub.id,
        customer_id=customer.id,
    )


async def _set_status(
    fake_url: str, subscription_id: str, status: str, transport: httpx.AsyncBaseTransport | None
) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=fake_url, transport=transport) as http:
        response = await http.post(f"/_fake/subscriptions/{subscription_id}/status", json={"status": status})
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result


async def payment_failed_delivery(
    fake_url: str,
    *,
    webhook_secret: str,
    subscription_id: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebhookDelivery:
    """The renewal payment fails: the subscription is ``past_due``; ``invoice.payment_failed``."""
    state = await _set_status(fake_url, subscription_id, "past_due", transport)
    return sign_delivery(
        make_event("invoice.payment_failed", state["invoice"]),
        webhook_secret,
        subscription_id=subscription_id,
        customer_id=state["subscription"]["customer"],
    )


async def payment_recovered_delivery(
    fake_url: str,
    *,
    webhook_secret: str,
    subscription_id: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebhookDelivery:
    """The customer pays: the open invoice is paid and the subscription ``active``; ``invoice.paid``."""
    state = await _set_status(fake_url, subscription_id, "active", transport)
    invoice = state["invoice"] or {
        "id": objects.new_id("in"),
        "object": "invoice",
        "subscription": subscription_id,
    }
    return sign_delivery(
        make_event("invoice.paid", invoice),
        webhook_secret,
        subscription_id=subscription_id,
        customer_id=state["subscription"]["customer"],
    )


async def cancellation_delivery(
    fake_url: str,
    *,
    webhook_secret: str,
    subscription_id: str,
    transport: httpx.AsyncBaseTransport | None = None,
) -> WebhookDelivery:
    """The customer cancels: the subscription ends; ``customer.subscription.deleted``."""
    state = await _set_status(fake_url, subscription_id, "canceled", transport)
    return sign_delivery(
        make_event("customer.subscription.deleted", state["subscription"]),
        webhook_secret,
        subscription_id=subscription_id,
        customer_id=state["subscription"]["customer"],
    )


__all__ = [
    "DEMO_API_KEY",
    "cancellation_delivery",
    "WebhookDelivery",
    "checkout_delivery",
    "make_event",
    "payment_failed_delivery",
    "payment_recovered_delivery",
    "sign_delivery",
]
