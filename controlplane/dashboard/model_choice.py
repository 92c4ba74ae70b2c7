"""Which model the agent uses: the plan's allowed models, the tenant's keys, preference and strategy.

Pure: the options and a routing preview are computed from the plan, the status of the tenant's
stored keys and its preference, with :func:`agents_config.routing.route_models` (the same routing
the generated config uses). Given the providers the operator offers platform keys for
(``CP_PLATFORM_KEYS``), the preview routes exactly as the agent's config will; without that list it
assumes every provider the plan names for the operator's key (a platform plan's providers, a BYOK
plan's platform fallback) is offered.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Literal

from agents_config.catalog import Plan
from agents_config.models import MODEL_REFS, MODELS
from agents_config.routing import NoUsableModelError, RoutingDecision, route_models
from agents_config.spec import Strategy
from controlplane.enums import KeyStatus, RoutingStrategy
from controlplane.errors import BadInput

KeyState = Literal["usable", "missing", "broken", "platform"]

_STRATEGY: dict[RoutingStrategy, Strategy] = {
    RoutingStrategy.aggressive: "aggressive",
    RoutingStrategy.balanced: "balanced",
    RoutingStrategy.quality_first: "quality_first",
}


@dataclass(frozen=True, slots=True)
class ModelOption:
    ref: str
    provider: str
    name: str
    quality: int  # 1 basic … 4 frontier
    cost_rank: int  # higher = dearer
    key: KeyState  # whether the tenant's key for this provider can run it now


@dataclass(frozen=True, slots=True)
class ModelChoice:
    model: str | None  # the tenant's preference, or None for the plan's default
    strategy: RoutingStrategy
    plan: str
    plan_default: str | None
    options: tuple[ModelOption, ...]
    routing: RoutingDecision | None
    problem: str | None  # why nothing can be routed, when routing is None


def platform_providers(plan: Plan) -> tuple[str, ...]:
    """Providers the plan runs on the operator's key (assumed offered)."""
    policy = plan.models
    if plan.key_mode == "platform":
        if policy.allowed_providers is not None:
            return policy.allowed_providers
        return tuple(sorted({MODELS[r].provider for r in (policy.default_model,) if r is not None}))
    if policy.platform_fallback is not None:
        return (MODELS[policy.platform_fallback].provider,)
    return ()


def selectable(plan: Plan) -> tuple[str, ...]:
    """Models the tenant may choose as its primary (a BYOK plan's platform fallback never is)."""
    return tuple(
        ref
        for ref in MODEL_REFS
        if plan.models.allows(ref) and not (plan.key_mode == "byok" and ref == plan.models.platform_fallback)
    )


def check_model(plan: Plan, ref: str | None) -> None:
    """:class:`BadInput` naming ``model`` unless ``ref`` is None or selectable on ``plan``."""
    if ref is None:
        return
    if ref not in MODELS:
        raise BadInput("model", "unknown model; choose one of the plan's options (GET .../model)")
    if ref not in selectable(plan):
        raise BadInput("model", f"not available on the {plan.display_name} plan")


def _key_state(plan: Plan, provider: str, keys: Mapping[str, KeyStatus]) -> KeyState:
    if plan.key_mode == "platform":
        return "platform"
    status = keys.get(provider)
    if status is None:
        return "missing"
    return "broken" if status is KeyStatus.broken else "usable"


def model_choice(
    plan: Plan,
    keys: Mapping[str, KeyStatus],
    model: str | None,
    strategy: RoutingStrategy,
    platform_keys: Collection[str] | None = None,
) -> ModelChoice:
    """Options and routing preview for a tenant with ``keys`` (provider → stored key status);
    ``platform_keys``: the providers the operator offers its own key for (None: assume the plan's)."""
    options = tuple(
        ModelOption(
            ref,
            MODELS[ref].provider,
            MODELS[ref].name,
            MODELS[ref].quality,
            MODELS[ref].cost_rank,
            _key_state(plan, MODELS[ref].provider, keys),
        )
        for ref in selectable(plan)
    )
    usable = [p for p, status in keys.items() if status is not KeyStatus.broken]
    routing: RoutingDecision | None
    try:
        routing = route_models(
            plan,
            byok_providers=usable,
            platform_keys=platform_providers(plan) if platform_keys is None else tuple(platform_keys),
            chosen_model=model if model in MODELS else None,
            strategy=_STRATEGY[strategy],
        )
        problem = None
    except NoUsableModelError as exc:
        routing, problem = None, str(exc)
    return ModelChoice(model, strategy, plan.id, plan.models.default_model, options, routing, problem)


__all__ = [
    "KeyState",
    "ModelChoice",
    "ModelOption",
    "check_model",
    "model_choice",
    "platform_providers",
    "selectable",
]
