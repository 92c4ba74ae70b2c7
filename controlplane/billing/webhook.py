"""Stripe webhook ingestion: verify, store each event once, and ask for its subscription to be read
again -- all in ONE short transaction, with no Stripe call on the request path.

* Verification is stripe-python's own ``Webhook.construct_event`` on the raw body (HMAC-SHA256 over
  ``"{t}.{body}"``, tolerance 300 s), tried with each configured signing secret so a rotation
  (``CP_STRIPE_WEBHOOK_SECRET=whsec_new,whsec_old``) loses nothing. Malformed, unsigned, forged and
  stale deliveries raise :class:`WebhookRejected` (HTTP 400) before anything is stored.
* The event id is the primary key of ``stripe_events``: ``INSERT ... ON CONFLICT DO NOTHING`` makes a
  redelivery a no-op (acknowledged as a duplicate). In the same transaction a subscription event
  marks the billing sync queue (:mod:`.sync_queue`) and writes the audit row (actor ``webhook``).
* The event is a trigger only: the tenant follows the subscription as Stripe reports it when the
  sync job reads it (:mod:`.sync`), so order and lateness of deliveries do not matter.
* Types billing does not handle are stored (so a redelivery is still a duplicate), acknowledged and
  logged. Only ids are kept of the payload (no customer names or e-mail addresses).
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import stripe
import structlog
from sqlalchemy import Executable, String, bindparam, func, select
from sqlalchemy.dialects import postgresql, sqlite

from controlplane import audit
from controlplane.billing._sql import table_of
from controlplane.billing.sync_queue import BillingSyncQueue
from controlplane.clock import Clock, SystemClock
from controlplane.db.models import StripeEvent, Tenant
from controlplane.db.session import Database
from controlplane.db.types import UTCDateTime
from controlplane.settings import Settings, SettingsError

log = structlog.get_logger(__name__)

TOLERANCE_SECONDS = 300

#: Event types that make billing read a subscription again.
SUBSCRIPTION_EVENTS = frozenset(
    {
        "checkout.session.completed",
        "checkout.session.async_payment_succeeded",
        "customer.subscription.created",
        "customer.subscription.updated",
        "customer.subscription.deleted",
        "customer.subscription.paused",
        "customer.subscription.resumed",
        "customer.subscription.trial_will_end",
        "invoice.paid",
        "invoice.payment_succeeded",
        "invoice.payment_failed",
        "invoice.payment_action_required",
        "invoice.marked_uncollectible",
    }
)

# Stripe's client_reference_id: up to 200 letters, digits, '-' and '_' (we also allow . : @).
_REF = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,199}$")
_EVENT_ID = re.compile(r"^evt_[A-Za-z0-9_]{1,250}$")


class WebhookRejected(Exception):
    """The delivery is refused (HTTP 400); ``code`` is ``malformed`` or ``bad_signature``."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class Trigger:
    """What an event asks for: read ``subscription_id`` again (and whom it belongs to, if said)."""

    subscription_id: str
    customer_id: str | None
    tenant_ref: str | None


@dataclass(frozen=True, slots=True)
class IngestResult:
    event_id: str
    event_type: str
    duplicate: bool
    subscription_id: str | None  # queued for a sync (None: nothing to do for this type)


def _id_of(value: Any) -> str | None:
    if isinstance(value, Mapping):
        value = value.get("id")
    return value if isinstance(value, str) and value else None


def trigger_of(event_type: str, obj: Mapping[str, Any]) -> Trigger | None:
    """The subscription an event is about, or ``None`` if billing has nothing to do with it."""
    if event_type not in SUBSCRIPTION_EVENTS:
        return None
    customer = _id_of(obj.get("customer"))
    if event_type.startswith("checkout.session."):
        if obj.get("mode") != "subscription":
            return None
        sub = _id_of(obj.get("subscription"))
        raw_ref = obj.get("client_reference_id") or (obj.get("metadata") or {}).get("external_id")
        ref = raw_ref if isinstance(raw_ref, str) and _REF.match(raw_ref) else None
        if raw_ref and ref is None:
            log.warning("billing.bad_client_reference_id", session_id=_id_of(obj.get("id")))
        return Trigger(sub, customer, ref) if sub else None
    if event_type.startswith("customer.subscription."):
        sub = _id_of(obj.get("id"))
        return Trigger(sub, customer, None) if sub else None
    # invoice.*: the subscription moved under parent.subscription_details in API 2025-03-31
    sub = _id_of(obj.get("subscription"))
    if sub is None:
        parent = obj.get("parent") or {}
        sub = _id_of((parent.get("subscription_details") or {}).get("subscription"))
    return Trigger(sub, customer, None) if sub else None


def verify(
    payload: bytes, sig_header: str | None, secrets: Sequence[str], *, tolerance: int = TOLERANCE_SECONDS
) -> dict[str, Any]:
    """The verified event as a dict. Raises :class:`WebhookRejected`."""
    if not sig_header:
        raise WebhookRejected("bad_signature", "Stripe-Signature header missing")
    for secret in secrets:
        try:
            event = stripe.Webhook.construct_event(payload, sig_header, secret, tolerance=tolerance)
        except stripe.SignatureVerificationError:
            continue
        except ValueError:  # JSON (or UTF-8) that does not parse, behind a valid signature
            raise WebhookRejected("malformed", "body is not a JSON Stripe event") from None
        data: dict[str, Any] = event.to_dict()
        return data
    raise WebhookRejected("bad_signature", "no valid signature for this body within the tolerance")


class WebhookIngestor:
    """Verifies and stores deliveries; the FastAPI route (:mod:`.webhook_route`) calls :meth:`ingest`."""

    def __init__(
        self,
        db: Database,
        secrets: Sequence[str],
        *,
        queue: BillingSyncQueue | None = None,
        clock: Clock | None = None,
        tolerance: int = TOLERANCE_SECONDS,
    ) -> None:
        if not secrets:
            raise SettingsError(
                "CP_STRIPE_WEBHOOK_SECRET is not set: the Stripe webhook needs its signing secret"
            )
        self._db = db
        self._secrets = tuple(secrets)
        self._queue = queue or BillingSyncQueue()
        self._clock: Clock = clock or SystemClock()
        self._tolerance = tolerance

    @classmethod
    def from_settings(cls, db: Database, settings: Settings) -> WebhookIngestor:
        return cls(db, settings.stripe_webhook_secrets())

    def __repr__(self) -> str:
        return f"<WebhookIngestor secrets={len(self._secrets)}>"

    async def ingest(self, payload: bytes, sig_header: str | None) -> IngestResult:
        event = verify(payload, sig_header, self._secrets, tolerance=self._tolerance)
        event_id, event_type, created = event.get("id"), event.get("type"), event.get("created")
        obj = (event.get("data") or {}).get("object")
        if not (isinstance(event_id, str) and _EVENT_ID.match(event_id)) or not isinstance(event_type, str):
            raise WebhookRejected("malformed", "event id or type missing")
        if not isinstance(created, int) or not isinstance(obj, Mapping):
            raise WebhookRejected("malformed", "event created or data.object missing")
        trigger = trigger_of(event_type, obj)
        now = self._clock.now()
        async with self._db.transaction() as session:
            # One round trip: the event row, with the tenant it concerns looked up in the same statement.
            stored = await session.execute(
                _event_insert(self._db.dialect),
                {
                    "id": event_id,
                    "type": event_type[:128],
                    "created": created,
                    "sub": trigger.subscription_id if trigger else None,
                    "ref": trigger.tenant_ref if trigger else None,
                    "now": now,
                    "payload": _trimmed(obj, trigger),
                },
            )
            row = stored.first()
            if row is None:
                log.info("billing.event_duplicate", event_id=event_id, type=event_type)
                return IngestResult(event_id, event_type, True, None)
            if trigger is None:
                log.info("billing.event_ignored", event_id=event_id, type=event_type)
                return IngestResult(event_id, event_type, False, None)
            await self._queue.mark(
                session,
                trigger.subscription_id,
                now=now,
                reason=f"{event_type} {event_id}",
                customer_id=trigger.customer_id,
                tenant_ref=trigger.tenant_ref,
                event_id=event_id,
            )
            audit.record(
                session,
                actor="webhook",
                action="billing.event_received",
                tenant_id=row.tenant_id,
                reason=f"{event_type}: subscription {trigger.subscription_id} to be read again",
                after={"event_id": event_id, "type": event_type, "subscription": trigger.subscription_id},
            )
        log.info(
            "billing.event_queued",
            event_id=event_id,
            type=event_type,
            subscription_id=trigger.subscription_id,
        )
        return IngestResult(event_id, event_type, False, trigger.subscription_id)


@functools.cache
def _event_insert(dialect: str) -> Executable:
    """The event insert, built once per dialect: the row (nothing on a duplicate id), the tenant it
    concerns looked up in the same statement (by subscription, else by the checkout's reference),
    and that tenant id returned."""
    events = table_of(StripeEvent)
    c = events.c
    by_sub = (
        select(Tenant.id)
        .where(Tenant.stripe_subscription_id == bindparam("sub", type_=String()))
        .scalar_subquery()
    )
    by_ref = select(Tenant.id).where(Tenant.external_id == bindparam("ref", type_=String())).scalar_subquery()
    now = bindparam("now", type_=UTCDateTime())
    insert = postgresql.insert(events) if dialect == "postgresql" else sqlite.insert(events)
    return (
        insert.values(
            id=bindparam("id", type_=c.id.type),
            type=bindparam("type", type_=c.type.type),
            created=bindparam("created", type_=c.created.type),
            tenant_id=func.coalesce(by_sub, by_ref),
            received_at=now,
            processed_at=now,
            payload=bindparam("payload", type_=c.payload.type),
        )
        .on_conflict_do_nothing(index_elements=["id"])
        .returning(c.tenant_id)
    )


def _trimmed(obj: Mapping[str, Any], trigger: Trigger | None) -> dict[str, Any]:
    """The ids of an event's object; never names, addresses or e-mail addresses."""
    kept: dict[str, Any] = {"object": obj.get("object"), "id": _id_of(obj.get("id"))}
    if trigger is not None:
        kept.update(
            subscription=trigger.subscription_id, customer=trigger.customer_id, tenant_ref=trigger.tenant_ref
        )
    if isinstance(obj.get("status"), str):
        kept["status"] = obj["status"]
    return kept


__all__ = [
    "SUBSCRIPTION_EVENTS",
    "TOLERANCE_SECONDS",
    "IngestResult",
    "Trigger",
    "WebhookIngestor",
    "WebhookRejected",
    "trigger_of",
    "verify",
]
