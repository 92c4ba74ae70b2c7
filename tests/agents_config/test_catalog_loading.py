"""Plan catalogs: the shipped ones load with the product's numbers; bad ones fail naming plan and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from agents_config.catalog import CatalogError, UnknownPlanError, load_catalog, parse_catalog_text
from tests.support.agent_configs import PLATFORM_CATALOG_PATH, default_catalog, platform_catalog

DEFAULT_TOML = (Path(__file__).resolve().parents[2] / "agents_config/catalogs/default.toml").read_text()


def test_default_catalog_matches_the_product_table() -> None:
    c = default_catalog()
    assert c.plan_ids == ("power", "pro", "starter")
    starter, pro, power = c.plan("starter"), c.plan("pro"), c.plan("power")
    assert [p.monthly_price_cents for p in (starter, pro, power)] == [2000, 3000, 4000]
    assert all(p.stripe_price_id.startswith("price_") and p.key_mode == "byok" for p in (starter, pro, power))
    assert [p.requests_per_minute for p in (starter, pro, power)] == [10, 20, 30]
    assert [p.caps.web_searches_per_month for p in (starter, pro, power)] == [500, 2000, 10000]
    assert [p.caps.browser_minutes_per_month for p in (starter, pro, power)] == [60, 300, 1000]
    assert [p.caps.emails_per_month for p in (starter, pro, power)] == [100, 500, 2000]
    assert [p.caps.phone_minutes_per_month for p in (starter, pro, power)] == [0, 60, 120]
    assert [p.max_channels for p in (starter, pro, power)] == [1, 3, None]


def test_platform_catalog_expresses_platform_tiers() -> None:
    c = platform_catalog()
    starter, premium, byok = c.plan("starter"), c.plan("premium"), c.plan("byok")
    assert starter.key_mode == premium.key_mode == "platform" and byok.key_mode == "byok"
    assert starter.models.default_model == "moonshot/kimi-k2.5"
    assert starter.models.allowed_models == ("moonshot/kimi-k2.5", "minimax/MiniMax-M2.1")
    assert (starter.usage.messages_per_day, starter.usage.tokens_per_month) == (50, 500_000)
    assert premium.models.allowed_providers == ("anthropic",)
    assert set(premium.models.allowed_models or ()) == {
        "anthropic/claude-sonnet-4-6",
        "anthropic/claude-opus-4-6",
    }
    assert (premium.usage.messages_per_day, premium.usage.tokens_per_month) == (200, 2_000_000)
    assert (byok.usage.messages_per_day, byok.usage.tokens_per_month) == (200, None)
    assert byok.models.allowed_providers is None and byok.models.platform_fallback is not None


def test_load_catalog_from_an_operator_path(tmp_path: Path) -> None:
    path = tmp_path / "mine.toml"
    path.write_text(DEFAULT_TOML.replace('name = "default"', 'name = "mine"'))
    assert load_catalog(path).name == "mine"
    assert load_catalog(PLATFORM_CATALOG_PATH).name == "platform-tiers"


def test_unknown_plan_names_the_known_ones() -> None:
    with pytest.raises(UnknownPlanError, match="unknown plan 'gold'.*power, pro, starter"):
        default_catalog().plan("gold")


def _error(text: str) -> str:
    with pytest.raises(CatalogError) as info:
        parse_catalog_text(text, source="ops.toml")
    return str(info.value)


def test_toml_syntax_error_names_file_and_line() -> None:
    broken = DEFAULT_TOML.replace("requests_per_minute = 20", "requests_per_minute = = 20")
    message = _error(broken)
    line = broken.splitlines().index("requests_per_minute = = 20") + 1
    assert message.startswith("ops.toml: invalid TOML") and f"line {line}" in message


def test_missing_field_names_plan_and_field() -> None:
    message = _error(DEFAULT_TOML.replace("requests_per_minute = 20\n", ""))
    assert "plan 'pro': field 'requests_per_minute': is required" in message


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("max_channels = 3", "max_channels = -1", "plan 'pro': field 'max_channels': must be >= 0"),
        ("max_channels = 3", 'max_channels = "many"', "plan 'pro': field 'max_channels': must be an integer"),
        (
            "requests_per_minute = 20",
            "requests_per_minute = 0",
            "plan 'pro': field 'requests_per_minute': must be >= 1",
        ),
        (
            "cron = true\ncustom_skills = true\nfile_browser = true\napi_access = false",
            'cron = "yes"\ncustom_skills = true\nfile_browser = true\napi_access = false',
            "plan 'pro': field 'cron': must be true or false",
        ),
        (
            'key_mode = "byok"\nrequests_per_minute = 20',
            'key_mode = "free"\nrequests_per_minute = 20',
            "plan 'pro': field 'key_mode': must be one of",
        ),
        (
            "emails_per_month = 500",
            "emails_per_month = -5",
            "plan 'pro': field 'caps.emails_per_month': must be >= 0",
        ),
        (
            "cpus = 2, memory_mb = 2048, volume_size_gb = 3",
            "cpus = 2, memory_mb = 300, volume_size_gb = 3",
            "plan 'pro': field 'machine.memory_mb': must be a multiple of 256",
        ),
        ("cpus = 4, memory_mb = 4096", "cpus = 3, memory_mb = 4096", "plan 'power': field 'machine.cpus'"),
        (
            "cpus = 2, memory_mb = 2048, volume_size_gb = 3",
            "cpus = 2, memory_mb = 8192, volume_size_gb = 3",
            "plan 'pro': field 'machine.memory_mb': must be between 512 and 4096",
        ),
        (
            'stripe_price_id = "price_pro_monthly"',
            'stripe_price_id = "30 dollars"',
            "plan 'pro': field 'stripe_price_id'",
        ),
        (
            "sleep_when_idle = false\ncaps = { web_searches_per_month = 2000",
            "sleep_when_idle = false\nbogus = 1\ncaps = { web_searches_per_month = 2000",
            "plan 'pro': field 'bogus': unknown field",
        ),
        (
            'tools = { profile = "coding", also_allow = ["group:messaging"] }',
            'tools = { profile = "root", also_allow = ["group:messaging"] }',
            "plan 'power': field 'tools.profile'",
        ),
        (
            'platform_fallback = "minimax/MiniMax-M2.1"',
            'allowed_providers = ["acme"]',
            "plan 'starter': field 'models.allowed_providers': unknown provider 'acme'",
        ),
        (
            'platform_fallback = "minimax/MiniMax-M2.1"',
            'default_model = "openai/gpt-2"',
            "plan 'starter': field 'models.default_model': unknown model 'openai/gpt-2'",
        ),
        (
            'platform_fallback = "minimax/MiniMax-M2.1"',
            'allowed_providers = ["openai"]\ndefault_model = "anthropic/claude-opus-4-6"',
            "plan 'starter': field 'models.default_model': not among the allowed",
        ),
        (
            'tools = { profile = "coding", also_allow = ["group:messaging"] }',
            'heartbeat_every = "30m"',
            "plan 'power': field 'heartbeat_every'",
        ),
    ],
)
def test_bad_values_name_plan_and_field(old: str, new: str, expected: str) -> None:
    assert old in DEFAULT_TOML, old
    assert expected in _error(DEFAULT_TOML.replace(old, new, 1))


def test_platform_plan_needs_a_default_model() -> None:
    text = PLATFORM_CATALOG_PATH.read_text().replace('default_model = "anthropic/claude-sonnet-4-6"\n', "")
    assert "plan 'premium': field 'models.default_model': required when key_mode is 'platform'" in _error(
        text
    )


def test_catalog_without_plans_and_unknown_tables() -> None:
    assert "[plans.<id>] tables are required" in _error('[catalog]\nname = "x"\n')
    assert "unknown top-level table(s): extra" in _error(DEFAULT_TOML + "\n[extra]\na = 1\n")


def test_missing_file_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="nope.toml: cannot read: No such file"):
        load_catalog(tmp_path / "nope.toml")
