"""Audit findings: sleeping plans and webhooks, plugin providers, platform keys, model policy, tools, skills."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents_config.catalog import CatalogError, parse_catalog_text
from agents_config.gates import FeatureGates
from agents_config.machine_config import render_machine_config
from agents_config.models import MODELS
from agents_config.openclaw_config import (
    ChannelPolicyError,
    render_openclaw_config,
)
from agents_config.providers import PROVIDER_IDS, PROVIDERS
from agents_config.spec import ChannelSpec
from tests.support.agent_configs import (
    PROXY_URL,
    catalogs,
    default_catalog,
    platform_catalog,
    proxy_all_catalog,
    spec,
)

TG = ChannelSpec(kind="telegram", allow_from=("123456789",))
DISCORD = ChannelSpec(kind="discord")
SLACK = ChannelSpec(kind="slack")


def _env(rendered) -> dict[str, tuple[str, str, bool]]:
    return {s.env_var: (s.kind, s.subject, s.generated) for s in rendered.secret_env}


# --- 1. sleeping plans: Telegram webhook, Discord/Slack dropped ----------------------------------


def test_sleeping_plan_runs_telegram_as_a_webhook_behind_a_second_fly_service() -> None:
    tenant = spec(plan="starter", app_name="oc-sleepy", byok_providers=["openai"], channels=[TG])
    rendered = render_openclaw_config(tenant, default_catalog())
    block = rendered.config["channels"]["telegram"]
    assert block["webhookUrl"] == "https://oc-sleepy.fly.dev:8443/telegram-webhook"
    assert block["webhookSecret"] == "${TELEGRAM_WEBHOOK_SECRET}"
    assert (block["webhookPath"], block["webhookHost"], block["webhookPort"]) == (
        "/telegram-webhook",
        "0.0.0.0",
        8787,
    )
    assert _env(rendered)["TELEGRAM_WEBHOOK_SECRET"] == ("channel", "telegram", True)
    assert _env(rendered)["TELEGRAM_BOT_TOKEN"] == ("channel", "telegram", False)
    machine = render_machine_config(tenant, default_catalog(), volume_id="vol_abc", openclaw=rendered)
    main, hook = machine["services"]
    assert hook["internal_port"] == 8787
    assert hook["ports"] == [{"port": 8443, "handlers": ["tls", "http"]}]
    for key in ("autostop", "autostart", "min_machines_running"):
        assert hook[key] == main[key]
    assert (hook["autostop"], hook["autostart"], hook["min_machines_running"]) == ("stop", True, 0)


def test_always_on_plans_keep_long_polling_and_one_service() -> None:
    tenant = spec(plan="pro", byok_providers=["openai"], channels=[TG, DISCORD, SLACK])
    rendered = render_openclaw_config(tenant, default_catalog())
    assert not any(k.startswith("webhook") for k in rendered.config["channels"]["telegram"])
    assert "TELEGRAM_WEBHOOK_SECRET" not in _env(rendered)
    assert rendered.channels == ("telegram", "discord", "slack") and rendered.webhook_listeners == ()
    assert len(render_machine_config(tenant, default_catalog(), volume_id="vol_abc")["services"]) == 1


def test_sleeping_plan_drops_discord_and_slack_with_a_reason_and_keeps_the_slot_for_telegram() -> None:
    tenant = spec(plan="starter", byok_providers=["openai"], channels=[DISCORD, SLACK, TG])
    rendered = render_openclaw_config(tenant, default_catalog())
    assert rendered.channels == ("telegram",)
    assert rendered.dropped_channels == ("discord", "slack")
    assert rendered.channel_notes == (
        "discord: needs an always-on machine; not available on plans that sleep when idle",
        "slack: needs an always-on machine; not available on plans that sleep when idle",
    )
    assert not {"DISCORD_BOT_TOKEN", "SLACK_BOT_TOKEN", "SLACK_APP_TOKEN"} & set(_env(rendered))


def test_over_limit_channels_are_noted_as_such() -> None:
    catalog = parse_catalog_text("[catalog]\nname = 'x'\n" + _catalog_with("", sleep_when_idle="false"))
    tenant = spec(plan="p", byok_providers=["openai"], channels=[SLACK, TG, DISCORD])
    rendered = render_openclaw_config(tenant, catalog)
    assert rendered.channels == ("slack",) and rendered.dropped_channels == ("telegram", "discord")
    assert rendered.channel_notes == (
        "telegram: beyond the plan's limit of 1 channel(s)",
        "discord: beyond the plan's limit of 1 channel(s)",
    )
    gates = FeatureGates.for_plan(default_catalog().plan("pro"))
    assert all(gates.supports_channel(k) for k in ("telegram", "discord", "slack"))
    assert not FeatureGates.for_plan(default_catalog().plan("starter")).supports_channel("slack")


def test_sleeping_plan_without_telegram_has_no_webhook_service() -> None:
    tenant = spec(plan="starter", byok_providers=["openai"], channels=[DISCORD])
    rendered = render_openclaw_config(tenant, default_catalog())
    assert "channels" not in rendered.config and rendered.webhook_listeners == ()
    assert len(render_machine_config(tenant, default_catalog(), volume_id="vol_abc")["services"]) == 1


# --- 2. plugin providers get explicit blocks ------------------------------------------------------


@pytest.mark.parametrize(
    ("provider", "base_url"),
    [
        ("deepseek", "https://api.deepseek.com"),
        ("groq", "https://api.groq.com/openai/v1"),
        ("mistral", "https://api.mistral.ai/v1"),
    ],
)
def test_plugin_providers_get_explicit_openai_compatible_blocks(provider: str, base_url: str) -> None:
    rendered = render_openclaw_config(spec(plan="power", byok_providers=[provider]), default_catalog())
    block = rendered.config["models"]["providers"][provider]
    assert block["baseUrl"] == base_url and block["api"] == "openai-completions"
    assert block["apiKey"] == {"source": "env", "provider": "default", "id": PROVIDERS[provider].env_var}
    ids = {row["id"] for row in block["models"]}
    assert {r.split("/", 1)[1] for r in rendered.routing.chain} <= ids
    for row in block["models"]:
        model = MODELS[f"{provider}/{row['id']}"]
        assert row.get("contextWindow") == model.context_window and row.get("maxTokens") == model.max_tokens


def test_every_explicit_row_of_the_product_models_has_a_context_window_where_documented() -> None:
    documented = {ref for ref, m in MODELS.items() if m.context_window is not None}
    assert {
        "moonshot/kimi-k2.5",
        "minimax/MiniMax-M2.1",
        "deepseek/deepseek-v4-pro",
        "mistral/mistral-large-latest",
        "cohere/command-a-03-2025",
        "groq/openai/gpt-oss-120b",
    } <= documented


# --- 3. platform keys: workspace-only fs tools, metering proxy -------------------------------------


@pytest.mark.parametrize("catalog_name", ["default", "platform-tiers"])
def test_file_tools_are_always_workspace_only(catalog_name: str) -> None:
    catalog = catalogs()[catalog_name]
    for plan_id in catalog.plan_ids:
        tenant = spec(
            plan=plan_id, byok_providers=["openai"], platform_keys=["moonshot", "anthropic", "minimax"]
        )
        assert render_openclaw_config(tenant, catalog).config["tools"]["fs"] == {"workspaceOnly": True}


def test_without_a_proxy_the_platform_key_is_pushed_to_the_tenant_app() -> None:
    rendered = render_openclaw_config(spec(plan="starter", platform_keys=["moonshot"]), platform_catalog())
    assert _env(rendered)["MOONSHOT_API_KEY"] == ("platform", "moonshot", False)
    assert rendered.config["models"]["providers"]["moonshot"]["baseUrl"] == "https://api.moonshot.ai/v1"


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_proxy_replaces_every_platform_provider_endpoint_and_key(provider: str) -> None:
    tenant = spec(plan="everything", platform_keys=[provider], platform_proxy_url=PROXY_URL + "/")
    rendered = render_openclaw_config(tenant, proxy_all_catalog())
    block = rendered.config["models"]["providers"][provider]
    assert block["baseUrl"] == f"{PROXY_URL}/{provider}"
    assert block["apiKey"] == {"source": "env", "provider": "default", "id": "PLATFORM_PROXY_TOKEN"}
    env = _env(rendered)
    assert env["PLATFORM_PROXY_TOKEN"] == ("platform", "proxy", True)
    assert PROVIDERS[provider].env_var not in env
    assert PROVIDERS[provider].explicit_block == ("models" in block)


def test_proxy_leaves_byok_keys_alone() -> None:
    tenant = spec(
        plan="byok", byok_providers=["openai"], platform_keys=["minimax"], platform_proxy_url=PROXY_URL
    )
    rendered = render_openclaw_config(tenant, platform_catalog())
    providers = rendered.config["models"]["providers"]
    assert providers["openai"] == {"apiKey": {"source": "env", "provider": "default", "id": "OPENAI_API_KEY"}}
    assert providers["minimax"]["baseUrl"] == f"{PROXY_URL}/minimax"
    env = _env(rendered)
    assert env["OPENAI_API_KEY"] == ("byok", "openai", False) and "MINIMAX_API_KEY" not in env
    # a BYOK-only tenant needs no proxy token at all
    alone = render_openclaw_config(
        spec(plan="pro", byok_providers=["openai"], platform_proxy_url=PROXY_URL), default_catalog()
    )
    assert "PLATFORM_PROXY_TOKEN" not in _env(alone)


@pytest.mark.parametrize(
    "url",
    [
        "http://meter.example.com",
        "https://user:pw@meter.example.com",
        "https://meter.example.com/?k=1",
        "https://meter.example.com/#x",
        "https://localhost",
        "https://Meter.Example.com",
        "ftp://m.example.com",
    ],
)
def test_proxy_url_must_be_a_plain_https_url(url: str) -> None:
    with pytest.raises(ValidationError, match="platform_proxy_url") as info:
        spec(plan="starter", platform_proxy_url=url)
    assert "pw@" not in str(info.value).split("input_value")[0]


# --- 4. BYOK plan's platform fallback is not selectable; no API in the grace ---------------------


def test_platform_fallback_is_not_in_the_model_allowlist() -> None:
    tenant = spec(plan="byok", byok_providers=["openai", "deepseek"], platform_keys=["minimax"])
    rendered = render_openclaw_config(tenant, platform_catalog())
    allow = rendered.config["agents"]["defaults"]["modelPolicy"]["allow"]
    assert "minimax/MiniMax-M2.1" in rendered.routing.fallbacks
    assert "minimax/MiniMax-M2.1" not in allow and allow  # empty would allow any model
    assert all(MODELS[r].provider in ("openai", "deepseek") for r in allow)
    assert rendered.config["gateway"]["http"]["endpoints"]["chatCompletions"]["enabled"] is True  # api plan


def test_grace_period_pins_the_primary_and_disables_the_api_endpoints() -> None:
    assert platform_catalog().plan("byok").api_access
    rendered = render_openclaw_config(spec(plan="byok", platform_keys=["minimax"]), platform_catalog())
    assert rendered.routing.on_platform_fallback
    assert rendered.config["agents"]["defaults"]["modelPolicy"] == {"allow": ["minimax/MiniMax-M2.1"]}
    endpoints = rendered.config["gateway"]["http"]["endpoints"]
    assert endpoints == {"chatCompletions": {"enabled": False}, "responses": {"enabled": False}}


def test_premium_keeps_opus_selectable_but_not_automatic() -> None:
    rendered = render_openclaw_config(spec(plan="premium", platform_keys=["anthropic"]), platform_catalog())
    defaults = rendered.config["agents"]["defaults"]
    assert defaults["model"] == {"primary": "anthropic/claude-sonnet-4-6", "fallbacks": []}
    assert "anthropic/claude-opus-4-6" in defaults["modelPolicy"]["allow"]


# --- 5, 10, 11. tools and updates -----------------------------------------------------------------


@pytest.mark.parametrize("catalog_name", ["default", "platform-tiers"])
def test_cron_tool_follows_the_gate_and_gateway_tool_is_always_denied(catalog_name: str) -> None:
    catalog = catalogs()[catalog_name]
    for plan_id in catalog.plan_ids:
        plan = catalog.plan(plan_id)
        tenant = spec(
            plan=plan_id, byok_providers=["openai"], platform_keys=["moonshot", "anthropic", "minimax"]
        )
        config = render_openclaw_config(tenant, catalog).config
        tools = config["tools"]
        assert "gateway" in tools["deny"]
        if plan.cron:
            assert "automations" in tools["alsoAllow"] and "automations" not in tools["deny"]
        else:
            assert "automations" in tools["deny"] and "automations" not in tools.get("alsoAllow", [])
        assert config["update"] == {"checkOnStart": False, "auto": {"enabled": False}}


def test_power_keeps_exec_and_gains_the_message_tool() -> None:
    tools = render_openclaw_config(spec(plan="power", byok_providers=["openai"]), default_catalog()).config[
        "tools"
    ]
    assert tools["profile"] == "coding" and "group:messaging" in tools["alsoAllow"]
    assert not any(d.startswith("group:runtime") for d in tools["deny"])


# --- 6. skills allowlist -------------------------------------------------------------------------


@pytest.mark.parametrize("catalog_name", ["default", "platform-tiers"])
def test_plans_without_custom_skills_get_an_explicit_skill_allowlist(catalog_name: str) -> None:
    catalog = catalogs()[catalog_name]
    for plan_id in catalog.plan_ids:
        tenant = spec(
            plan=plan_id, byok_providers=["openai"], platform_keys=["moonshot", "anthropic", "minimax"]
        )
        defaults = render_openclaw_config(tenant, catalog).config["agents"]["defaults"]
        if catalog.plan(plan_id).custom_skills:
            assert "skills" not in defaults
        else:
            assert defaults["skills"] == []
    proxied = render_openclaw_config(spec(plan="everything", platform_keys=["openai"]), proxy_all_catalog())
    assert proxied.config["agents"]["defaults"]["skills"] == ["weather"]


def _catalog_with(extra: str, *, custom_skills: str = "false", sleep_when_idle: str = "true") -> str:
    return f"""
[plans.p]
display_name = "P"
stripe_price_id = "price_p"
monthly_price_cents = 100
key_mode = "byok"
requests_per_minute = 1
max_channels = 1
cron = false
custom_skills = {custom_skills}
file_browser = false
api_access = false
sleep_when_idle = {sleep_when_idle}
caps = {{ web_searches_per_month = 0, browser_minutes_per_month = 0, emails_per_month = 0, phone_minutes_per_month = 0 }}
machine = {{ cpus = 1, memory_mb = 256, volume_size_gb = 1 }}
{extra}
"""


def test_skills_allow_is_validated() -> None:
    text = "[catalog]\nname = 'x'\n" + _catalog_with('skills_allow = ["weather", "notes"]')
    assert parse_catalog_text(text).plan("p").skills_allow == ("weather", "notes")
    with pytest.raises(
        CatalogError, match="plan 'p': field 'skills_allow': only for plans without custom skills"
    ):
        parse_catalog_text(
            "[catalog]\nname = 'x'\n" + _catalog_with("skills_allow = []", custom_skills="true")
        )
    with pytest.raises(CatalogError, match="skills_allow"):
        parse_catalog_text("[catalog]\nname = 'x'\n" + _catalog_with('skills_allow = ["../etc"]'))


# --- 7. open DMs refused on platform-key plans --------------------------------------------------


def test_open_dms_are_refused_on_platform_plans_naming_the_field() -> None:
    tenant = spec(
        plan="starter", platform_keys=["moonshot"], channels=[ChannelSpec(kind="telegram", dm_policy="open")]
    )
    with pytest.raises(
        ChannelPolicyError, match=r'channels\[0\]\.dm_policy: "open" is not allowed on plan .starter.'
    ):
        render_openclaw_config(tenant, platform_catalog())
    # byok plans pay nothing for strangers' messages: still allowed there
    byok = spec(
        plan="pro", byok_providers=["openai"], channels=[ChannelSpec(kind="telegram", dm_policy="open")]
    )
    assert (
        render_openclaw_config(byok, default_catalog()).config["channels"]["telegram"]["dmPolicy"] == "open"
    )
