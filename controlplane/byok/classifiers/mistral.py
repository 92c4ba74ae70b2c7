"""Mistral (llm-providers.md §3.6): ``{"object": "error", "type", "code", "message"}``; decide on status."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, status=401),
    rule(V.no_credit, status=402),
    rule(
        V.permission,
        status=403,
        says="The key is valid but not allowed to use this model or workspace (check your "
        "Mistral subscription tier and workspace permissions).",
    ),
    rule(V.unknown, status=(404, 422)),
    rule(V.invalid_key, codes="authentication_error"),
    rule(V.rate_limited, codes="rate_limit_error"),
    rule(V.overloaded, codes="server_error"),
)

CLASSIFIER = ProviderClassifier(rules=RULES)
