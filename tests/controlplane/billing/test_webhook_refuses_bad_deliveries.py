"""The webhook route refuses malformed, unsigned, forged and stale deliveries with 400 and stores
nothing; rotated secrets are accepted; unknown event types are acknowledged. Signatures are checked
by stripe-python's own code (Webhook.construct_event)."""

from __future__ import annotations

import json
import time

import stripe
from sqlalchemy import func, select

from controlplane.billing.deliveries import checkout_delivery, make_event, sign_delivery
from controlplane.billing.webhook_route import PATH
from controlplane.db.models import AuditLog, BillingSyncItem, StripeEvent
from tests.support.billing import FAKE_URL, OLD_SECRET, SECRET, BillingWorld, billing_world


async def _stored(world: BillingWorld) -> tuple[int, int, int]:
    async with world.db.read() as s:
        events = await s.scalar(select(func.count()).select_from(StripeEvent))
        queued = await s.scalar(select(func.count()).select_from(BillingSyncItem))
        audits = await s.scalar(select(func.count()).select_from(AuditLog))
    return int(events or 0), int(queued or 0), int(audits or 0)


async def _checkout(world: BillingWorld, secret: str = SECRET):  # type: ignore[no-untyped-def]
    return await checkout_delivery(
        FAKE_URL,
        webhook_secret=secret,
        external_id="u-1",
        price_id="price_pro_monthly",
        transport=world.transport(),
    )


async def test_forged_unsigned_stale_and_malformed_are_refused_and_nothing_is_stored(db) -> None:
    async with billing_world(db) as world:
        good = await _checkout(world)
        forged = await _checkout(world, secret="whsec_" + "not0the0endpoint0secret000000")
        body = good.body
        stale_header = stripe.WebhookSignature.generate_signature_header(
            body.decode(), SECRET, timestamp=int(time.time()) - 301
        )
        tampered = body.replace(b"u-1", b"u-2")
        not_json = b"{this is not json"
        cases = {
            "forged": (forged.body, forged.headers["Stripe-Signature"], "bad_signature"),
            "unsigned": (body, None, "bad_signature"),
            "stale": (body, stale_header, "bad_signature"),
            "tampered body": (tampered, good.headers["Stripe-Signature"], "bad_signature"),
            "garbage header": (body, "t=abc,v1=zz", "bad_signature"),
            "not JSON, validly signed": (
                not_json,
                stripe.WebhookSignature.generate_signature_header(not_json.decode(), SECRET),
                "malformed",
            ),
            "not UTF-8": (b"\xff\xfe{}", "t=1,v1=00", "malformed"),
        }
        for name, (payload, header, code) in cases.items():
            headers = {"Content-Type": "application/json"}
            if header is not None:
                headers["Stripe-Signature"] = header
            response = await world.api.post(PATH, content=payload, headers=headers)
            assert response.status_code == 400, name
            error = response.json()["error"]
            assert error["code"] == code, name
            assert error["field"] in {"Stripe-Signature", "body"} and error["message"], name
            assert SECRET not in response.text
        assert await _stored(world) == (0, 0, 0)

        # A validly signed event without an id is malformed too, and not stored.
        event = make_event("customer.subscription.updated", {"id": "sub_x", "object": "subscription"})
        del event["id"]
        payload = json.dumps(event).encode()
        header = stripe.WebhookSignature.generate_signature_header(payload.decode(), SECRET)
        response = await world.api.post(PATH, content=payload, headers={"Stripe-Signature": header})
        assert response.status_code == 400 and response.json()["error"]["code"] == "malformed"
        assert await _stored(world) == (0, 0, 0)

        # ... while the genuine delivery is accepted.
        response = await world.post(good)
        assert response.status_code == 200 and response.json()["duplicate"] is False
        assert await _stored(world) == (1, 1, 1)


async def test_both_secrets_work_during_a_rotation(db) -> None:
    async with billing_world(db, secrets=(SECRET, OLD_SECRET)) as world:
        old = await _checkout(world, secret=OLD_SECRET)
        new = await _checkout(world, secret=SECRET)
        assert (await world.post(old)).status_code == 200
        assert (await world.post(new)).status_code == 200
        assert await world.queued() == 2


async def test_unknown_event_types_are_acknowledged_stored_once_and_not_queued(db) -> None:
    async with billing_world(db) as world:
        event = make_event("customer.tax_id.created", {"id": "txi_123", "object": "tax_id"})
        delivery = sign_delivery(event, SECRET)
        first = await world.post(delivery)
        again = await world.post(delivery)
        assert first.status_code == 200 and first.json()["duplicate"] is False
        assert again.status_code == 200 and again.json()["duplicate"] is True
        events, queued, audits = await _stored(world)
        assert (events, queued, audits) == (1, 0, 0)


async def test_an_oversized_body_is_refused_before_it_is_read_whole(db) -> None:
    async with billing_world(db) as world:
        big = b"{" + b" " * (1024 * 1024 + 10) + b"}"
        response = await world.api.post(PATH, content=big, headers={"Stripe-Signature": "t=1,v1=00"})
        assert response.status_code == 413 and response.json()["error"]["code"] == "too_large"
        assert await _stored(world) == (0, 0, 0)


async def test_the_stored_event_keeps_ids_only(db) -> None:
    async with billing_world(db) as world:
        delivery = await checkout_delivery(
            FAKE_URL,
            webhook_secret=SECRET,
            external_id="u-9",
            price_id="price_pro_monthly",
            email="person@example.com",
            transport=world.transport(),
        )
        assert b"person@example.com" in delivery.body
        assert (await world.post(delivery)).status_code == 200
        async with world.db.transaction() as s:
            row = await s.get(StripeEvent, delivery.event_id)
        assert row is not None and row.type == "checkout.session.completed"
        assert row.payload["subscription"] == delivery.subscription_id and row.payload["tenant_ref"] == "u-9"
        assert "person@example.com" not in json.dumps(row.payload)
