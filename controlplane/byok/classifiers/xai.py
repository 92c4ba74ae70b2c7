"""xAI (llm-providers.md §3.11): body ``{"code", "error"}``; ``GET /api-key`` carries blocked flags."""

from __future__ import annotations

from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, status=400, message=r"incorrect api key"),
    rule(V.invalid_key, status=401),
    rule(
        V.no_credit,
        status=403,
        message=r"credits|licen[cs]es",
        says="The key is valid, but the xAI team has no credits yet. Buy credits in the xAI console.",
    ),
    rule(V.revoked_or_blocked, status=403, message=r"blocked|disabled"),
    rule(V.permission, status=403, message=r"\bacls?\b|permission|not authori[sz]ed|access"),
    rule(
        V.spend_limit,
        status=429,
        message=r"spending limit|spend limit",
        says="The key is valid, but the xAI team has reached its monthly spending limit. Raise "
        "it in the xAI console or wait for next month.",
    ),
    rule(V.rate_limited, status=429),
    rule(V.unknown, status=(404, 405, 415, 422)),
)


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe != "api_key" or not isinstance(body, dict):
        return None
    if any(body.get(flag) is True for flag in ("api_key_blocked", "api_key_disabled", "team_blocked")):
        return Outcome(
            V.revoked_or_blocked,
            says="xAI reports this key (or its team) as blocked or disabled. Create a new key or "
            "contact xAI support.",
        )
    return None


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success)
