"""A local fake of the part of Stripe's API billing uses, for tests, benchmarks and the demo.

It answers like Stripe: the published fixture shapes (:mod:`.objects`), Stripe's form encoding,
``Bearer`` API keys, error envelopes (``resource_missing`` 404, ``idempotency_error`` 400, 429
``rate_limit``, 5xx ``api_error``), ``Request-Id`` headers, and idempotency keys as Stripe documents
them: the first result of a POST is saved per key and replayed (``Idempotent-Replayed: true``) for
the same request; the same key with other parameters is refused.

Endpoints: ``POST/GET /v1/customers[/{id}]``, ``POST/GET/DELETE /v1/subscriptions[/{id}]`` (a price
switch with ``proration_behavior=always_invoice`` issues a paid proration invoice at once),
``GET /v1/prices/{id}``, ``GET /v1/invoices/{id}``; test controls under ``/_fake/`` (no key):
``POST /_fake/subscriptions/{id}/status`` with ``{"status": "past_due"}`` (a failed invoice) or
``"active"`` (the open invoice paid) and so on.

Faults (:meth:`FakeStripe.inject`, :meth:`FakeStripe.set_fault_rate`): HTTP 500/502/503/429 before
the request runs; ``drop`` (the connection fails, nothing ran) and ``ambiguous`` (the request ran,
then the connection failed: the answer is lost) in-process. Over loopback a drop or an ambiguous
fault is answered with a 500 instead (uvicorn's answer to a handler that raised).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import random
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal
from urllib.parse import parse_qs, unquote

import httpx

from controlplane.billing.fake_stripe import objects
from controlplane.billing.fake_stripe.forms import FormError, decode_form
from controlplane.billing.fake_stripe.objects import JSONObject, error_body
from controlplane.loopback import serve_asgi

FaultKind = Literal["500", "502", "503", "429", "drop", "ambiguous"]
FAULT_KINDS: tuple[FaultKind, ...] = ("500", "502", "503", "429", "drop", "ambiguous")
API_VERSION = "2025-03-31.basil"

#: Transitions the test control accepts (Stripe's subscription statuses).
STATUSES = (
    "active",
    "trialing",
    "past_due",
    "unpaid",
    "canceled",
    "incomplete",
    "incomplete_expired",
    "paused",
)


class _Dropped(Exception):
    """The connection fails before an answer; ``applied`` says whether the request ran."""

    def __init__(self, applied: bool) -> None:
        super().__init__("connection dropped")
        self.applied = applied


@dataclass(frozen=True, slots=True)
class RecordedRequest:
    method: str
    path: str
    idempotency_key: str | None
    status: int  # 0 = dropped
    replayed: bool
    fault: FaultKind | None
    params: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Proration:
    """One proration charged by a price switch (what a double charge would show twice)."""

    subscription_id: str
    idempotency_key: str | None
    from_price: str
    to_price: str
    amount: int
    invoice_id: str | None


@dataclass(slots=True)
class _Fault:
    kind: FaultKind
    times: int
    path_prefix: str | None
    method: str | None


@dataclass(slots=True)
class _Saved:
    fingerprint: str
    status: int
    body: bytes


@dataclass(slots=True)
class _Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)


def _json(status: int, obj: Any) -> _Reply:
    return _Reply(status, json.dumps(obj, separators=(",", ":")).encode())


class FakeStripe:
    """The fake's state, its request handler and its test controls."""

    def __init__(self, *, now: Callable[[], float] = time.time, seed: int | None = 0) -> None:
        self._now = now
        self.customers: dict[str, JSONObject] = {}
        self.subscriptions: dict[str, JSONObject] = {}
        self.invoices: dict[str, JSONObject] = {}
        self.prices: dict[str, JSONObject] = {}
        self.requests: list[RecordedRequest] = []
        self.prorations: list[Proration] = []
        self._saved: dict[str, _Saved] = {}
        self._faults: list[_Fault] = []
        self._fault_rate = 0.0
        self._fault_rate_kinds: tuple[FaultKind, ...] = ("500",)
        self._fault_rate_prefix: str | None = None
        self._rng = random.Random(seed)
        self._current_key: str | None = None  # the idempotency key of the request being handled

    # -- controls -----------------------------------------------------------------------------
    def add_price(self, price_id: str, unit_amount: int, *, currency: str = "usd") -> JSONObject:
        obj = objects.price(price_id, unit_amount, currency=currency)
        obj["created"] = self._ts()
        self.prices[price_id] = obj
        return obj

    def add_catalog_prices(self, plans: Mapping[str, tuple[str, int]]) -> None:
        """``{plan_id: (stripe_price_id, monthly_price_cents)}`` as prices."""
        for price_id, amount in plans.values():
            self.add_price(price_id, amount)

    def inject(
        self, kind: FaultKind, *, times: int = 1, path_prefix: str | None = None, method: str | None = None
    ) -> None:
        """The next ``times`` matching API requests fail with ``kind``."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}")
        self._faults.append(_Fault(kind, times, path_prefix, method.upper() if method else None))

    def set_fault_rate(
        self, rate: float, kinds: tuple[FaultKind, ...] = ("500",), *, path_prefix: str | None = None
    ) -> None:
        """Every matching API request fails with probability ``rate`` (seeded)."""
        if not 0.0 <= rate <= 1.0:
            raise ValueError("rate must be within [0, 1]")
        self._fault_rate, self._fault_rate_kinds, self._fault_rate_prefix = rate, kinds, path_prefix

    def clear_faults(self) -> None:
        self._faults.clear()
        self._fault_rate = 0.0

    def create_customer(
        self, *, email: str | None = None, metadata: Mapping[str, str] | None = None
    ) -> JSONObject:
        obj = objects.customer(now=self._ts(), email=email, metadata=dict(metadata or {}))
        self.customers[obj["id"]] = obj
        return obj

    def create_subscription(
        self,
        customer_id: str,
        price_id: str,
        *,
        metadata: Mapping[str, str] | None = None,
        status: str = "active",
    ) -> JSONObject:
        sub = objects.subscription(
            customer_id=customer_id,
            price_obj=self.prices[price_id],
            now=self._ts(),
            metadata=dict(metadata or {}),
            status=status,
        )
        self.subscriptions[sub["id"]] = sub
        if status in ("active", "trialing"):
            inv = self._new_invoice(sub, self.prices[price_id]["unit_amount"], "paid", "subscription_create")
            sub["latest_invoice"] = inv["id"]
        return sub

    def set_status(self, subscription_id: str, status: str) -> tuple[JSONObject, JSONObject | None]:
        """Move a subscription to ``status`` the way Stripe would get there: ``past_due`` and
        ``unpaid`` leave an open invoice whose payment failed; back to ``active`` pays it;
        ``canceled`` ends the subscription. Returns the subscription and the invoice involved."""
        if status not in STATUSES:
            raise ValueError(f"unknown status {status!r}")
        sub = self.subscriptions[subscription_id]
        now = self._ts()
        invoice: JSONObject | None = None
        open_invoice = self._open_invoice(subscription_id)
        if status in ("past_due", "unpaid"):
            if open_invoice is None:
                amount = sub["items"]["data"][0]["price"]["unit_amount"]
                open_invoice = self._new_invoice(sub, amount, "open", "subscription_cycle")
            open_invoice["attempt_count"] = int(open_invoice["attempt_count"]) + 1
            open_invoice["attempted"] = True
            invoice = open_invoice
            sub["latest_invoice"] = open_invoice["id"]
        elif status in ("active", "trialing") and open_invoice is not None:
            open_invoice.update(
                status="paid",
                amount_paid=open_invoice["amount_due"],
                amount_remaining=0,
                next_payment_attempt=None,
            )
            open_invoice["status_transitions"]["paid_at"] = now
            invoice = open_invoice
        elif status == "canceled":
            sub.update(canceled_at=now, ended_at=now)
        sub["status"] = status
        return sub, invoice

    def event(self, event_type: str, obj: JSONObject) -> JSONObject:
        """A snapshot event of ``obj`` as Stripe would deliver it."""
        return objects.event(event_type, obj, now=self._ts(), api_version=API_VERSION)

    def prorations_of(self, subscription_id: str) -> list[Proration]:
        return [p for p in self.prorations if p.subscription_id == subscription_id]

    # -- serving ------------------------------------------------------------------------------
    def transport(self) -> httpx.AsyncBaseTransport:
        """An in-process httpx transport (no socket): what tests give the StripeClient."""
        return _InProcessTransport(self)

    async def asgi(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        """The fake as an ASGI application (served on loopback by :func:`serve`)."""
        if scope["type"] != "http":
            return
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        raw_path = (scope.get("raw_path") or scope["path"].encode()).decode("latin-1")
        reply = await self.handle(
            scope["method"], raw_path, scope.get("query_string", b"").decode(), headers, b"".join(chunks)
        )
        await send(
            {
                "type": "http.response.start",
                "status": reply.status,
                "headers": [(k.encode(), v.encode()) for k, v in reply.headers.items()],
            }
        )
        await send({"type": "http.response.body", "body": reply.body})

    @contextlib.asynccontextmanager
    async def serve(self, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
        """Serve on loopback until the block exits; yields the base URL."""
        async with serve_asgi(self.asgi, host, port) as url:
            yield url

    # -- the handler --------------------------------------------------------------------------
    async def handle(
        self, method: str, path: str, query: str, headers: Mapping[str, str], body: bytes
    ) -> _Reply:
        """One request (``path`` still percent-encoded, ``headers`` keys lower-case). Raises
        ``_Dropped`` for connection faults."""
        method = method.upper()
        if path.startswith("/_fake/"):
            return self._control(method, path, body)
        try:
            params = decode_form(body) if method == "POST" else _query(query)
        except FormError as exc:
            return _json(400, error_body(str(exc), code="parameter_invalid_string"))
        key = headers.get("idempotency-key") if method == "POST" else None
        fault = self._take_fault(method, path)
        if fault is not None and fault.kind not in ("ambiguous",):
            self._record(
                method, path, key, 0 if fault.kind == "drop" else int(fault.kind), False, fault.kind, params
            )
            if fault.kind == "drop":
                raise _Dropped(applied=False)
            if fault.kind == "429":
                return self._with_id(
                    _json(429, error_body("Too many requests hit the API too quickly.", code="rate_limit"))
                )
            return self._with_id(
                _json(int(fault.kind), error_body("An unknown error occurred", type_="api_error"))
            )
        auth = headers.get("authorization", "")
        if not auth.startswith("Bearer sk_") and not auth.startswith("Bearer rk_"):
            self._record(method, path, key, 401, False, None, params)
            return self._with_id(
                _json(
                    401,
                    error_body(
                        "You did not provide an API key. You need to provide your API key in the "
                        "Authorization header, using Bearer auth."
                    ),
                )
            )
        self._current_key = key  # no await until it is reset: handlers run atomically
        try:
            reply, replayed = self._idempotent(method, path, key, params)
        finally:
            self._current_key = None
        self._record(method, path, key, reply.status, replayed, fault.kind if fault else None, params)
        if fault is not None:  # ambiguous: it ran, then the answer was lost
            raise _Dropped(applied=True)
        return self._with_id(reply)

    def _idempotent(self, method: str, path: str, key: str | None, params: JSONObject) -> tuple[_Reply, bool]:
        if key is None:
            return self._route(method, path, params), False
        fingerprint = hashlib.sha256(json.dumps([method, path, params], sort_keys=True).encode()).hexdigest()
        saved = self._saved.get(key)
        if saved is not None:
            if saved.fingerprint != fingerprint:
                return (
                    _json(
                        400,
                        error_body(
                            "Keys for idempotent requests can only be used with the same parameters "
                            "they were first used with. Try using a key other than "
                            f"'{key}' if you meant to execute a different request.",
                            type_="idempotency_error",
                        ),
                    ),
                    False,
                )
            reply = _Reply(saved.status, saved.body, {"Idempotent-Replayed": "true"})
            return reply, True
        reply = self._route(method, path, params)
        if reply.status < 400 or reply.status >= 500:  # validation failures are not saved
            self._saved[key] = _Saved(fingerprint, reply.status, reply.body)
        return reply, False

    def _route(self, method: str, path: str, params: JSONObject) -> _Reply:
        parts = [unquote(p) for p in path.split("/") if p]  # an encoded "/" stays inside its segment
        if len(parts) < 2 or parts[0] != "v1":
            return _json(404, error_body(f"Unrecognized request URL ({method}: {path})."))
        resource, rest = parts[1], parts[2:]
        if resource == "customers":
            if method == "POST" and not rest:
                customer = self.create_customer(
                    email=params.get("email"), metadata=params.get("metadata") or {}
                )
                return _json(200, customer)
            if method == "GET" and len(rest) == 1:
                return self._get(self.customers, "customer", rest[0])
        elif resource == "subscriptions":
            if method == "POST" and not rest:
                return self._create_subscription(params)
            if len(rest) == 1 and method == "GET":
                return self._get(self.subscriptions, "subscription", rest[0])
            if len(rest) == 1 and method == "POST":
                return self._update_subscription(rest[0], params)
            if len(rest) == 1 and method == "DELETE":
                if rest[0] not in self.subscriptions:
                    return self._missing("subscription", rest[0])
                sub, _ = self.set_status(rest[0], "canceled")
                return _json(200, sub)
        elif resource == "prices" and method == "GET" and len(rest) == 1:
            return self._get(self.prices, "price", rest[0])
        elif resource == "invoices" and method == "GET" and len(rest) == 1:
            return self._get(self.invoices, "invoice", rest[0])
        return _json(404, error_body(f"Unrecognized request URL ({method}: {path})."))

    def _create_subscription(self, params: JSONObject) -> _Reply:
        customer_id = params.get("customer")
        if not customer_id:
            return _json(
                400,
                error_body("Missing required param: customer.", code="parameter_missing", param="customer"),
            )
        if customer_id not in self.customers:
            return self._missing("customer", customer_id, param="customer")
        items = params.get("items") or []
        if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
            return _json(
                400,
                error_body(
                    "The fake supports exactly one item.", code="parameter_invalid_integer", param="items"
                ),
            )
        price_id = items[0].get("price")
        if price_id not in self.prices:
            return self._missing("price", str(price_id), param="items[0][price]")
        sub = self.create_subscription(customer_id, price_id, metadata=params.get("metadata") or {})
        return _json(200, sub)

    def _update_subscription(self, subscription_id: str, params: JSONObject) -> _Reply:
        sub = self.subscriptions.get(subscription_id)
        if sub is None:
            return self._missing("subscription", subscription_id)
        if sub["status"] in ("canceled", "incomplete_expired"):
            return _json(
                400,
                error_body("A canceled subscription can only update its cancellation_details and metadata."),
            )
        if isinstance(params.get("metadata"), dict):
            sub["metadata"].update(params["metadata"])
        items = params.get("items")
        if items is not None:
            if not isinstance(items, list) or len(items) != 1 or not isinstance(items[0], dict):
                return _json(400, error_body("The fake supports exactly one item.", param="items"))
            item = sub["items"]["data"][0]
            if items[0].get("id") != item["id"]:
                return self._missing("subscription_item", str(items[0].get("id")), param="items[0][id]")
            price_id = items[0].get("price")
            if price_id not in self.prices:
                return self._missing("price", str(price_id), param="items[0][price]")
            behavior = params.get("proration_behavior", "create_prorations")
            if behavior not in ("always_invoice", "create_prorations", "none"):
                return _json(400, error_body("Invalid proration_behavior.", param="proration_behavior"))
            self._switch(sub, item, price_id, behavior)
        return _json(200, sub)

    def _switch(self, sub: JSONObject, item: JSONObject, price_id: str, behavior: str) -> None:
        old = item["price"]
        new = self.prices[price_id]
        if old["id"] == price_id:
            return  # no change, no proration
        now = self._ts()
        start, end = item["current_period_start"], item["current_period_end"]
        remaining = max(0.0, min(1.0, (end - now) / max(1, end - start)))
        amount = round((new["unit_amount"] - old["unit_amount"]) * remaining)
        item["price"] = json.loads(json.dumps(new))
        item["plan"] = objects._legacy_plan(new)
        invoice_id = None
        if behavior == "always_invoice":
            inv = self._new_invoice(sub, amount, "paid", "subscription_update", proration=True)
            invoice_id = inv["id"]
            sub["latest_invoice"] = invoice_id
        if behavior != "none":
            key = self._current_key
            self.prorations.append(Proration(sub["id"], key, old["id"], price_id, amount, invoice_id))

    # -- helpers ------------------------------------------------------------------------------
    def _control(self, method: str, path: str, body: bytes) -> _Reply:
        parts = [unquote(p) for p in path.split("/") if p]
        if method == "POST" and len(parts) == 4 and parts[1] == "subscriptions" and parts[3] == "status":
            try:
                status = json.loads(body or b"{}").get("status")
            except (json.JSONDecodeError, AttributeError):
                return _json(400, error_body('body must be JSON {"status": ...}'))
            if parts[2] not in self.subscriptions:
                return self._missing("subscription", parts[2])
            if status not in STATUSES:
                return _json(400, error_body(f"status must be one of {', '.join(STATUSES)}"))
            sub, invoice = self.set_status(parts[2], status)
            return _json(200, {"subscription": sub, "invoice": invoice})
        return _json(404, error_body(f"no fake control {method} {path}"))

    def _take_fault(self, method: str, path: str) -> _Fault | None:
        for fault in self._faults:
            if (fault.path_prefix is None or path.startswith(fault.path_prefix)) and (
                fault.method is None or fault.method == method
            ):
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
                return fault
        if self._fault_rate and (self._fault_rate_prefix is None or path.startswith(self._fault_rate_prefix)):
            if self._rng.random() < self._fault_rate:
                return _Fault(self._rng.choice(self._fault_rate_kinds), 1, None, None)
        return None

    def _record(
        self,
        method: str,
        path: str,
        key: str | None,
        status: int,
        replayed: bool,
        fault: FaultKind | None,
        params: Mapping[str, Any],
    ) -> None:
        self.requests.append(RecordedRequest(method, path, key, status, replayed, fault, params))

    def _get(self, table: Mapping[str, JSONObject], kind: str, object_id: str) -> _Reply:
        obj = table.get(object_id)
        return _json(200, obj) if obj is not None else self._missing(kind, object_id)

    def _missing(self, kind: str, object_id: str, *, param: str = "id") -> _Reply:
        return _json(404, error_body(f"No such {kind}: '{object_id}'", code="resource_missing", param=param))

    def _open_invoice(self, subscription_id: str) -> JSONObject | None:
        for inv in reversed(list(self.invoices.values())):
            if (
                inv["parent"]["subscription_details"]["subscription"] == subscription_id
                and inv["status"] == "open"
            ):
                return inv
        return None

    def _new_invoice(
        self, sub: JSONObject, amount: int, status: str, reason: str, *, proration: bool = False
    ) -> JSONObject:
        inv = objects.invoice(
            subscription_obj=sub,
            now=self._ts(),
            amount=amount,
            status=status,
            billing_reason=reason,
            proration=proration,
        )
        self.invoices[inv["id"]] = inv
        return inv

    def _with_id(self, reply: _Reply) -> _Reply:
        reply.headers.setdefault("Request-Id", objects.new_id("req", 14))
        reply.headers["Content-Type"] = "application/json"
        reply.headers["Stripe-Version"] = API_VERSION
        return reply

    def _ts(self) -> int:
        return int(self._now())


def _query(query: str) -> JSONObject:
    return {k: v[-1] for k, v in parse_qs(query).items()}


class _InProcessTransport(httpx.AsyncBaseTransport):
    def __init__(self, fake: FakeStripe) -> None:
        self._fake = fake

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        headers = {k.lower(): v for k, v in request.headers.items()}
        try:
            raw_path = request.url.raw_path.decode("ascii").split("?", 1)[0]
            reply = await self._fake.handle(
                request.method, raw_path, request.url.query.decode(), headers, body
            )
        except _Dropped as exc:
            if exc.applied:
                raise httpx.ReadError("connection reset by peer", request=request) from None
            raise httpx.ConnectError("connection refused", request=request) from None
        return httpx.Response(reply.status, headers=reply.headers, content=reply.body, request=request)


__all__ = [
    "API_VERSION",
    "FAULT_KINDS",
    "FakeStripe",
    "FaultKind",
    "Proration",
    "RecordedRequest",
    "STATUSES",
]
