"""Groq (llm-providers.md §3.4): OpenAI-style body; 498 ``capacity_exceeded`` on the flex tier."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, codes="invalid_api_key"),
    rule(V.rate_limited, codes="capacity_exceeded"),
    rule(V.unknown, codes="model_not_found"),
    # The paid tier's spend-limit code is [unverified]: match the wording, before rate limits.
    rule(V.spend_limit, message=r"spend(?:ing)? limit|usage limit"),
    rule(V.no_credit, codes=("insufficient_quota",)),
    rule(V.rate_limited, codes=("rate_limit_exceeded", "requests", "tokens")),
    rule(V.rate_limited, status=498),
    rule(V.unknown, status=(404, 413, 422)),
)

CLASSIFIER = ProviderClassifier(rules=RULES)
