"""Stripe objects for the fake, built from Stripe's published fixtures.

``fixtures.json`` holds the customer, price, subscription, subscription item, invoice, checkout
session and event objects of stripe-mock's ``fixtures3.json`` verbatim (the shapes Stripe publishes
for API version 2025-03-31 and later: billing periods on the items, an invoice's subscription under
``parent.subscription_details``). Each builder deep-copies one fixture and overwrites only the fields
that carry identity, money, status and time, so everything else a real object has is there too.
"""

from __future__ import annotations

import copy
import json
import secrets
import string
from functools import cache
from importlib import resources
from typing import Any

JSONObject = dict[str, Any]

MONTH_SECONDS = 30 * 24 * 3600
_ID_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    """A Stripe-shaped id: ``<prefix>_<random alphanumerics>``."""
    return f"{prefix}_" + "".join(secrets.choice(_ID_ALPHABET) for _ in range(length))


@cache
def _fixtures() -> dict[str, JSONObject]:
    text = resources.files(__package__).joinpath("fixtures.json").read_text(encoding="utf-8")
    data: dict[str, JSONObject] = json.loads(text)["resources"]
    return data


def fixture(name: str) -> JSONObject:
    """A deep copy of the published fixture object ``name`` (``subscription``, ``event`` ...)."""
    return copy.deepcopy(_fixtures()[name])


def price(
    price_id: str, unit_amount: int, *, currency: str = "usd", product: str | None = None
) -> JSONObject:
    obj = fixture("price")
    obj.update(
        id=price_id,
        unit_amount=unit_amount,
        unit_amount_decimal=str(unit_amount),
        currency=currency,
        product=product or f"prod_{price_id.removeprefix('price_')}"[:40],
        lookup_key=None,
        transform_quantity=None,
    )
    return obj


def customer(*, now: int, email: str | None, metadata: dict[str, str]) -> JSONObject:
    obj = fixture("customer")
    obj.update(
        id=new_id("cus", 14),
        created=now,
        email=email,
        metadata=dict(metadata),
        discount=None,
        invoice_prefix=secrets.token_hex(4).upper(),
    )
    return obj


def subscription_item(subscription_id: str, price_obj: JSONObject, *, now: int) -> JSONObject:
    obj = fixture("subscription_item")
    obj.update(
        id=new_id("si", 14),
        created=now,
        price=copy.deepcopy(price_obj),
        quantity=1,
        subscription=subscription_id,
        current_period_start=now,
        current_period_end=now + MONTH_SECONDS,
        billing_thresholds=None,
    )
    obj["plan"] = _legacy_plan(price_obj)
    return obj


def _legacy_plan(price_obj: JSONObject) -> JSONObject:
    # The item's deprecated ``plan`` mirrors its price (the fixture's plan is a placeholder).
    return {
        "active": True,
        "amount": price_obj["unit_amount"],
        "amount_decimal": str(price_obj["unit_amount"]),
        "billing_scheme": "per_unit",
        "created": price_obj["created"],
        "currency": price_obj["currency"],
        "id": price_obj["id"],
        "interval": "month",
        "interval_count": 1,
        "livemode": False,
        "metadata": {},
        "meter": None,
        "nickname": None,
        "object": "plan",
        "product": price_obj["product"],
        "tiers_mode": None,
        "transform_usage": None,
        "trial_period_days": None,
        "usage_type": "licensed",
    }


def subscription(
    *, customer_id: str, price_obj: JSONObject, now: int, metadata: dict[str, str], status: str = "active"
) -> JSONObject:
    obj = fixture("subscription")
    sub_id = new_id("sub")
    item = subscription_item(sub_id, price_obj, now=now)
    obj.update(
        id=sub_id,
        customer=customer_id,
        created=now,
        start_date=now,
        billing_cycle_anchor=now,
        status=status,
        metadata=dict(metadata),
        currency=price_obj["currency"],
        cancel_at=None,
        canceled_at=None,
        cancel_at_period_end=False,
        ended_at=None,
        trial_start=None,
        trial_end=None,
        pending_update=None,
        next_pending_invoice_item_invoice=None,
        pending_invoice_item_interval=None,
        pause_collection=None,
        transfer_data=None,
        billing_thresholds=None,
        billing_schedules=[],
        billing_cycle_anchor_config=None,
        latest_invoice=None,
    )
    obj["items"] = {
        "object": "list",
        "data": [item],
        "has_more": False,
        "url": f"/v1/subscription_items?subscription={sub_id}",
    }
    return obj


def invoice(
    *,
    subscription_obj: JSONObject,
    now: int,
    amount: int,
    status: str,
    billing_reason: str,
    proration: bool = False,
    attempt_count: int = 0,
) -> JSONObject:
    """An invoice of ``subscription_obj`` for ``amount`` (status ``paid`` or ``open``)."""
    obj = fixture("invoice")
    inv_id = new_id("in")
    item = subscription_obj["items"]["data"][0]
    paid = status == "paid"
    line = obj["lines"]["data"][0]
    line.update(
        id=new_id("il"),
        invoice=inv_id,
        amount=amount,
        currency=subscription_obj["currency"],
        description=("Remaining time on " if proration else "1 × ") + str(item["price"]["id"]),
        period={"start": now, "end": item["current_period_end"]},
        subscription=subscription_obj["id"],
        subtotal=amount,
    )
    line["parent"] = {
        "type": "subscription_item_details",
        "invoice_item_details": None,
        "subscription_item_details": {
            "invoice_item": None,
            "proration": proration,
            "proration_details": {"credited_items": None},
            "subscription": subscription_obj["id"],
            "subscription_item": item["id"],
        },
    }
    obj.update(
        id=inv_id,
        created=now,
        customer=subscription_obj["customer"],
        amount_due=amount,
        amount_paid=amount if paid else 0,
        amount_remaining=0 if paid else amount,
        amount_overpaid=0,
        subtotal=amount,
        subtotal_excluding_tax=amount,
        total=amount,
        total_excluding_tax=amount,
        attempt_count=attempt_count,
        attempted=attempt_count > 0 or paid,
        billing_reason=billing_reason,
        status=status,
        subscription=None,  # moved to parent.subscription_details in API 2025-03-31
        period_start=now,
        period_end=now,
        due_date=None,
        effective_at=now,
        next_payment_attempt=None if paid else now + 3 * 24 * 3600,
        webhooks_delivered_at=None,
        last_finalization_error=None,
        from_invoice=None,
        shipping_cost=None,
        status_transitions={
            "finalized_at": now,
            "marked_uncollectible_at": None,
            "paid_at": now if paid else None,
            "voided_at": None,
        },
        parent={
            "type": "subscription_details",
            "quote_details": None,
            "subscription_details": {"metadata": None, "subscription": subscription_obj["id"]},
        },
    )
    obj["lines"]["url"] = f"/v1/invoices/{inv_id}/lines"
    return obj


def checkout_session(
    *,
    now: int,
    customer_id: str,
    subscription_id: str,
    client_reference_id: str | None,
    email: str | None,
    amount_total: int,
    metadata: dict[str, str] | None = None,
) -> JSONObject:
    """A completed subscription-mode Checkout Session."""
    obj = fixture("checkout.session")
    session_id = "cs_test_" + new_id("x", 58)[2:]
    obj.update(
        id=session_id,
        created=now,
        expires_at=now + 24 * 3600,
        mode="subscription",
        status="complete",
        payment_status="paid",
        customer=customer_id,
        subscription=subscription_id,
        client_reference_id=client_reference_id,
        customer_email=email,
        metadata=dict(metadata or {}),
        amount_subtotal=amount_total,
        amount_total=amount_total,
        currency="usd",
        payment_intent=None,
        invoice=None,
        url=None,
        shipping_cost=None,
        shipping_address_collection=None,
        currency_conversion=None,
        total_details={"amount_discount": 0, "amount_shipping": 0, "amount_tax": 0},
    )
    obj["customer_details"]["email"] = email
    return obj


def event(event_type: str, data_object: JSONObject, *, now: int, api_version: str) -> JSONObject:
    """A snapshot event carrying a copy of ``data_object``."""
    obj = fixture("event")
    obj.update(
        id=new_id("evt"),
        type=event_type,
        created=now,
        api_version=api_version,
        livemode=False,
        pending_webhooks=1,
        request={"id": None, "idempotency_key": None},
    )
    obj["data"] = {"object": copy.deepcopy(data_object)}
    return obj


def error_body(
    message: str, *, type_: str = "invalid_request_error", code: str | None = None, param: str | None = None
) -> JSONObject:
    """Stripe's error envelope."""
    error: JSONObject = {"message": message, "type": type_}
    if code is not None:
        error["code"] = code
        error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
    if param is not None:
        error["param"] = param
    return {"error": error}


__all__ = [
    "JSONObject",
    "MONTH_SECONDS",
    "checkout_session",
    "customer",
    "error_body",
    "event",
    "fixture",
    "invoice",
    "new_id",
    "price",
    "subscription",
    "subscription_item",
]
