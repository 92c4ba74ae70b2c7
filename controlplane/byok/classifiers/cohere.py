"""Cohere (llm-providers.md §3.10): ``POST /v1/check-api-key`` → ``{valid}``; body ``{"message"}``."""

from __future__ import annotations

from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, status=401),
    rule(V.no_credit, status=402),
    rule(
        V.spend_limit,
        status=429,
        message=r"trial key.*(?:month|monthly)|(?:month|monthly).*trial key",
        says="This is a Cohere trial key and its monthly call allowance is used up. Use a "
        "production key or wait for next month.",
        flags=("trial_key",),
    ),
    rule(
        V.rate_limited,
        status=429,
        message=r"trial key",
        says="This is a Cohere trial key and it is over its per-minute limit right now; trial "
        "keys are heavily limited, a production key is recommended.",
        flags=("trial_key",),
    ),
    rule(V.rate_limited, status=429),
    rule(V.unknown, status=(404, 499)),
)


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe == "check" and isinstance(body, dict) and body.get("valid") is False:
        return Outcome(V.invalid_key)
    if probe == "check" and not (isinstance(body, dict) and body.get("valid") is True):
        return Outcome(V.unknown)
    return None


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success)
