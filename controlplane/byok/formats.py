"""Key shape rules per provider (llm-providers.md §2): refuse other key types, warn where unverified.

Order of a check: hygiene (printable ASCII, no whitespace, a length between :data:`MIN_KEY_LEN`
and the rule's ``max_len``: :data:`DEFAULT_MAX_KEY_LEN` for most providers, :data:`MAX_KEY_LEN` for
MiniMax, whose older keys are JWTs of about 700–800 characters) → this provider's
wrong-type rules (admin keys, OAuth tokens) → another provider's unmistakable prefix → the exact
documented pattern (accepted silently) → a near pattern (accepted with a warning) → otherwise
refused if the provider's format is documented (``strict``) or accepted with a warning if it is
[unverified]. Messages name the key type and never echo the key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from controlplane.byok.keyvalue import ProviderKeyValue

MIN_KEY_LEN = 16
#: Longest key most providers issue (their keys are well under 200 characters).
DEFAULT_MAX_KEY_LEN = 512
#: Longest key any rule accepts: MiniMax's older JWT keys (``eyJ…``) run to about 800 characters.
MAX_KEY_LEN = 2048
_PRINTABLE = re.compile(r"^[\x21-\x7e]+$")  # visible ASCII: no spaces, controls or non-ASCII


@dataclass(frozen=True, slots=True)
class WrongType:
    pattern: re.Pattern[str]
    reason: str


@dataclass(frozen=True, slots=True)
class FormatRule:
    """How one provider's keys look."""

    expected: str  # human description, used in messages
    exact: tuple[re.Pattern[str], ...] = ()
    near: tuple[re.Pattern[str], ...] = ()
    wrong_types: tuple[WrongType, ...] = ()
    strict: bool = True  # False where the format is [unverified]: mismatch only warns
    distinctive: re.Pattern[str] | None = None  # a prefix no other provider's keys have
    max_len: int = DEFAULT_MAX_KEY_LEN  # longer keys are refused as "too long"


@dataclass(frozen=True, slots=True)
class FormatCheck:
    accepted: bool
    reason: str | None = None  # why it was refused
    warnings: tuple[str, ...] = field(default=())


def _c(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


RULES: dict[str, FormatRule] = {
    "anthropic": FormatRule(
        expected="an Anthropic API key starting with sk-ant-api03- (108 characters)",
        exact=(_c(r"^sk-ant-api03-[A-Za-z0-9_-]{93}AA$"),),
        near=(_c(r"^sk-ant-api\d{2}-[A-Za-z0-9_-]{20,}$"),),
        wrong_types=(
            WrongType(
                _c(r"^sk-ant-admin\d{2}-"),
                "This is an Anthropic Admin API key (sk-ant-admin01-): it can only read usage and "
                "costs, not call models. Create a normal API key (sk-ant-api03-) in the Console.",
            ),
            WrongType(
                _c(r"^sk-ant-oat\d{2}-"),
                "This is a Claude subscription OAuth token (sk-ant-oat01-), not an API key. "
                "Create an API key (sk-ant-api03-) in the Anthropic Console.",
            ),
        ),
        distinctive=_c(r"^sk-ant-"),
    ),
    "openai": FormatRule(
        expected="an OpenAI API key (sk-proj-…, sk-svcacct-… or a legacy sk-… key)",
        exact=(
            _c(r"^sk-(?:proj|svcacct|None)-[A-Za-z0-9_-]+T3BlbkFJ[A-Za-z0-9_-]+$"),
            _c(r"^sk-[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}$"),
        ),
        near=(_c(r"^sk-(?:proj|svcacct)-[A-Za-z0-9_-]{20,}$"),),
        wrong_types=(
            WrongType(
                _c(r"^sk-admin-"),
                "This is an OpenAI Admin key (sk-admin-): it manages the organisation and cannot "
                "call models. Create a project API key (sk-proj-) instead.",
            ),
        ),
        distinctive=_c(r"^sk-(?:proj|svcacct|admin)-|T3BlbkFJ"),
    ),
    "google": FormatRule(
        expected="a Google API key starting with AIza (39 characters)",
        exact=(_c(r"^AIza[0-9A-Za-z_-]{35}$"),),
        near=(_c(r"^AIza[0-9A-Za-z_-]{20,}$"),),
        distinctive=_c(r"^AIza"),
    ),
    "groq": FormatRule(
        expected="a Groq API key starting with gsk_ (56 characters)",
        exact=(_c(r"^gsk_[A-Za-z0-9]{52}$"),),
        near=(_c(r"^gsk_[A-Za-z0-9]{20,}$"),),
        distinctive=_c(r"^gsk_"),
    ),
    "openrouter": FormatRule(
        expected="an OpenRouter API key starting with sk-or-v1- followed by 64 hex digits",
        exact=(_c(r"^sk-or-v1-[0-9a-f]{64}$"),),
        near=(_c(r"^sk-or-v\d+-[0-9A-Za-z]{20,}$"),),
        distinctive=_c(r"^sk-or-"),
    ),
    "mistral": FormatRule(  # [unverified]: no documented prefix
        expected="a Mistral API key (about 32 letters and digits)",
        exact=(_c(r"^[A-Za-z0-9]{32}$"),),
        strict=False,
    ),
    "deepseek": FormatRule(
        expected="a DeepSeek API key: sk- followed by 32 hex digits",
        exact=(_c(r"^sk-[0-9a-f]{32}$"),),
        near=(_c(r"^sk-[A-Za-z0-9]{20,}$"),),
    ),
    "moonshot": FormatRule(  # [unverified] length
        expected="a Moonshot (Kimi) platform API key: sk- followed by about 48 characters",
        exact=(_c(r"^sk-[A-Za-z0-9]{40,56}$"),),
        strict=False,
    ),
    "minimax": FormatRule(  # [unverified]: newer sk-… keys, older JWTs
        expected="a MiniMax API key (sk-… or an older eyJ… token)",
        exact=(
            _c(r"^sk-[A-Za-z0-9_-]{20,}$"),
            _c(r"^eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$"),
        ),
        strict=False,
        max_len=MAX_KEY_LEN,  # older JWT keys are ~700-800 characters
    ),
    "cohere": FormatRule(  # [unverified]: no documented prefix
        expected="a Cohere API key (about 40 letters and digits)",
        exact=(_c(r"^[A-Za-z0-9]{40}$"),),
        strict=False,
    ),
    "xai": FormatRule(
        expected="an xAI API key starting with xai- (84 characters)",
        exact=(_c(r"^xai-[0-9A-Za-z_]{80}$"),),
        near=(_c(r"^xai-[0-9A-Za-z_]{20,}$"),),
        distinctive=_c(r"^xai-"),
    ),
}


def _looks_like_other(provider_id: str, key: str) -> str | None:
    from agents_config.providers import get_provider

    for other, rule in RULES.items():
        if other != provider_id and rule.distinctive is not None and rule.distinctive.search(key):
            return get_provider(other).display_name
    return None


def check_format(provider_id: str, key: ProviderKeyValue) -> FormatCheck:
    """Check the shape of ``key`` for ``provider_id`` (``KeyError`` for an unknown provider)."""
    from agents_config.providers import get_provider

    name = get_provider(provider_id).display_name
    rule = RULES[provider_id]
    value = key.reveal()
    if not value:
        return FormatCheck(False, "The key is empty.")
    if not _PRINTABLE.match(value):
        return FormatCheck(
            False,
            "The key contains spaces, line breaks or characters that are not plain ASCII; "
            "copy it again without them.",
        )
    if len(value) < MIN_KEY_LEN:
        return FormatCheck(False, f"The key is too short to be {rule.expected}.")
    if len(value) > rule.max_len:
        return FormatCheck(False, f"The key is too long to be {rule.expected}.")
    for wrong in rule.wrong_types:
        if wrong.pattern.search(value):
            return FormatCheck(False, wrong.reason)
    other = _looks_like_other(provider_id, value)
    if other is not None:
        return FormatCheck(
            False, f"This looks like a {other} key, not {rule.expected}. Save it under {other}."
        )
    if any(p.match(value) for p in rule.exact):
        return FormatCheck(True)
    if any(p.match(value) for p in rule.near):
        return FormatCheck(
            True, warnings=(f"The key does not have the usual shape of {rule.expected}; {name} will decide.",)
        )
    if rule.strict:
        return FormatCheck(False, f"This does not look like {rule.expected}.")
    return FormatCheck(
        True,
        warnings=(
            f"The key does not match the usual shape of {rule.expected} "
            f"(the format is not documented, so only {name} can tell).",
        ),
    )


__all__ = [
    "DEFAULT_MAX_KEY_LEN",
    "FormatCheck",
    "FormatRule",
    "MAX_KEY_LEN",
    "MIN_KEY_LEN",
    "RULES",
    "WrongType",
    "check_format",
]
