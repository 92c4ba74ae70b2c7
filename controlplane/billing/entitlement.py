"""What a tenant is entitled to, from its billing fields and the time: the one place the billing
rules of PRODUCT.md become desired power and banners. Pure (no database, no Stripe).

Subscription status -> billing fields (:func:`billing_fields_for`):

======================================  ============================================================
``active``, ``trialing``                running; grace and destroy deadline cleared (paid again)
``past_due``                            running until ``billing_grace_until`` (set once: now + grace)
``unpaid``, ``canceled``,               stopped; ``destroy_after`` = now + retention (set once; the
``incomplete_expired``                  reconciler destroys the agent after it)
``incomplete``, ``paused``              stopped (nothing paid yet / paused by Stripe), nothing destroyed
======================================  ============================================================

Desired power (:func:`desired_power`) = running only if billing allows it AND the key grace does
(``key_grace_until`` passed without a usable key = stopped with ``key_missing``); a tenant already
``gone`` stays gone. Tenants Stripe never saw (``billing_status = none``) are not held back by billing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

from controlplane.enums import BillingStatus, DesiredPower
from controlplane.settings import Settings

ENTITLED = frozenset({BillingStatus.active, BillingStatus.trialing})
IN_GRACE = frozenset({BillingStatus.past_due})
ENDED = frozenset({BillingStatus.unpaid, BillingStatus.canceled, BillingStatus.incomplete_expired})
NOT_STARTED = frozenset({BillingStatus.incomplete, BillingStatus.paused})
PAYMENT_FAILED = frozenset({BillingStatus.past_due, BillingStatus.unpaid})

#: How long before a grace period ends the ``grace_period_ending`` banner shows.
BILLING_GRACE_ENDING_NOTICE = timedelta(days=1)
KEY_GRACE_ENDING_NOTICE = timedelta(days=2)  # the day-28 reminder of a 30-day key grace


@dataclass(frozen=True, slots=True)
class BillingPolicy:
    """The operator's billing periods (``CP_BILLING_GRACE_DAYS``, ``CP_TENANT_RETENTION_DAYS``)."""

    grace: timedelta = timedelta(days=3)
    retention: timedelta = timedelta(days=7)

    @classmethod
    def from_settings(cls, settings: Settings) -> BillingPolicy:
        return cls(
            grace=timedelta(days=settings.billing_grace_days),
            retention=timedelta(days=settings.tenant_retention_days),
        )


class BillingView(Protocol):
    """The tenant fields the rules read (a :class:`~controlplane.db.models.Tenant` is one)."""

    @property
    def billing_status(self) -> BillingStatus: ...
    @property
    def billing_grace_until(self) -> datetime | None: ...
    @property
    def key_grace_until(self) -> datetime | None: ...
    @property
    def destroy_after(self) -> datetime | None: ...
    @property
    def desired_power(self) -> DesiredPower: ...


@dataclass(frozen=True, slots=True)
class BillingFields:
    billing_status: BillingStatus
    billing_grace_until: datetime | None
    destroy_after: datetime | None


def parse_status(raw: str) -> BillingStatus:
    """Stripe's subscription status; an unknown one (a future Stripe status) counts as not paid."""
    try:
        return BillingStatus(raw)
    except ValueError:
        return BillingStatus.incomplete


def billing_fields_for(
    status: BillingStatus, current: BillingView, now: datetime, policy: BillingPolicy
) -> BillingFields:
    """The billing fields once the subscription is ``status``. Deadlines already running are kept
    (a repeated read never extends a grace or postpones a destroy)."""
    if status in IN_GRACE:
        grace = current.billing_grace_until if current.billing_status in IN_GRACE else None
        return BillingFields(status, grace or now + policy.grace, None)
    if status in ENDED:
        destroy = current.destroy_after if current.billing_status in ENDED else None
        return BillingFields(status, current.billing_grace_until, destroy or now + policy.retention)
    return BillingFields(status, None, None)


def billing_allows_running(view: BillingView, now: datetime) -> bool:
    status = view.billing_status
    if status is BillingStatus.none or status in ENTITLED:
        return True
    if status in IN_GRACE:
        return view.billing_grace_until is not None and now < view.billing_grace_until
    return False


def key_grace_expired(view: BillingView, now: datetime) -> bool:
    """The key grace ran out without a usable key (the grace ends early when a key is added)."""
    return view.key_grace_until is not None and now >= view.key_grace_until


def desired_power(view: BillingView, now: datetime) -> DesiredPower:
    if view.desired_power is DesiredPower.gone:
        return DesiredPower.gone
    if billing_allows_running(view, now) and not key_grace_expired(view, now):
        return DesiredPower.running
    return DesiredPower.stopped


def payment_failed(view: BillingView) -> bool:
    return view.billing_status in PAYMENT_FAILED


def grace_ending(view: BillingView, now: datetime) -> bool:
    """A grace period (billing or key) ends soon and has not ended yet."""
    billing = (
        view.billing_status in IN_GRACE
        and view.billing_grace_until is not None
        and view.billing_grace_until - BILLING_GRACE_ENDING_NOTICE <= now < view.billing_grace_until
    )
    key = (
        view.key_grace_until is not None
        and view.key_grace_until - KEY_GRACE_ENDING_NOTICE <= now < view.key_grace_until
    )
    return billing or key


__all__ = [
    "BILLING_GRACE_ENDING_NOTICE",
    "ENDED",
    "ENTITLED",
    "IN_GRACE",
    "KEY_GRACE_ENDING_NOTICE",
    "NOT_STARTED",
    "BillingFields",
    "BillingPolicy",
    "BillingView",
    "billing_allows_running",
    "billing_fields_for",
    "desired_power",
    "grace_ending",
    "key_grace_expired",
    "parse_status",
    "payment_failed",
]
