"""DeepSeek (llm-providers.md §3.7): status codes; ``GET /user/balance`` says whether it can pay."""

from __future__ import annotations

from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, status=401),
    rule(V.no_credit, status=402),
    rule(V.unknown, status=(400, 422)),
    rule(V.rate_limited, status=429),
    rule(V.overloaded, status=(500, 503)),
)


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe == "balance" and isinstance(body, dict) and body.get("is_available") is False:
        return Outcome(
            V.no_credit,
            says="The key is valid, but the DeepSeek account balance is used up. Top it up.",
        )
    return None


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success)
