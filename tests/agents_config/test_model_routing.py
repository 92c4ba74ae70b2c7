"""Model routing: strategies, preference, platform fallback, determinism, no-usable-model error."""

from __future__ import annotations

import pytest

from agents_config.routing import MAX_FALLBACKS, NoUsableModelError, route_models
from tests.support.agent_configs import default_catalog, platform_catalog


def route(plan_id: str, *, catalog=None, byok=(), platform=(), chosen=None, strategy="balanced"):
    plan = (catalog or default_catalog()).plan(plan_id)
    return route_models(
        plan, byok_providers=byok, platform_keys=platform, chosen_model=chosen, strategy=strategy
    )


KEYS = ("anthropic", "deepseek", "openai")


def test_strategies_pick_cheapest_good_enough() -> None:
    assert route("pro", byok=KEYS, strategy="aggressive").primary == "deepseek/deepseek-v4-flash"
    assert route("pro", byok=KEYS, strategy="balanced").primary == "deepseek/deepseek-v4-pro"
    assert route("pro", byok=KEYS, strategy="quality_first").primary == "openai/gpt-5.4"


def test_fallbacks_cover_other_providers_first_and_are_capped() -> None:
    decision = route("pro", byok=KEYS, strategy="quality_first")
    assert len(decision.fallbacks) == MAX_FALLBACKS
    assert {r.split("/")[0] for r in decision.fallbacks[:2]} == {"anthropic", "deepseek"}
    assert decision.primary not in decision.fallbacks
    assert decision.key_sources == (("anthropic", "byok"), ("deepseek", "byok"), ("openai", "byok"))


def test_chosen_model_wins_when_usable_and_is_noted_otherwise() -> None:
    assert (
        route("pro", byok=KEYS, chosen="anthropic/claude-haiku-4-5").primary == "anthropic/claude-haiku-4-5"
    )
    decision = route("pro", byok=KEYS, chosen="xai/grok-4.3")
    assert decision.primary != "xai/grok-4.3"
    assert any("grok-4.3" in note for note in decision.notes)


def test_platform_plans_use_platform_keys_and_default_model() -> None:
    starter = route("starter", catalog=platform_catalog(), platform=("minimax", "moonshot"), byok=("openai",))
    assert starter.chain == ("moonshot/kimi-k2.5", "minimax/MiniMax-M2.1")
    assert starter.key_sources == (("minimax", "platform"), ("moonshot", "platform"))
    premium = route("premium", catalog=platform_catalog(), platform=("anthropic",), strategy="quality_first")
    # the operator pays: Sonnet never falls back to the dearer Opus automatically, Opus stays selectable
    assert premium.chain == ("anthropic/claude-sonnet-4-6",)
    assert "anthropic/claude-opus-4-6" in premium.candidates
    assert any("claude-opus-4-6" in n and "costs more" in n for n in premium.notes)
    opus = route(
        "premium", catalog=platform_catalog(), platform=("anthropic",), chosen="anthropic/claude-opus-4-6"
    )
    assert opus.chain == ("anthropic/claude-opus-4-6", "anthropic/claude-sonnet-4-6")  # cheaper is fine


@pytest.mark.parametrize("strategy", ["aggressive", "balanced", "quality_first"])
@pytest.mark.parametrize(
    "chosen",
    [
        None,
        "moonshot/kimi-k2.5",
        "minimax/MiniMax-M2.1",
        "anthropic/claude-opus-4-6",
        "anthropic/claude-sonnet-4-6",
    ],
)
def test_platform_fallbacks_never_cost_more_than_the_primary(strategy: str, chosen: str | None) -> None:
    from agents_config.models import MODELS

    for plan_id, keys in (("starter", ("minimax", "moonshot")), ("premium", ("anthropic",))):
        decision = route(plan_id, catalog=platform_catalog(), platform=keys, chosen=chosen, strategy=strategy)
        primary_cost = MODELS[decision.primary].cost_rank
        assert all(MODELS[r].cost_rank <= primary_cost for r in decision.fallbacks), decision


def test_byok_plan_appends_platform_fallback_last() -> None:
    decision = route("byok", catalog=platform_catalog(), byok=("openai",), platform=("minimax",))
    assert decision.fallbacks[-1] == "minimax/MiniMax-M2.1"
    assert decision.key_source("minimax") == "platform" and decision.key_source("openai") == "byok"


def test_platform_fallback_is_primary_when_no_own_key() -> None:
    decision = route("byok", catalog=platform_catalog(), platform=("minimax",))
    assert decision.chain == ("minimax/MiniMax-M2.1",)
    assert decision.on_platform_fallback and decision.own_key_candidates == ()
    with_key = route("byok", catalog=platform_catalog(), byok=("openai",), platform=("minimax",))
    assert with_key.platform_fallback == "minimax/MiniMax-M2.1" and not with_key.on_platform_fallback
    assert "minimax/MiniMax-M2.1" not in with_key.own_key_candidates
    assert any("platform fallback" in n for n in decision.notes)


def test_platform_fallback_skipped_when_own_key_shares_the_variable() -> None:
    decision = route("byok", catalog=platform_catalog(), byok=("minimax",), platform=("minimax",))
    assert decision.key_sources == (("minimax", "byok"),)
    assert any("same variable" in n for n in decision.notes)


def test_no_usable_model_is_a_clear_error() -> None:
    with pytest.raises(NoUsableModelError, match="plan 'starter': no usable model"):
        route("starter")
    with pytest.raises(NoUsableModelError, match="kimi"):
        route("starter", catalog=platform_catalog(), platform=("anthropic",))
    with pytest.raises(NoUsableModelError):
        route("byok", catalog=platform_catalog(), byok=())  # no platform key offered either


def test_routing_is_independent_of_input_order() -> None:
    a = route("power", byok=("xai", "google", "mistral", "anthropic"), strategy="aggressive")
    b = route("power", byok=["anthropic", "mistral", "google", "xai", "google"], strategy="aggressive")
    assert a == b
