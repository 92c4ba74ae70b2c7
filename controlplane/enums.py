"""The control plane's vocabularies: lifecycle, power, billing, routing, key verdicts and statuses,
banner kinds, metered services.

Plain ``str`` enums without SQLAlchemy, so pure policy (BYOK verdicts and classifiers, reconcile
decisions) never imports the ORM; ``controlplane/db/models.py`` stores them as strings with CHECK
constraints. A new value needs a migration of that constraint.
"""

from __future__ import annotations

import enum


class LifecycleState(str, enum.Enum):
    pending = "pending"  # paid, no usable model credential yet
    provisioning = "provisioning"
    running = "running"
    sleeping = "sleeping"  # auto-stopped by Fly, wakes on traffic
    stopped = "stopped"
    deprovisioning = "deprovisioning"
    gone = "gone"


class DesiredPower(str, enum.Enum):
    """Whether the tenant's agent should be running, stopped or gone."""

    running = "running"
    stopped = "stopped"
    gone = "gone"


class BillingStatus(str, enum.Enum):
    """Stripe subscription statuses (plus ``none`` before the first checkout)."""

    none = "none"
    trialing = "trialing"
    active = "active"
    past_due = "past_due"
    unpaid = "unpaid"
    canceled = "canceled"
    incomplete = "incomplete"
    incomplete_expired = "incomplete_expired"
    paused = "paused"


class RoutingStrategy(str, enum.Enum):
    aggressive = "aggressive"  # cheapest that will do
    balanced = "balanced"
    quality_first = "quality_first"


class KeyVerdict(str, enum.Enum):
    """The one verdict vocabulary for provider key checks."""

    ok = "ok"
    invalid_key = "invalid_key"
    revoked_or_blocked = "revoked_or_blocked"
    no_credit = "no_credit"
    spend_limit = "spend_limit"
    permission = "permission"
    rate_limited = "rate_limited"
    overloaded = "overloaded"
    unknown = "unknown"


class KeyStatus(str, enum.Enum):
    """What the control plane makes of a stored key."""

    usable = "usable"  # verdict ok
    warning = "warning"  # stored, but no_credit / spend_limit
    unverified = "unverified"  # transient verdict at save time: re-checked later
    broken = "broken"  # a later check found it invalid / revoked / without permission


class BannerKind(str, enum.Enum):
    key_invalid = "key_invalid"
    key_no_credit = "key_no_credit"
    key_missing = "key_missing"
    agent_down = "agent_down"
    agent_crashlooping = "agent_crashlooping"
    channel_down = "channel_down"
    grace_period_ending = "grace_period_ending"
    payment_failed = "payment_failed"


class UsageService(str, enum.Enum):
    web_search = "web_search"
    browser_minutes = "browser_minutes"
    email = "email"
    phone_minutes = "phone_minutes"


class MigrationItemState(str, enum.Enum):
    """Where one subscription stands in a plan migration (``controlplane plans migrate``)."""

    planned = "planned"  # chosen for the migration, nothing sent to Stripe yet
    switching = "switching"  # idempotency key stored; Stripe may or may not have switched the price
    done = "done"  # Stripe switched and the tenant's plan changed
    reversing = "reversing"  # --reverse: key stored, Stripe may or may not have switched back
    reversed = "reversed"  # back on the old price and plan


class RolloutState(str, enum.Enum):
    """An image rollout (``controlplane rollout ...``)."""

    running = "running"  # the worker's driver moves tenants batch by batch
    paused = "paused"  # a machine failed its checks, or an operator paused it: nothing new starts
    done = "done"  # every tenant handled
    aborted = "aborted"  # stopped by an operator: tenants not started stay on their image


class RolloutItemState(str, enum.Enum):
    """Where one tenant stands in a rollout."""

    pending = "pending"  # not started: still on its old image
    in_flight = "in_flight"  # desired image changed; waiting for the machine on it, started and ready
    done = "done"  # on the new image (started and /readyz 200, or asleep with it applied)
    rolling_back = "rolling_back"  # failed its checks after the update: going back to its old image
    rolled_back = "rolled_back"  # failed, and back on its old image
    skipped = "skipped"  # pinned (image_pin), or nothing to do: reported, never touched


__all__ = [
    "BannerKind",
    "BillingStatus",
    "DesiredPower",
    "KeyStatus",
    "KeyVerdict",
    "LifecycleState",
    "MigrationItemState",
    "RolloutItemState",
    "RolloutState",
    "RoutingStrategy",
    "UsageService",
]
