"""Key shapes per provider: accepted, accepted with a warning, refused (and why)."""

from __future__ import annotations

import pytest

from agents_config.providers import PROVIDER_IDS
from controlplane.byok.catalog import CATALOG
from controlplane.byok.formats import DEFAULT_MAX_KEY_LEN, MAX_KEY_LEN, RULES, check_format
from controlplane.byok.keyvalue import ProviderKeyValue
from tests.support.byok_fakes import ALNUM, HEX, chars, join, valid_key


def check(provider: str, key: str):  # type: ignore[no-untyped-def]
    return check_format(provider, ProviderKeyValue(key))


def test_catalog_covers_every_provider_of_agents_config() -> None:
    assert set(CATALOG) == set(PROVIDER_IDS)
    for spec in CATALOG.values():
        assert spec.env_var.endswith("_API_KEY")
        assert spec.probes and spec.probes[0].kind.value == "auth"


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_documented_shape_is_accepted_without_warning(provider: str) -> None:
    result = check(provider, valid_key(provider))
    assert result.accepted and result.warnings == (), result


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_pasted_whitespace_around_the_key_is_ignored(provider: str) -> None:
    assert check(provider, "  " + valid_key(provider) + "\n").accepted


ACCEPTED_WITH_WARNING = [
    ("anthropic", lambda: join("sk-ant-", "api04-", chars(60, ALNUM))),
    ("openai", lambda: join("sk-", "proj-", chars(60, ALNUM))),  # no T3BlbkFJ marker
    ("google", lambda: join("AI", "za", chars(30, ALNUM))),
    ("groq", lambda: join("gs", "k_", chars(40, ALNUM))),
    ("openrouter", lambda: join("sk-", "or-v2-", chars(64, HEX))),
    ("deepseek", lambda: join("sk-", chars(40, ALNUM))),
    ("xai", lambda: join("xa", "i-", chars(60, ALNUM))),
    # [unverified] formats: anything plausible is accepted with a warning
    ("mistral", lambda: chars(40, ALNUM)),
    ("moonshot", lambda: join("sk-", chars(30, ALNUM))),
    ("minimax", lambda: chars(50, ALNUM)),
    ("cohere", lambda: chars(32, ALNUM)),
]


@pytest.mark.parametrize(("provider", "make"), ACCEPTED_WITH_WARNING)
def test_near_or_unverified_shapes_warn(provider: str, make) -> None:  # type: ignore[no-untyped-def]
    result = check(provider, make())
    assert result.accepted, result
    assert len(result.warnings) == 1


def test_minimax_legacy_jwt_is_accepted() -> None:
    jwt = join("ey", "J", chars(20), ".", chars(40), ".", chars(30))
    result = check("minimax", jwt)
    assert result.accepted and result.warnings == ()


REFUSED = [
    ("anthropic", lambda: join("sk-ant-", "admin01-", chars(93)), "Admin API key"),
    ("anthropic", lambda: join("sk-ant-", "oat01-", chars(93)), "OAuth token"),
    ("anthropic", lambda: valid_key("openai"), "looks like a OpenAI key"),
    ("openai", lambda: join("sk-", "admin-", chars(60)), "Admin key"),
    ("openai", lambda: valid_key("anthropic"), "looks like a Anthropic key"),
    ("openai", lambda: chars(48), "does not look like"),
    ("google", lambda: valid_key("groq"), "looks like a Groq key"),
    ("google", lambda: chars(39), "does not look like"),
    ("groq", lambda: join("gs", "k-", chars(52)), "does not look like"),
    ("openrouter", lambda: valid_key("deepseek"), "does not look like"),
    ("deepseek", lambda: valid_key("openrouter"), "looks like a OpenRouter key"),
    ("moonshot", lambda: valid_key("xai"), "looks like a xAI key"),
    ("mistral", lambda: valid_key("google"), "looks like a Google Gemini key"),
    ("cohere", lambda: valid_key("anthropic"), "looks like a Anthropic key"),
    ("minimax", lambda: valid_key("openai"), "looks like a OpenAI key"),
    ("xai", lambda: join("xa", "i_", chars(80)), "does not look like"),
]


@pytest.mark.parametrize(("provider", "make", "reason"), REFUSED)
def test_wrong_key_types_and_other_providers_keys_are_refused(provider: str, make, reason: str) -> None:  # type: ignore[no-untyped-def]
    key = make()
    result = check(provider, key)
    assert not result.accepted
    assert result.reason is not None and reason in result.reason
    assert key not in result.reason


@pytest.mark.parametrize("provider", PROVIDER_IDS)
@pytest.mark.parametrize(
    ("key", "reason"),
    [
        ("", "empty"),
        ("short", "too short"),
    ],
)
def test_hygiene(provider: str, key: str, reason: str) -> None:
    result = check(provider, key)
    assert not result.accepted and reason in (result.reason or "")


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_keys_longer_than_the_rule_allows_are_too_long(provider: str) -> None:
    limit = RULES[provider].max_len
    result = check(provider, chars(limit + 1, ALNUM))
    assert not result.accepted and "too long" in (result.reason or "")


def test_only_minimax_allows_long_keys() -> None:
    assert RULES["minimax"].max_len == MAX_KEY_LEN == 2048
    assert {r.max_len for p, r in RULES.items() if p != "minimax"} == {DEFAULT_MAX_KEY_LEN}
    assert not check("openai", chars(600, ALNUM)).accepted


def _jwt(length: int, seed: int = 3) -> str:
    header = join("ey", "J", chars(30, ALNUM + "_-", seed))
    signature = chars(342, ALNUM + "_-", seed + 1)
    payload = chars(length - len(header) - len(signature) - 2, ALNUM + "_-", seed + 2)
    return join(header, ".", payload, ".", signature)


@pytest.mark.parametrize("length", [700, 760, 800, 2048])
def test_minimax_legacy_jwt_of_real_length_is_accepted(length: int) -> None:
    jwt = _jwt(length)
    assert len(jwt) == length
    result = check("minimax", jwt)
    assert result.accepted and result.warnings == (), result


def test_minimax_key_beyond_the_maximum_is_too_long() -> None:
    result = check("minimax", _jwt(MAX_KEY_LEN + 1))
    assert not result.accepted and "too long" in (result.reason or "")


@pytest.mark.parametrize("provider", PROVIDER_IDS)
@pytest.mark.parametrize("bad", [" ", "\t", "\r\n", "é", "\x00"])
def test_inner_whitespace_control_and_non_ascii_are_refused(provider: str, bad: str) -> None:
    key = valid_key(provider)
    result = check(provider, key[:10] + bad + key[10:])
    assert not result.accepted and "ASCII" in (result.reason or "")
