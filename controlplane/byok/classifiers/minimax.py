"""MiniMax (llm-providers.md §3.9): ``base_resp.status_code`` (checked even on HTTP 200), and
Anthropic-shaped errors on the ``/anthropic`` route (``api_error`` "system error (1033)").

Plan (token / coding plan) keys: ``GET /v1/token_plan/remains`` lists ``model_remains``. A plan
whose every model has nothing left in the current window is ``spend_limit``; otherwise the key is
flagged ``plan_key``. Only explicit counts are read (``current_interval_remaining_count`` /
``current_interval_remains_count``, or total minus ``current_interval_used_count``):
``current_interval_usage_count`` means "remaining" in older answers and "used" in others, so it
is never used to call a plan exhausted.
"""

from __future__ import annotations

from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, as_number, rule

_PLAN_USED_UP = (
    "The key is valid, but the MiniMax plan's usage limit for the current window is used up; "
    "it resets at the end of the window."
)

RULES = (
    rule(V.invalid_key, codes=("1004", "2049")),
    rule(V.no_credit, codes="1008"),
    rule(V.no_credit, codes=("1028", "1030")),  # [unverified] quota codes, per MiniMax CLI
    rule(V.spend_limit, codes="2056", says=_PLAN_USED_UP),
    rule(V.permission, codes="2061", says="The key's MiniMax plan does not include this model."),
    rule(V.rate_limited, codes=("1002", "1039", "1041")),
    rule(V.overloaded, codes=("1001", "1024", "1033")),
    rule(V.unknown, codes=("1000", "1026", "1027", "2013")),
    rule(V.invalid_key, codes="authentication_error"),
    rule(V.invalid_key, status=(401, 403)),  # per MiniMax CLI: key rejected
    rule(V.rate_limited, codes="rate_limit_error"),
    rule(V.overloaded, codes=("api_error", "overloaded_error")),
)


def _remaining(entry: dict[str, Any]) -> float | None:
    for name in ("current_interval_remaining_count", "current_interval_remains_count"):
        value = as_number(entry.get(name))
        if value is not None:
            return value
    total = as_number(entry.get("current_interval_total_count"))
    used = as_number(entry.get("current_interval_used_count"))
    if total is not None and used is not None:
        return total - used
    return None


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe != "plan" or not isinstance(body, dict):
        return None
    entries = body.get("model_remains")
    if entries is None and isinstance(body.get("data"), dict):
        entries = body["data"].get("model_remains")
    if not isinstance(entries, list) or not entries:
        return None
    remaining = [_remaining(e) if isinstance(e, dict) else None for e in entries]
    if all(r is not None and r <= 0 for r in remaining):
        return Outcome(V.spend_limit, says=_PLAN_USED_UP, flags=("plan_key",))
    return Outcome(V.ok, flags=("plan_key",))


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success, errors_on_200=True)
