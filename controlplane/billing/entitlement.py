"""Billing's rules, pure (no database, no Stripe): what a subscription status does to the tenant's
billing-owned fields, and when billing banners show.

The reconciler decides what runs (``workers/decide.py``) from the fields billing keeps up to date:
``billing_status``, ``billing_grace_until``, ``key_grace_until`` and ``destroy_after``. Billing adds
the transitions it owns of ``desired_power`` (the operator's and user's on/off switch otherwise):

======================================  ============================================================
``active``, ``trialing``                entitled; paid again after it had ended: ``desired_power``
                                        back to running and the destroy deadline cleared
``past_due``                            running until ``billing_grace_until`` (set once: now + grace;
                                        the reconciler stops it then), ``payment_failed`` banner
``unpaid``, ``canceled``,               ``desired_power`` stopped and ``destroy_after`` = now +
``incomplete_expired``                  retention (set once; the reconciler destroys after it)
``incomplete``, ``paused``              not entitled (the reconciler keeps it stopped); nothing set
======================================  ============================================================

A deadline already running is kept (a repeated read never extends a grace or postpones a destroy),
and a tenant deleted by an operator (``desired_power`` gone) keeps its own deadline.
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
    """The billing fields once the subscription is ``status`` (see the module docstring)."""
    was_ended = current.billing_status in ENDED
    deleted = current.desired_power is DesiredPower.gone
    if status in ENDED:
        destroy = current.destroy_after if (was_ended or deleted) and current.destroy_after else None
        return BillingFields(status, current.billing_grace_until, destroy or now + policy.retention)
    # Billing clears only the deadline billing set (an operator's deletion keeps its own).
    destroy = None if was_ended and not deleted else current.destroy_after
    if status in IN_GRACE:
        grace = current.billing_grace_until if current.billing_status in IN_GRACE else None
        return BillingFields(status, grace or now + policy.grace, destroy)
    return BillingFields(status, None, destroy)


def power_after(old: BillingStatus, new: BillingStatus, current: DesiredPower) -> DesiredPower:
    """``desired_power`` once the subscription moves from ``old`` to ``new``: billing stops the agent
    when the subscription ends, and starts it again when it is paid again after that; any other
    change leaves the switch where the operator or user put it."""
    if current is DesiredPower.gone:
        return current
    if new in ENDED and old not in ENDED:
        return DesiredPower.stopped
    if old in ENDED and new not in ENDED and new not in NOT_STARTED:
        return DesiredPower.running
    return current


def billing_allows_running(view: BillingView, now: datetime) -> bool:
    """Billing's half of the reconciler's decision (for display and tests)."""
    status = view.billing_status
    if status is BillingStatus.none or status in ENTITLED:
        return True
    if status in IN_GRACE:
        return view.billing_grace_until is not None and now < view.billing_grace_until
    return False


def key_grace_expired(view: BillingView, now: datetime) -> bool:
    """The key grace ran out without a usable key (the grace ends early when a key is added)."""
    return view.key_grace_until is not None and now >= view.key_grace_until


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
    "grace_ending",
    "key_grace_expired",
    "parse_status",
    "payment_failed",
    "power_after",
]
