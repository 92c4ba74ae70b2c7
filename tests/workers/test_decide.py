"""Lifecycle decisions from desired state alone (workers/decide.py), table-driven."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from agents_config import load_catalog
from controlplane.db.tenants import DesiredTenant, FlyState, KeyState
from controlplane.enums import BillingStatus, DesiredPower, KeyStatus, LifecycleState, RoutingStrategy
from controlplane.testing import EPOCH
from workers.decide import Target, decide

NOW = EPOCH + timedelta(days=30)
CATALOG = load_catalog(None)
PLATFORM_CATALOG = load_catalog(
    __import__("pathlib").Path(__file__).resolve().parents[2] / "agents_config/catalogs/platform-tiers.toml"
)
PROVISIONED = FlyState(app_name="oc-x", volume_id="vol_1", machine_id="m1", observed_rev=1)


def tenant(**changes: object) -> DesiredTenant:
    base = DesiredTenant(
        id="t1",
        external_id="u@x",
        plan="pro",
        billing_status=BillingStatus.active,
        lifecycle_state=LifecycleState.running,
        desired_power=DesiredPower.running,
        desired_rev=1,
        region="iad",
        image_pin=None,
        model_preference=None,
        routing_strategy=RoutingStrategy.balanced,
        billing_grace_until=None,
        key_grace_until=None,
        destroy_after=None,
        keys=(KeyState("anthropic", KeyStatus.usable),),
        channels=(),
        fly=PROVISIONED,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "target", "state"),
    [
        ({}, Target.running, LifecycleState.running),
        ({"keys": (KeyState("anthropic", KeyStatus.warning),)}, Target.running, LifecycleState.running),
        ({"keys": (KeyState("anthropic", KeyStatus.broken),)}, Target.stopped, LifecycleState.stopped),
        (
            {"keys": (), "fly": FlyState(), "lifecycle_state": LifecycleState.pending},
            Target.absent,
            LifecycleState.pending,
        ),
        ({"desired_power": DesiredPower.stopped}, Target.stopped, LifecycleState.stopped),
        ({"billing_status": BillingStatus.canceled}, Target.stopped, LifecycleState.stopped),
        ({"billing_status": BillingStatus.unpaid}, Target.stopped, LifecycleState.stopped),
        (
            {"billing_status": BillingStatus.past_due, "billing_grace_until": NOW + timedelta(days=1)},
            Target.running,
            LifecycleState.running,
        ),
        (
            {"billing_status": BillingStatus.past_due, "billing_grace_until": NOW - timedelta(days=1)},
            Target.stopped,
            LifecycleState.stopped,
        ),
        ({"destroy_after": NOW - timedelta(seconds=1)}, Target.destroyed, LifecycleState.gone),
        (
            {"destroy_after": NOW + timedelta(days=3), "desired_power": DesiredPower.gone},
            Target.stopped,
            LifecycleState.stopped,
        ),
    ],
)
def test_decisions(changes: dict[str, object], target: Target, state: LifecycleState) -> None:
    t = tenant(**changes)
    decision = decide(t, CATALOG.plan(t.plan), platform_providers=(), now=NOW)
    assert (decision.target, decision.lifecycle) == (target, state)


def test_no_key_is_key_missing_and_a_grace_or_retention_end_is_when_to_look_again() -> None:
    missing = decide(tenant(keys=()), CATALOG.plan("pro"), platform_providers=(), now=NOW)
    assert missing.key_missing and missing.target is Target.stopped
    grace = decide(
        tenant(billing_status=BillingStatus.past_due, billing_grace_until=NOW + timedelta(hours=5)),
        CATALOG.plan("pro"),
        platform_providers=(),
        now=NOW,
    )
    assert grace.look_again_at == NOW + timedelta(hours=5)
    leaving = decide(
        tenant(desired_power=DesiredPower.gone, destroy_after=NOW + timedelta(days=2)),
        CATALOG.plan("pro"),
        platform_providers=(),
        now=NOW,
    )
    assert leaving.look_again_at == NOW + timedelta(days=2)


def test_a_platform_plan_runs_on_the_platform_key_and_stops_without_one() -> None:
    t = tenant(plan="starter", keys=())
    plan = PLATFORM_CATALOG.plan("starter")
    assert decide(t, plan, platform_providers=("moonshot", "minimax"), now=NOW).target is Target.running
    assert decide(t, plan, platform_providers=(), now=NOW).key_missing


@pytest.mark.parametrize("plan_id", ["starter", "pro", "power"])
def test_a_migrated_user_without_a_key_runs_on_the_platform_fallback_for_the_key_grace(plan_id: str) -> None:
    # PRODUCT.md, plan migration: 30 days on the operator's key, then a stop with key_missing.
    plan = CATALOG.plan(plan_id)
    in_grace = tenant(plan=plan_id, keys=(), key_grace_until=NOW + timedelta(days=12))
    running = decide(in_grace, plan, platform_providers=("minimax",), now=NOW)
    assert running.target is Target.running and running.look_again_at == NOW + timedelta(days=12)
    # No platform key offered for the fallback: nothing to run on, whatever the grace says.
    assert decide(in_grace, plan, platform_providers=(), now=NOW).key_missing
    over = tenant(plan=plan_id, keys=(), key_grace_until=NOW - timedelta(seconds=1))
    assert decide(over, plan, platform_providers=("minimax",), now=NOW).key_missing
