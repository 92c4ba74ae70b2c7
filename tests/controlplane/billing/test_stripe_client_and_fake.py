"""The Stripe client (retries only what may succeed, idempotency keys on writes, the key never in
errors or logs) against the local fake, and the fake's fidelity: Stripe's published fixture shapes,
parsed by stripe-python's own types; idempotent replays; error envelopes; faults."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
import stripe

from controlplane.billing.fake_stripe import FakeStripe
from controlplane.billing.fake_stripe.forms import FormError, decode_form
from controlplane.billing.stripe_client import StripeClient, StripeNotFound, StripeRejected, StripeUnavailable
from controlplane.retry import Backoff
from controlplane.testing import FakeClock
from tests.support.agent_configs import SHARED
from tests.support.billing import API_KEY, FAKE_URL

REFERENCE = SHARED / "reference" / "stripe-fixtures3.json"


def _fake() -> FakeStripe:
    fake = FakeStripe()
    fake.add_price("price_pro_monthly", 3000)
    fake.add_price("price_power_monthly", 4000)
    return fake


def _client(fake: FakeStripe, clock: FakeClock | None = None) -> StripeClient:
    return StripeClient(
        API_KEY,
        api_base=FAKE_URL,
        transport=fake.transport(),
        clock=clock or FakeClock(),
        backoff=Backoff(jitter=False),
    )


def test_the_fake_serves_stripes_published_fixtures() -> None:
    from importlib import resources

    packaged = json.loads(
        resources.files("controlplane.billing.fake_stripe").joinpath("fixtures.json").read_text()
    )["resources"]
    published = json.loads(REFERENCE.read_text())["resources"]
    assert packaged and all(packaged[name] == published[name] for name in packaged)


async def test_stripe_python_parses_the_fakes_objects_into_its_types() -> None:
    fake = _fake()
    customer = fake.create_customer(email="a@example.com", metadata={"external_id": "u1"})
    created = fake.create_subscription(customer["id"], "price_pro_monthly")
    sdk = stripe.StripeClient(API_KEY, base_addresses={"api": FAKE_URL}, http_client=_SdkTransport(fake))
    sub = await sdk.v1.subscriptions.retrieve_async(created["id"])
    assert isinstance(sub, stripe.Subscription) and sub.status == "active"
    item = sub["items"].data[0]
    assert isinstance(item, stripe.SubscriptionItem) and isinstance(item.price, stripe.Price)
    assert item.price.id == "price_pro_monthly" and item.price.unit_amount == 3000
    assert item.current_period_end > item.current_period_start
    invoice = await sdk.v1.invoices.retrieve_async(sub.latest_invoice)  # type: ignore[arg-type]
    assert isinstance(invoice, stripe.Invoice) and invoice.status == "paid"
    assert invoice.parent is not None and invoice.parent.subscription_details is not None
    assert invoice.parent.subscription_details.subscription == sub.id


class _SdkTransport(stripe.HTTPClient):
    name = "test"

    def __init__(self, fake: FakeStripe) -> None:
        super().__init__()
        self._http = httpx.AsyncClient(transport=fake.transport())

    async def request_async(self, method, url, headers, post_data=None):  # type: ignore[no-untyped-def]
        response = await self._http.request(method, url, headers=headers, content=post_data)
        return response.content, response.status_code, response.headers


async def test_reads_and_writes_retry_5xx_429_and_lost_connections_with_the_same_key() -> None:
    fake = _fake()
    clock = FakeClock()
    customer = fake.create_customer()
    sub = fake.create_subscription(customer["id"], "price_pro_monthly")
    async with _client(fake, clock) as client:
        for kind in ("ambiguous", "429", "drop"):
            fake.inject(kind, method="POST")
        switched = await client.switch_price(
            sub["id"], sub["items"]["data"][0]["id"], "price_power_monthly", idempotency_key="k-1"
        )
    assert switched.price_id == "price_power_monthly"
    posts = [r for r in fake.requests if r.method == "POST"]
    assert [(r.status, r.replayed, r.idempotency_key) for r in posts] == [
        (200, False, "k-1"),  # ran, answer lost
        (429, False, "k-1"),
        (0, False, "k-1"),  # connection dropped before it ran
        (200, True, "k-1"),  # Stripe replays the first result: no second proration
    ]
    assert len(fake.prorations_of(sub["id"])) == 1
    assert clock.sleeps == [0.5, 1.0, 2.0]  # controlplane.retry.Backoff, on the injected clock


async def test_what_a_repeat_cannot_fix_is_not_repeated() -> None:
    fake = _fake()
    customer = fake.create_customer()
    sub = fake.create_subscription(customer["id"], "price_pro_monthly")
    async with _client(fake) as client:
        with pytest.raises(StripeNotFound) as missing:
            await client.retrieve_subscription("sub_doesnotexist")
        assert missing.value.exit_code == 2 and "No such subscription" in str(missing.value)
        await client.switch_price(
            sub["id"], sub["items"]["data"][0]["id"], "price_power_monthly", idempotency_key="k-2"
        )
        with pytest.raises(StripeRejected) as reused:  # the same key with other parameters
            await client.switch_price(
                sub["id"], sub["items"]["data"][0]["id"], "price_pro_monthly", idempotency_key="k-2"
            )
        assert "IdempotencyError" in str(reused.value)
        fake.inject("500", times=10)
        with pytest.raises(StripeUnavailable) as down:
            await client.retrieve_subscription(sub["id"])
        assert down.value.exit_code == 1 and "after 4 attempts" in str(down.value)
    statuses = [r.status for r in fake.requests]
    assert statuses.count(404) == 1 and statuses.count(400) == 1 and statuses.count(500) == 4


async def test_writes_need_an_idempotency_key_and_ids_cannot_change_the_path() -> None:
    fake = _fake()
    async with _client(fake) as client:
        with pytest.raises(ValueError, match="idempotency key"):
            await client._call("x", "post", "/v1/customers", {})
        with pytest.raises(StripeNotFound):
            await client.retrieve_subscription("../customers/cus_1")
    assert [r.path for r in fake.requests] == ["/v1/subscriptions/..%2Fcustomers%2Fcus_1"]


async def test_the_api_key_never_reaches_errors_reprs_or_logs(caplog: pytest.LogCaptureFixture) -> None:
    fake = _fake()
    caplog.set_level(logging.DEBUG)
    async with _client(fake) as client:
        fake.inject("drop", times=10)
        with pytest.raises(StripeUnavailable) as down:
            await client.retrieve_subscription("sub_x")
        texts = [str(down.value), repr(down.value), repr(client), caplog.text]
    assert all(API_KEY not in text for text in texts)


async def test_the_fake_refuses_requests_without_a_key_like_stripe() -> None:
    fake = _fake()
    async with httpx.AsyncClient(transport=fake.transport(), base_url=FAKE_URL) as http:
        response = await http.get("/v1/prices/price_pro_monthly")
        assert response.status_code == 401
        assert (
            response.json()["error"]["type"] == "invalid_request_error" and "Request-Id" in response.headers
        )
        missing = await http.get("/v1/prices/price_nope", headers={"Authorization": f"Bearer {API_KEY}"})
        assert missing.status_code == 404 and missing.json()["error"]["code"] == "resource_missing"


def test_stripe_form_encoding_decodes_to_nested_params() -> None:
    body = b"items[0][id]=si_1&items[0][price]=price_x&metadata[external_id]=u-1&proration_behavior=always_invoice"
    assert decode_form(body) == {
        "items": [{"id": "si_1", "price": "price_x"}],
        "metadata": {"external_id": "u-1"},
        "proration_behavior": "always_invoice",
    }
    for bad in (b"[x]=1", b"a]=1", b"a=1&a[b]=2", b"\xff=1"):
        with pytest.raises(FormError):
            decode_form(bad)


async def test_the_transport_streams_a_whole_body_and_sleeps_on_the_event_loop() -> None:
    import httpx

    from controlplane.billing.stripe_client import _HttpxTransport

    def answer(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"id": "cus_1"}, headers={"request-id": "req_1"})

    transport = _HttpxTransport(httpx.AsyncClient(transport=httpx.MockTransport(answer)))
    chunks, status, headers = await transport.request_stream_async("get", "https://api.stripe.com/v1/x", {})
    assert status == 200 and headers["request-id"] == "req_1"
    assert b"".join([c async for c in chunks]) == b'{"id":"cus_1"}'
    await transport.sleep_async(0)
    await transport.close_async()
