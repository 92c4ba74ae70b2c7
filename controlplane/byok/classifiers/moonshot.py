"""Moonshot / Kimi (llm-providers.md §3.8): decide on ``error.type``; keys are region-bound (.ai / .cn).

``GET /users/me/balance`` is authenticated: a 200 there proves the key even when ``/models``
answered 404 ``resource_not_found_error`` (models can be hidden until the first recharge), and an
``available_balance`` of zero or less means ``no_credit``.
"""

from __future__ import annotations

from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, as_number, rule

_NO_CREDIT = (
    "The key is valid, but the Moonshot account balance is used up (the account is suspended "
    "until it is recharged). Top it up."
)

RULES = (
    rule(V.invalid_key, codes=("invalid_authentication_error", "incorrect_api_key_error")),
    # Billing before rate limit: both arrive as 429 (some help pages say 403); match by type.
    rule(V.no_credit, codes="exceeded_current_quota_error", says=_NO_CREDIT),
    rule(V.no_credit, message=r"suspended due to insufficient balance", says=_NO_CREDIT),
    rule(V.permission, codes="permission_denied_error"),
    rule(
        V.unknown,
        codes="resource_not_found_error",
        says="Moonshot did not find the resource used for the check (models can be hidden "
        "until the first recharge). It will be checked again later.",
    ),
    rule(V.rate_limited, codes="rate_limit_reached_error"),
    rule(V.overloaded, codes=("engine_overloaded_error", "server_error")),
    rule(V.unknown, codes=("content_filter", "invalid_request_error")),
)


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe != "balance" or not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    available = as_number(body["data"].get("available_balance"))
    if available is not None and available <= 0:
        return Outcome(V.no_credit, says=_NO_CREDIT)
    return None


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success)
