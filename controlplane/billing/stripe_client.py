"""The control plane's Stripe client: the few calls billing makes, retried, typed, and never leaky.

It wraps stripe-python's ``StripeClient`` (so requests are encoded and errors classified by Stripe's
own code) with:

* one retry loop for what may succeed on a repeat -- 5xx, 429, 409 ``lock_timeout`` and connection
  failures -- with delays from :class:`controlplane.retry.Backoff` on an injectable
  :class:`controlplane.clock.Clock` (the SDK's own retries are off, so there is one policy);
* an idempotency key required on every write: a repeated write (ours, or the SDK's, or a resumed
  migration's) is replayed by Stripe instead of charging again;
* an httpx transport underneath that tests swap (a local fake of Stripe's API, in-process or on
  loopback), and a base URL from ``CP_STRIPE_API_BASE``;
* frozen views (:class:`Subscription`, :class:`Customer`) of exactly the fields billing reads, so the
  rest of the package never touches untyped Stripe objects.

Failures become :class:`StripeUnavailable` (exit 1 / 503: try later), :class:`StripeNotFound` (the
object does not exist) or :class:`StripeRejected` (Stripe refused the request as such); none of them
carries the API key.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NoReturn
from urllib.parse import quote

import httpx
import stripe
import structlog

from controlplane.clock import Clock, SystemClock
from controlplane.errors import NotFound, Unavailable
from controlplane.redaction import redact_text
from controlplane.retry import Backoff
from controlplane.settings import Settings

log = structlog.get_logger(__name__)

#: Stripe's API version the views below were written against (items carry the billing periods).
STRIPE_API_VERSION = "2025-03-31.basil"

DEFAULT_BACKOFF = Backoff(initial=0.5, factor=2.0, cap=8.0)
DEFAULT_ATTEMPTS = 4


class StripeUnavailable(Unavailable):
    """Stripe did not answer, or answered 5xx / 429 on every attempt: try again later."""


class StripeNotFound(NotFound):
    """The Stripe object does not exist (``resource_missing``)."""


class StripeRejected(Unavailable):
    """Stripe refused the request itself (bad parameters, key without permission ...): repeating it
    will not help; an operator has to look."""


# -- views --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Price:
    id: str
    unit_amount: int | None
    currency: str


@dataclass(frozen=True, slots=True)
class SubscriptionItem:
    id: str
    price: Price
    quantity: int
    current_period_start: int | None
    current_period_end: int | None


@dataclass(frozen=True, slots=True)
class Subscription:
    """A subscription as Stripe says it is now."""

    id: str
    status: str
    customer_id: str
    items: tuple[SubscriptionItem, ...]
    metadata: Mapping[str, str] = field(default_factory=dict)
    created: int = 0

    @property
    def item(self) -> SubscriptionItem | None:
        """The plan's item (billing sells one price per subscription)."""
        return self.items[0] if self.items else None

    @property
    def price_id(self) -> str | None:
        return self.item.price.id if self.item else None

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> Subscription:
        items = []
        for raw in (data.get("items") or {}).get("data") or []:
            price = raw.get("price") or {}
            items.append(
                SubscriptionItem(
                    id=str(raw["id"]),
                    price=Price(
                        id=str(price.get("id") or ""),
                        unit_amount=price.get("unit_amount"),
                        currency=str(price.get("currency") or "usd"),
                    ),
                    quantity=int(raw.get("quantity") or 1),
                    # Since API 2025-03-31 the billing period lives on the item; older: on the subscription.
                    current_period_start=raw.get("current_period_start") or data.get("current_period_start"),
                    current_period_end=raw.get("current_period_end") or data.get("current_period_end"),
                )
            )
        customer = data.get("customer")
        if isinstance(customer, Mapping):
            customer = customer.get("id")
        return cls(
            id=str(data["id"]),
            status=str(data.get("status") or ""),
            customer_id=str(customer or ""),
            items=tuple(items),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
            created=int(data.get("created") or 0),
        )


@dataclass(frozen=True, slots=True)
class Customer:
    id: str
    email: str | None
    metadata: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_stripe(cls, data: Mapping[str, Any]) -> Customer:
        return cls(
            id=str(data["id"]),
            email=data.get("email"),
            metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        )


def _safe(object_id: str) -> str:
    """An object id as one URL path segment (ids come from webhooks: never let one add a path)."""
    return quote(object_id, safe="")


# -- transport ----------------------------------------------------------------------------------


class _HttpxTransport(stripe.HTTPClient):
    """stripe-python's HTTP client interface over one ``httpx.AsyncClient`` whose transport the
    caller chooses (tests: the local fake in-process). Async only; the SDK's retries are off."""

    name = "controlplane-httpx"

    def __init__(self, client: httpx.AsyncClient) -> None:
        super().__init__()
        self._client = client

    async def request_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[bytes, int, Mapping[str, str]]:
        try:
            response = await self._client.request(method, url, headers=dict(headers), content=post_data)
        except httpx.HTTPError as exc:
            # Never the URL or headers (the Authorization header carries the key): the class only.
            raise stripe.APIConnectionError(  # type: ignore[no-untyped-call]
                f"connection to Stripe failed ({type(exc).__name__})", should_retry=True
            ) from None
        return response.content, response.status_code, response.headers

    async def request_stream_async(
        self, method: str, url: str, headers: Mapping[str, str], post_data: Any = None
    ) -> tuple[AsyncIterable[bytes], int, Mapping[str, str]]:
        # No call of ours streams; if the SDK ever asks, answer with the whole body as one chunk.
        content, status, response_headers = await self.request_async(method, url, headers, post_data)

        async def chunks() -> AsyncIterator[bytes]:
            yield content

        return chunks(), status, response_headers

    def request(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("the control plane calls Stripe asynchronously only")

    def request_stream(self, *args: Any, **kwargs: Any) -> NoReturn:
        raise NotImplementedError("the control plane calls Stripe asynchronously only")

    def close(self) -> None:
        pass

    async def close_async(self) -> None:
        await self._client.aclose()

    async def sleep_async(self, secs: float) -> None:
        # The SDK's own retries are off (StripeClient retries), so this only runs if they are enabled.
        await asyncio.sleep(secs)


# -- the client ---------------------------------------------------------------------------------


def _retryable(exc: stripe.StripeError) -> bool:
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError):
        return True
    status = exc.http_status or 0
    if status >= 500 or status == 429:
        return True
    # 409: a concurrent request with the same idempotency key, or a lock timeout: a repeat is safe.
    return status == 409 and not isinstance(exc, stripe.IdempotencyError)


class StripeClient:
    """The calls billing makes to Stripe. ``async with StripeClient.from_settings(s) as stripe:``."""

    def __init__(
        self,
        api_key: str,
        *,
        api_base: str = "https://api.stripe.com",
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float = 20.0,
        clock: Clock | None = None,
        backoff: Backoff = DEFAULT_BACKOFF,
        attempts: int = DEFAULT_ATTEMPTS,
        rng: random.Random | None = None,
    ) -> None:
        self._http = httpx.AsyncClient(transport=transport, timeout=timeout, follow_redirects=False)
        self._sdk = stripe.StripeClient(
            api_key,
            base_addresses={"api": api_base.rstrip("/")},
            stripe_version=STRIPE_API_VERSION,
            max_network_retries=0,
            http_client=_HttpxTransport(self._http),
        )
        self._clock: Clock = clock or SystemClock()
        self._backoff = backoff
        self._attempts = max(1, attempts)
        self._rng = rng

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> StripeClient:
        if settings.stripe_secret_key is None:
            from controlplane.settings import SettingsError

            raise SettingsError("CP_STRIPE_SECRET_KEY is not set: billing needs the Stripe API key")
        return cls(
            settings.stripe_secret_key.get_secret_value(),
            api_base=str(settings.stripe_api_base),
            transport=transport,
            clock=clock,
        )

    async def __aenter__(self) -> StripeClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    def __repr__(self) -> str:
        return "<StripeClient>"

    # -- calls ----------------------------------------------------------------------------------
    async def retrieve_subscription(self, subscription_id: str) -> Subscription:
        data = await self._call("retrieve_subscription", "get", f"/v1/subscriptions/{_safe(subscription_id)}")
        return Subscription.from_stripe(data)

    async def retrieve_customer(self, customer_id: str) -> Customer:
        data = await self._call("retrieve_customer", "get", f"/v1/customers/{_safe(customer_id)}")
        return Customer.from_stripe(data)

    async def switch_price(
        self, subscription_id: str, item_id: str, price_id: str, *, idempotency_key: str
    ) -> Subscription:
        """Move the subscription's item to ``price_id`` and invoice the proration now
        (``proration_behavior=always_invoice``), under ``idempotency_key``."""
        data = await self._call(
            "switch_price",
            "post",
            f"/v1/subscriptions/{_safe(subscription_id)}",
            {"items": [{"id": item_id, "price": price_id}], "proration_behavior": "always_invoice"},
            idempotency_key=idempotency_key,
        )
        return Subscription.from_stripe(data)

    async def create_customer(
        self, *, email: str | None, metadata: Mapping[str, str], idempotency_key: str
    ) -> Customer:
        params: dict[str, object] = {"metadata": dict(metadata)}
        if email:
            params["email"] = email
        data = await self._call(
            "create_customer", "post", "/v1/customers", params, idempotency_key=idempotency_key
        )
        return Customer.from_stripe(data)

    async def create_subscription(
        self, *, customer_id: str, price_id: str, metadata: Mapping[str, str], idempotency_key: str
    ) -> Subscription:
        data = await self._call(
            "create_subscription",
            "post",
            "/v1/subscriptions",
            {"customer": customer_id, "items": [{"price": price_id}], "metadata": dict(metadata)},
            idempotency_key=idempotency_key,
        )
        return Subscription.from_stripe(data)

    # -- the retry loop -------------------------------------------------------------------------
    async def _call(
        self,
        what: str,
        method: str,
        path: str,
        params: Mapping[str, object] | None = None,
        *,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """One API call through the SDK's request path (its encoding, headers and error classes;
        ``raw_request`` skips building StripeObjects we would only turn back into dicts)."""
        if method == "post" and not idempotency_key:
            raise ValueError("every write to Stripe carries an idempotency key")
        kwargs: dict[str, Any] = dict(params or {})
        if idempotency_key:
            kwargs["idempotency_key"] = idempotency_key
        for attempt in range(self._attempts):
            try:
                response = await self._sdk.raw_request_async(method, path, **kwargs)
                data: dict[str, Any] = response.data
                return data
            except stripe.StripeError as exc:
                self._raise_if_final(what, exc, attempt)
                delay = self._backoff.delay(attempt, self._rng)
                log.info(
                    "stripe.retry",
                    call=what,
                    attempt=attempt + 1,
                    status=exc.http_status,
                    error=type(exc).__name__,
                    delay_s=round(delay, 3),
                    request_id=exc.request_id,
                )
                await self._clock.sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _raise_if_final(self, what: str, exc: stripe.StripeError, attempt: int) -> None:
        message = redact_text(exc.user_message or type(exc).__name__)
        if _retryable(exc):
            if attempt + 1 >= self._attempts:
                raise StripeUnavailable(
                    f"stripe {what}",
                    f"{type(exc).__name__} (HTTP {exc.http_status or '-'}) after {self._attempts} attempts",
                ) from None
            return
        if exc.code == "resource_missing" or exc.http_status == 404:
            raise StripeNotFound(f"stripe {what}", message) from None
        raise StripeRejected(
            f"stripe {what}", f"{type(exc).__name__} (HTTP {exc.http_status or '-'}): {message}"
        ) from None


__all__ = [
    "STRIPE_API_VERSION",
    "Customer",
    "Price",
    "StripeClient",
    "StripeNotFound",
    "StripeRejected",
    "StripeUnavailable",
    "Subscription",
    "SubscriptionItem",
]
