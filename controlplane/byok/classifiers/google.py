"""Google Gemini (llm-providers.md §3.3): a bad key is HTTP 400 ``API_KEY_INVALID``, not 401."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, codes="api_key_invalid"),
    rule(
        V.invalid_key,
        message=r"api key expired",
        says="Google says this API key has expired. Renew it or create a new one in Google AI Studio.",
    ),
    rule(
        V.revoked_or_blocked,
        message=r"reported as leaked",
        says="Google blocked this key because it was reported as leaked. Create a new key in "
        "Google AI Studio and keep it private.",
    ),
    rule(
        V.no_credit,
        codes="failed_precondition",
        says="The key is valid, but the Gemini free tier is not available for this account or "
        "country: enable billing on the Google Cloud project.",
    ),
    rule(
        V.permission,
        codes=(
            "permission_denied",
            "api_key_service_blocked",
            "service_disabled",
            "api_key_http_referrer_blocked",
        ),
        says="The key is valid but not allowed to use the Generative Language API (API not "
        "enabled, or the key is restricted to other APIs or referrers).",
    ),
    rule(
        V.spend_limit,
        codes="resource_exhausted",
        body=r"PerDay",
        says="The key has used up its daily Gemini quota; it resets tomorrow (or enable billing).",
    ),
    rule(V.rate_limited, codes="resource_exhausted"),
    rule(V.overloaded, codes=("internal", "deadline_exceeded", "unavailable")),
    rule(V.invalid_key, message=r"api key not valid"),
    rule(V.unknown, codes="invalid_argument"),
)

CLASSIFIER = ProviderClassifier(rules=RULES)
