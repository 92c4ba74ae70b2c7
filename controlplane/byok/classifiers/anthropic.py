"""Anthropic (llm-providers.md §3.1): decide on ``error.type`` + message."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, codes="authentication_error"),
    rule(V.no_credit, codes="billing_error"),
    rule(V.no_credit, codes="invalid_request_error", message=r"credit balance is too low"),
    rule(
        V.spend_limit,
        codes="invalid_request_error",
        message=r"reached your specified (?:workspace )?api usage limits?",
        says="The key is valid, but it has reached the API usage limit set in your Anthropic "
        "Console; access returns on the date Anthropic gives, or raise the limit.",
        quote=True,
    ),
    rule(
        V.permission,
        codes="permission_error",
        says="The key is valid but not allowed to use this model or workspace. Check the key's "
        "workspace and model access in the Anthropic Console.",
    ),
    rule(V.unknown, codes="not_found_error"),
    rule(V.rate_limited, codes="rate_limit_error"),
    rule(V.overloaded, codes=("api_error", "timeout_error", "overloaded_error")),
    rule(V.overloaded, status=529),
)

CLASSIFIER = ProviderClassifier(rules=RULES)
