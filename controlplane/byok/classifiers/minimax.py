"""MiniMax (reference §3.9): ``base_resp.status_code`` (checked even on HTTP 200), and
Anthropic-shaped errors on the ``/anthropic`` route (``api_error`` "system error (1033)")."""

from controlplane.byok.classifiers._engine import ProviderClassifier, V, rule

RULES = (
    rule(V.invalid_key, codes=("1004", "2049")),
    rule(V.no_credit, codes="1008"),
    rule(V.no_credit, codes=("1028", "1030")),  # [unverified] quota codes, per MiniMax CLI
    rule(
        V.spend_limit,
        codes="2056",
        says="The key is valid, but the MiniMax plan's usage limit for the current window is "
        "used up; it resets at the end of the window.",
    ),
    rule(V.permission, codes="2061", says="The key's MiniMax plan does not include this model."),
    rule(V.rate_limited, codes=("1002", "1039", "1041")),
    rule(V.overloaded, codes=("1001", "1024", "1033")),
    rule(V.unknown, codes=("1000", "1026", "1027", "2013")),
    rule(V.invalid_key, codes="authentication_error"),
    rule(V.invalid_key, status=(401, 403)),  # per MiniMax CLI: key rejected
    rule(V.rate_limited, codes="rate_limit_error"),
    rule(V.overloaded, codes=("api_error", "overloaded_error")),
)

CLASSIFIER = ProviderClassifier(rules=RULES, errors_on_200=True)
