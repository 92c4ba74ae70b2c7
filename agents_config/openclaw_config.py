"""The tenant's ``openclaw.json`` for OpenClaw 2026.9.6: plan + tenant spec → dict → canonical bytes.

Secrets never enter: provider keys are SecretRefs to environment variables, the gateway and channel
tokens are ``${VAR}`` references; the values are Fly app secrets of the tenant's app (listed in
:attr:`RenderedOpenClawConfig.secret_env` so the worker knows what to push).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from agents_config.canonical import canonical_json, content_hash
from agents_config.catalog import Plan, PlanCatalog
from agents_config.gates import FeatureGates
from agents_config.leakcheck import assert_no_secret_like_values
from agents_config.models import MODELS
from agents_config.providers import get_provider
from agents_config.routing import RoutingDecision, route_models
from agents_config.spec import CHANNEL_KINDS, ChannelSpec, TenantSpec

OPENCLAW_VERSION = "2026.9.6"
GATEWAY_PORT = 3000
STATE_DIR = "/data"
WORKSPACE_DIR = "/data/workspace"
CUSTOM_SKILLS_DIR = "/data/skills"
GATEWAY_TOKEN_ENV = "OPENCLAW_GATEWAY_TOKEN"

# Channel → (config field → env var holding the token). Telegram is core; Discord and Slack are plugins.
CHANNEL_TOKEN_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "telegram": (("botToken", "TELEGRAM_BOT_TOKEN"),),
    "discord": (("token", "DISCORD_BOT_TOKEN"),),
    "slack": (("botToken", "SLACK_BOT_TOKEN"), ("appToken", "SLACK_APP_TOKEN")),
}

SecretKind = Literal["gateway", "byok", "platform", "channel"]


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An app secret the agent reads: its variable, what it is, and for whom (provider or channel)."""

    env_var: str
    kind: SecretKind
    subject: str  # provider id, channel kind, or "gateway"


@dataclass(frozen=True, slots=True)
class RenderedOpenClawConfig:
    config: dict[str, Any]
    content: bytes  # canonical JSON
    sha256: str  # "sha256:<hex>" of content; goes into machine metadata
    routing: RoutingDecision
    channels: tuple[str, ...]  # channel kinds configured
    dropped_channels: tuple[str, ...]  # wanted but beyond the plan's limit
    secret_env: tuple[SecretEnv, ...]  # sorted by env_var

    def __iter__(self):  # allows ``content, sha = render_openclaw_config(...)``
        return iter((self.content, self.sha256))


def env_ref(var: str) -> str:
    return "${" + var + "}"


def secret_ref(var: str) -> dict[str, str]:
    return {"source": "env", "provider": "default", "id": var}


def _gateway(spec: TenantSpec, gates: FeatureGates) -> dict[str, Any]:
    return {
        "mode": "local",
        "bind": "lan",
        "port": GATEWAY_PORT,
        "auth": {"mode": "token", "token": env_ref(GATEWAY_TOKEN_ENV)},
        "controlUi": {"allowedOrigins": [f"https://{spec.app_name}.fly.dev"]},
        "terminal": {"enabled": False},
        "http": {
            "endpoints": {
                "chatCompletions": {"enabled": gates.api_access},
                "responses": {"enabled": gates.api_access},
            }
        },
    }


def _model_providers(routing: RoutingDecision) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for provider_id in routing.providers:
        provider = get_provider(provider_id)
        entry: dict[str, Any] = {"apiKey": secret_ref(provider.env_var)}
        if provider.openclaw_base_url is not None:
            entry["baseUrl"] = provider.openclaw_base_url
            if provider.openclaw_api is not None:
                entry["api"] = provider.openclaw_api
            refs = [r for r in routing.candidates if MODELS[r].provider == provider_id]
            entry["models"] = [{"id": MODELS[r].id, "name": MODELS[r].name} for r in refs]
        providers[provider_id] = entry
    return providers


def _agents(plan: Plan, gates: FeatureGates, routing: RoutingDecision) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "workspace": WORKSPACE_DIR,
        "model": {"primary": routing.primary, "fallbacks": list(routing.fallbacks)},
        "heartbeat": {"every": plan.heartbeat_every},
        "sandbox": {"mode": "off"},  # no container runtime on the machine; the VM is the boundary
    }
    if plan.models.allowed_providers is not None or plan.models.allowed_models is not None:
        defaults["modelPolicy"] = {"allow": list(routing.candidates)}
    return {"defaults": defaults}


def _channel_block(channel: ChannelSpec) -> dict[str, Any]:
    block: dict[str, Any] = {"enabled": True}
    for field, var in CHANNEL_TOKEN_ENV[channel.kind]:
        block[field] = env_ref(var)
    if channel.kind == "slack":
        block["mode"] = "socket"
    policy = channel.effective_dm_policy
    block["dmPolicy"] = policy
    if policy == "open":
        block["allowFrom"] = ["*"]
    elif channel.allow_from:
        block["allowFrom"] = list(channel.allow_from)
    return block


def select_channels(
    spec: TenantSpec, gates: FeatureGates
) -> tuple[tuple[ChannelSpec, ...], tuple[str, ...]]:
    """The channels the plan allows (the first ones in the tenant's order) and the kinds dropped."""
    slots = gates.channel_slots(len(spec.channels))
    return spec.channels[:slots], tuple(c.kind for c in spec.channels[slots:])


def _tools(plan: Plan, gates: FeatureGates) -> dict[str, Any]:
    deny = set(plan.tools.deny)
    if not gates.cron:
        deny.add("cron")
    tools: dict[str, Any] = {"profile": plan.tools.profile}
    if plan.tools.also_allow:
        tools["alsoAllow"] = sorted(set(plan.tools.also_allow))  # never together with "allow"
    if deny:
        tools["deny"] = sorted(deny)
    return tools


def _skills(gates: FeatureGates) -> dict[str, Any]:
    if gates.custom_skills:
        return {
            "load": {"extraDirs": [CUSTOM_SKILLS_DIR]},
            "install": {"allowUploadedArchives": True},
        }
    return {
        "install": {"allowUploadedArchives": False},
        "workshop": {"autonomous": {"mode": "off"}},
    }


def _secret_env(routing: RoutingDecision, channels: tuple[ChannelSpec, ...]) -> tuple[SecretEnv, ...]:
    found = [SecretEnv(GATEWAY_TOKEN_ENV, "gateway", "gateway")]
    for provider_id, source in routing.key_sources:
        found.append(SecretEnv(get_provider(provider_id).env_var, source, provider_id))
    for channel in channels:
        for _, var in CHANNEL_TOKEN_ENV[channel.kind]:
            found.append(SecretEnv(var, "channel", channel.kind))
    return tuple(sorted(found, key=lambda s: s.env_var))


def build_openclaw_config(
    spec: TenantSpec, plan: Plan
) -> tuple[dict[str, Any], RoutingDecision, tuple[ChannelSpec, ...], tuple[str, ...]]:
    """The config dict plus what it was built from. Raises ``NoUsableModelError``."""
    gates = FeatureGates.for_plan(plan)
    routing = route_models(
        plan,
        byok_providers=spec.byok_providers,
        platform_keys=spec.platform_keys,
        chosen_model=spec.chosen_model,
        strategy=spec.strategy,
    )
    channels, dropped = select_channels(spec, gates)
    config: dict[str, Any] = {
        "gateway": _gateway(spec, gates),
        "models": {"providers": _model_providers(routing)},
        "auth": {
            "profiles": {
                f"{p}:default": {"provider": p, "mode": "api_key"} for p in routing.providers
            }
        },
        "agents": _agents(plan, gates, routing),
        "cron": {"enabled": gates.cron},
        "tools": _tools(plan, gates),
        "skills": _skills(gates),
    }
    by_kind = {c.kind: c for c in channels}
    if by_kind:
        config["channels"] = {k: _channel_block(by_kind[k]) for k in CHANNEL_KINDS if k in by_kind}
    return config, routing, channels, dropped


def render_openclaw_config(spec: TenantSpec, catalog: PlanCatalog) -> RenderedOpenClawConfig:
    """Render the tenant's ``openclaw.json``. Raises ``UnknownPlanError``, ``NoUsableModelError``
    or ``SecretLikeValueError`` (never with a secret in the message)."""
    plan = catalog.plan(spec.plan)
    config, routing, channels, dropped = build_openclaw_config(spec, plan)
    assert_no_secret_like_values(config, what="openclaw.json")
    content = canonical_json(config)
    return RenderedOpenClawConfig(
        config=config,
        content=content,
        sha256=content_hash(content),
        routing=routing,
        channels=tuple(c.kind for c in channels),
        dropped_channels=dropped,
        secret_env=_secret_env(routing, channels),
    )


__all__ = [
    "CHANNEL_TOKEN_ENV",
    "GATEWAY_PORT",
    "GATEWAY_TOKEN_ENV",
    "OPENCLAW_VERSION",
    "STATE_DIR",
    "WORKSPACE_DIR",
    "RenderedOpenClawConfig",
    "SecretEnv",
    "build_openclaw_config",
    "env_ref",
    "render_openclaw_config",
    "secret_ref",
    "select_channels",
]
