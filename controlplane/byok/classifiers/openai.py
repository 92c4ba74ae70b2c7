"""OpenAI (llm-providers.md §3.2): ``error.code``/``type`` and message; billing before rate limit."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(
        V.revoked_or_blocked,
        message=r"must be a member of an organi[sz]ation",
        says="OpenAI says this key's user is no longer a member of an organisation, so the key "
        "no longer works. Create a new key in an organisation you belong to.",
    ),
    rule(
        V.permission,
        message=r"\bIP\b.*not authori[sz]ed|not authori[sz]ed.*\bIP\b",
        says="The key is valid, but its project only allows certain IP addresses. Allow the "
        "control plane's addresses or use a key without an IP allowlist.",
    ),
    rule(
        V.permission,
        message=r"insufficient permissions|missing scopes",
        says="The key is a restricted key without permission to call models (model.request). "
        "Give it that permission or use an unrestricted project key.",
    ),
    rule(
        V.permission,
        codes="unsupported_country_region_territory",
        says="OpenAI does not serve this key's country, region or territory.",
    ),
    rule(
        V.permission,
        codes="model_not_found",
        says="The key's project has no access to the model used for the check.",
    ),
    # Billing before rate limit: OpenAI reports "no credit" as 429 insufficient_quota.
    rule(V.no_credit, codes=("insufficient_quota", "credit_balance_exhausted", "billing_hard_limit_reached")),
    rule(V.no_credit, message=r"exceeded your current quota"),
    rule(V.invalid_key, codes="invalid_api_key"),
    rule(V.invalid_key, message=r"incorrect api key provided"),
    rule(V.rate_limited, codes=("rate_limit_exceeded", "requests", "tokens")),
    rule(V.overloaded, codes=("slow_down", "server_error", "engine_overloaded")),
    rule(V.overloaded, message=r"overloaded"),
    rule(V.unknown, status=404),
)

CLASSIFIER = ProviderClassifier(rules=RULES)
