"""OpenRouter (llm-providers.md §3.5): ``GET /key`` gives validity, per-key cap, free tier and expiry."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from controlplane.byok.classifiers._engine import Outcome, ProviderClassifier, V, rule

RULES = (
    rule(
        V.no_credit,
        codes="openrouter_credits",
        says="The key is valid, but the OpenRouter account has no credit (a negative balance "
        "blocks even free models). Top it up.",
    ),
    rule(
        V.spend_limit,
        codes="openrouter_key_limit",
        says="The key is valid, but it has reached the credit limit set on this key in "
        "OpenRouter. Raise the key's limit.",
    ),
    rule(
        V.spend_limit,
        status=403,
        message=r"key limit exceeded",
        says="The key is valid, but it has reached the credit limit set on this key in "
        "OpenRouter. Raise the key's limit.",
    ),
    rule(V.permission, status=403, message=r"moderation|flagged|guardrail|permission"),
    rule(V.no_credit, status=402),
    rule(V.overloaded, status=(408, 502, 503)),
)


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def on_success(probe: str, body: Any) -> Outcome | None:
    if probe != "key" or not isinstance(body, dict) or not isinstance(body.get("data"), dict):
        return None
    data = body["data"]
    flags = ("free_tier",) if data.get("is_free_tier") is True else ()
    if data.get("is_management_key") is True:
        # [unverified] whether management keys can run inference: treated as the wrong key type.
        return Outcome(
            V.permission,
            says="This is an OpenRouter management key, made for managing keys, not for calling "
            "models. Create a normal API key and paste that.",
        )
    expires = _parse_time(data.get("expires_at"))
    if expires is not None and expires <= datetime.now(UTC):
        return Outcome(V.revoked_or_blocked, says="This OpenRouter key has expired. Create a new key.")
    remaining = data.get("limit_remaining")
    if (
        data.get("limit") is not None
        and isinstance(remaining, (int, float))
        and not isinstance(remaining, bool)
        and remaining <= 0
    ):
        return Outcome(
            V.spend_limit,
            says="The key is valid, but it has used its whole credit limit set in OpenRouter. "
            "Raise the key's limit (or wait for it to reset).",
            flags=flags,
        )
    return Outcome(V.ok, flags=flags) if flags else None


CLASSIFIER = ProviderClassifier(rules=RULES, on_success=on_success)
