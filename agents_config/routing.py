"""Model routing: usable keys + plan policy + tenant preference + strategy → primary and fallbacks.

Rules (deterministic; candidates are always visited in sorted ref order, never dict/set order):

1. Usable providers: on a ``platform`` plan, the providers in ``platform_keys``; on a ``byok`` plan,
   the providers in ``byok_providers``; in both cases only those the plan allows.
2. Candidates: the catalog models (``agents_config.models``) of usable providers the plan allows.
3. Ranking. Each strategy has a quality floor ("good enough"): aggressive 2 (standard), balanced 3
   (strong), quality_first 4 (frontier). Sort key: (-min(quality, floor), cost_rank, -quality, ref),
   i.e. among models that are good enough the cheapest wins.
4. Primary: the tenant's chosen model if it is a candidate, else the plan's default model if it is a
   candidate, else the best ranked.
5. Fallbacks: the best model of every other provider first (a failing key takes a whole provider
   down), then the rest in rank order; at most :data:`MAX_FALLBACKS`. On ``platform`` plans (the
   operator pays) a fallback never costs more than the primary (``cost_rank``): e.g. Sonnet never
   falls back to Opus automatically; the dearer model stays selectable (it is still a candidate).
6. Platform fallback (byok plans that name one, when the operator's key for its provider is offered
   and the tenant has no own key for that provider, since both would use the same variable): last
   in the chain; it becomes the primary when no BYOK key is usable (e.g. during a migration grace).
7. Nothing usable → :class:`NoUsableModelError` (the caller keeps the tenant ``pending``/key_missing).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal

from agents_config.catalog import Plan
from agents_config.models import (
    MODEL_REFS,
    MODELS,
    QUALITY_FRONTIER,
    QUALITY_STANDARD,
    QUALITY_STRONG,
    ModelInfo,
)
from agents_config.spec import Strategy

MAX_FALLBACKS = 3
QUALITY_FLOOR: dict[str, int] = {
    "aggressive": QUALITY_STANDARD,
    "balanced": QUALITY_STRONG,
    "quality_first": QUALITY_FRONTIER,
}

KeySource = Literal["byok", "platform"]


class NoUsableModelError(ValueError):
    """No model can be routed: no usable key for any model the plan allows."""


@dataclass(frozen=True, slots=True)
class RoutingDecision:
    primary: str
    fallbacks: tuple[str, ...]
    key_sources: tuple[tuple[str, KeySource], ...]  # (provider, whose key), sorted by provider
    candidates: tuple[str, ...]  # every routable model (sorted), for the model-override allowlist
    notes: tuple[str, ...] = ()  # why a preference was not honoured, etc.
    platform_fallback: str | None = None  # the byok plan's platform model, when it is in the chain

    @property
    def on_platform_fallback(self) -> bool:
        """The primary runs on the operator's key of a byok plan (no usable own key: the grace)."""
        return self.platform_fallback is not None and self.primary == self.platform_fallback

    @property
    def own_key_candidates(self) -> tuple[str, ...]:
        """Candidates that run on the tenant's own keys (byok) or the plan's keys (platform plan)."""
        return tuple(ref for ref in self.candidates if ref != self.platform_fallback)

    @property
    def chain(self) -> tuple[str, ...]:
        return (self.primary, *self.fallbacks)

    @property
    def providers(self) -> tuple[str, ...]:
        return tuple(provider for provider, _ in self.key_sources)

    def key_source(self, provider: str) -> KeySource:
        return dict(self.key_sources)[provider]


def _rank_key(model: ModelInfo, floor: int) -> tuple[int, int, int, str]:
    return (-min(model.quality, floor), model.cost_rank, -model.quality, model.ref)


def _diversified(ranked: list[ModelInfo], primary_provider: str) -> list[ModelInfo]:
    seen = {primary_provider}
    leaders: list[ModelInfo] = []
    for m in ranked:
        if m.provider not in seen:
            seen.add(m.provider)
            leaders.append(m)
    return leaders + [m for m in ranked if m not in leaders]


def route_models(
    plan: Plan,
    *,
    byok_providers: Iterable[str],
    platform_keys: Iterable[str],
    chosen_model: str | None,
    strategy: Strategy,
) -> RoutingDecision:
    policy = plan.models
    byok = tuple(sorted(set(byok_providers)))
    platform = tuple(sorted(set(platform_keys)))
    notes: list[str] = []

    if plan.key_mode == "platform":
        source: KeySource = "platform"
        keyed = platform
        if byok:
            notes.append("plan runs on the platform key; the tenant's own keys are not used")
    else:
        source = "byok"
        keyed = byok
    candidates = [MODELS[ref] for ref in MODEL_REFS if MODELS[ref].provider in keyed and policy.allows(ref)]
    floor = QUALITY_FLOOR[strategy]
    ranked = sorted(candidates, key=lambda m: _rank_key(m, floor))

    fallback_ref = policy.platform_fallback if plan.key_mode == "byok" else None
    platform_ref: str | None = None
    if fallback_ref is not None:
        provider = MODELS[fallback_ref].provider
        if provider not in platform:
            notes.append(f"platform fallback {fallback_ref} not offered (no platform key for {provider})")
        elif provider in byok:
            notes.append(
                f"platform fallback {fallback_ref} skipped: the tenant's own {provider} key uses the same variable"
            )
        else:
            platform_ref = fallback_ref

    if not ranked and platform_ref is None:
        allowed = (
            ", ".join(policy.allowed_models)
            if policy.allowed_models is not None
            else ", ".join(policy.allowed_providers or ("any provider",))
        )
        raise NoUsableModelError(
            f"plan {plan.id!r}: no usable model: usable {source} keys for "
            f"[{', '.join(keyed) or 'none'}], plan allows {allowed}"
        )

    if ranked:
        by_ref = {m.ref: m for m in ranked}
        if chosen_model is not None and chosen_model not in by_ref:
            notes.append(f"chosen model {chosen_model} is not usable on this plan with these keys")
        if chosen_model in by_ref:
            primary = by_ref[chosen_model]
        elif policy.default_model in by_ref:
            primary = by_ref[policy.default_model]
        else:
            primary = ranked[0]
        others = [m for m in ranked if m is not primary]
        if plan.key_mode == "platform":
            dearer = [m.ref for m in others if m.cost_rank > primary.cost_rank]
            if dearer:
                notes.append(
                    f"not an automatic fallback (costs more than {primary.ref}): {', '.join(dearer)}"
                )
            others = [m for m in others if m.cost_rank <= primary.cost_rank]
        rest = _diversified(others, primary.provider)
        chain = [primary.ref, *(m.ref for m in rest[:MAX_FALLBACKS])]
    else:
        notes.append(f"no usable {source} key: running on the platform fallback {platform_ref}")
        chain = []
    if platform_ref is not None:
        chain.append(platform_ref)

    sources: dict[str, KeySource] = {}
    for ref in chain:
        provider = MODELS[ref].provider
        sources[provider] = "platform" if ref == platform_ref else source
    routable = sorted({m.ref for m in ranked} | ({platform_ref} if platform_ref else set()))
    return RoutingDecision(
        primary=chain[0],
        fallbacks=tuple(chain[1:]),
        key_sources=tuple(sorted(sources.items())),
        candidates=tuple(routable),
        notes=tuple(notes),
        platform_fallback=platform_ref,
    )


__all__ = ["MAX_FALLBACKS", "QUALITY_FLOOR", "NoUsableModelError", "RoutingDecision", "route_models"]
