"""What a tenant's resources should be, decided from its desired state alone (pure: no I/O).

:func:`decide` turns billing, power, retention, keys and grace periods into one :class:`Decision`:
the target (nothing yet / running / stopped / destroyed), the lifecycle state the tenant is in once
converged, a sentence saying why, whether the agent runs on the operator's platform key, and the
next moment the decision changes by itself (a grace period or retention ending), so the reconciler
can ask to look again then.

Rules (PRODUCT.md "Tenants and desired state", "Billing flows", "Plan migration"):

* retention over (``destroy_after`` passed) -> destroyed;
* not entitled by billing (unpaid, canceled, incomplete_expired, paused; past_due once its grace
  ended; incomplete before the first payment) -> stopped, or nothing if never provisioned;
* ``desired_power`` stopped (operator, billing) or gone (deletion requested, retention running) ->
  stopped;
* no usable model credential (a BYOK plan with no usable key of a provider the plan allows, and no
  key grace on the platform key; a platform plan without a platform key) -> nothing yet while never
  provisioned (``pending``, key_missing), stopped otherwise;
* else running.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from agents_config import NoUsableModelError, Plan, route_models
from controlplane.db.tenants import DesiredTenant
from controlplane.enums import BillingStatus, DesiredPower, LifecycleState


class Target(str, enum.Enum):
    absent = "absent"  # nothing created (pending)
    running = "running"
    stopped = "stopped"  # resources kept, machine stopped, autostart off
    destroyed = "destroyed"


#: Subscription states that do not entitle the tenant to a running agent.
NOT_ENTITLED = frozenset(
    {BillingStatus.unpaid, BillingStatus.canceled, BillingStatus.incomplete_expired, BillingStatus.paused}
)
KEY_MISSING = "key_missing"


@dataclass(frozen=True, slots=True)
class Decision:
    target: Target
    lifecycle: LifecycleState  # the state once converged (running may show as sleeping on Fly)
    reason: str
    platform_providers: tuple[str, ...]  # platform keys offered to the agent's routing
    look_again_at: datetime | None = None  # when this decision changes by itself
    key_missing: bool = False


def _has_byok_model(tenant: DesiredTenant, plan: Plan) -> bool:
    try:
        route_models(
            plan,
            byok_providers=tenant.usable_providers,
            platform_keys=(),
            chosen_model=None,
            strategy=tenant.routing_strategy.value,
        )
    except NoUsableModelError:
        return False
    return True


def _soonest(*moments: datetime | None) -> datetime | None:
    future = [m for m in moments if m is not None]
    return min(future) if future else None


def decide(
    tenant: DesiredTenant, plan: Plan, *, platform_providers: Iterable[str], now: datetime
) -> Decision:
    platform = tuple(sorted(set(platform_providers)))
    provisioned = tenant.fly.app_name is not None and (
        tenant.fly.machine_id is not None or tenant.fly.volume_id is not None
    )
    retention_end = tenant.destroy_after if tenant.destroy_after and tenant.destroy_after > now else None

    def stopped(reason: str, *, key_missing: bool = False, at: datetime | None = None) -> Decision:
        if not provisioned and tenant.lifecycle_state in (LifecycleState.pending, LifecycleState.stopped):
            state = LifecycleState.pending if key_missing else LifecycleState.stopped
            return Decision(Target.absent, state, reason, platform, _soonest(at, retention_end), key_missing)
        return Decision(
            Target.stopped, LifecycleState.stopped, reason, platform, _soonest(at, retention_end), key_missing
        )

    if tenant.destroy_after is not None and tenant.destroy_after <= now:
        return Decision(Target.destroyed, LifecycleState.gone, "retention period over", platform)
    if tenant.desired_power is DesiredPower.gone:
        return stopped("deletion requested: resources are destroyed after the retention period")

    billing = tenant.billing_status
    billing_grace_end: datetime | None = None
    if billing in NOT_ENTITLED:
        return stopped(f"billing: subscription {billing.value}")
    if billing is BillingStatus.incomplete:
        return stopped("billing: the first payment is not complete")
    if billing is BillingStatus.past_due:
        grace = tenant.billing_grace_until
        if grace is None or grace <= now:
            return stopped("billing: payment failed and the grace period is over")
        billing_grace_end = grace
    if tenant.desired_power is DesiredPower.stopped:
        return stopped("stopped on request")

    key_grace_end: datetime | None = None
    if plan.key_mode == "platform":
        if not platform:
            return stopped("no platform key configured for this plan", key_missing=True)
    elif not _has_byok_model(tenant, plan):
        grace = tenant.key_grace_until
        fallback = plan.models.platform_fallback
        on_platform = fallback is not None and fallback.split("/", 1)[0] in platform
        if grace is not None and grace > now and on_platform:
            key_grace_end = grace
        else:
            return stopped("no usable API key: add one in the dashboard", key_missing=True)
    reason = "running on the platform key during the key grace period" if key_grace_end else "running"
    return Decision(
        Target.running,
        LifecycleState.running,
        reason,
        platform,
        _soonest(billing_grace_end, key_grace_end),
    )


__all__ = ["KEY_MISSING", "NOT_ENTITLED", "Decision", "Target", "decide"]
