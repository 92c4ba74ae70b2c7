"""The tenant's ``openclaw.json`` for OpenClaw 2026.9.6: plan + tenant spec → dict → canonical bytes.

Secrets never enter: provider keys are SecretRefs to environment variables, the gateway and channel
tokens are ``${VAR}`` references; the values are Fly app secrets of the tenant's app (listed in
:attr:`RenderedOpenClawConfig.secret_env` so the worker knows what to push). Entries marked
``generated`` are per-tenant random values the worker creates itself (and keeps in the vault), e.g.
the Telegram webhook secret; the others come from the tenant (keys, bot tokens) or the operator.

Tenant image. The gateway cannot install plugins at boot (no npm at run time, and a pinned image
must not change itself), so the image MUST already contain the plugins a config can name:
``@openclaw/discord`` and ``@openclaw/slack`` (channels are plugins in 2026.9.6). DeepSeek, Groq and
Mistral are external provider plugins too; they get explicit OpenAI-compatible blocks here (``baseUrl``,
``api``, ``models[]``) so their models exist without the plugin, but the boot-time doctor still tries
to install ``@openclaw/{deepseek,groq,mistral}-provider`` for a configured provider id: bake them into
the image as well to keep boots quiet and offline.

Sleeping plans (Fly autostop "stop", nothing kept running) wake only on traffic through Fly's proxy.
Telegram then runs in webhook mode: Telegram POSTs to ``https://<app>.fly.dev:8443/telegram-webhook``
(Fly terminates TLS on 8443, one of the ports Telegram accepts, and forwards to the listener on
:data:`TELEGRAM_WEBHOOK_PORT`; see :attr:`RenderedOpenClawConfig.webhook_listeners` and the machine
config's second service), verified by ``webhookSecret``. Discord and Slack Socket Mode open outbound
connections the proxy never sees, so they are dropped on those plans (``dropped_channels`` and
``channel_notes``). Slack's HTTP Request URL mode would wake the machine, but it needs the tenant's
Signing Secret and a Request URL set in their Slack app, which a config alone cannot provide.
WhatsApp (plugin ``@openclaw/whatsapp``; bake it into the image too) keeps a WhatsApp Web socket open,
so it is dropped on sleeping plans as well. Its block is only ``enabled``, ``dmPolicy`` and ``allowFrom``
(E.164 numbers): the account is linked by scanning a QR code in the agent's Control UI, and the link's
credentials live in the state directory on the volume, never in the config.

Operator-paid (platform) keys. File tools are always limited to the workspace
(``tools.fs.workspaceOnly``), so the agent cannot read ``/proc/self/environ`` and the like through
them. With ``TenantSpec.platform_proxy_url`` set, every provider used through a platform key talks
to the operator's metering proxy instead of the vendor: ``baseUrl`` = ``<proxy>/<provider id>`` and the
key is the per-tenant ``PLATFORM_PROXY_TOKEN`` (generated; the worker pushes it and registers it with
the proxy). The proxy receives exactly the requests OpenClaw would send to the provider's own base
URL (e.g. ``<proxy>/anthropic/v1/messages`` for ``https://api.anthropic.com/v1/messages``,
``<proxy>/moonshot/chat/completions`` for ``https://api.moonshot.ai/v1/chat/completions``), with the
token in that provider's usual auth header; it swaps in the real key and enforces the plan's usage
limits (messages/day, tokens/month). The vendor key is then never on the tenant's machine. WITHOUT a
proxy the raw platform key is an app secret of the tenant's app and lives on the tenant VM, and the
usage limits are not enforced anywhere in this config.
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
PLATFORM_PROXY_TOKEN_ENV = "PLATFORM_PROXY_TOKEN"
TELEGRAM_WEBHOOK_SECRET_ENV = "TELEGRAM_WEBHOOK_SECRET"
TELEGRAM_WEBHOOK_PATH = "/telegram-webhook"  # OpenClaw's default; /healthz is reserved
TELEGRAM_WEBHOOK_PORT = 8787  # the listener inside the machine (OpenClaw's default port)
TELEGRAM_WEBHOOK_PUBLIC_PORT = 8443  # Telegram accepts webhooks on 443, 80, 88 and 8443 only
# The "cron" tool's id in 2026.9.6 ("cron" is its legacy alias; docs/gateway/config-tools/tool-policy.md).
CRON_TOOL = "automations"
ALWAYS_DENIED_TOOLS: tuple[str, ...] = ("gateway",)  # self-update / restart / config reads
NOT_ON_SLEEPING_PLANS = "needs an always-on machine; not available on plans that sleep when idle"

# Channel → (config field → env var holding the token). Telegram is core; Discord, Slack and WhatsApp
# are plugins. WhatsApp has no token: it is linked by a QR code scanned in the Control UI.
CHANNEL_TOKEN_ENV: dict[str, tuple[tuple[str, str], ...]] = {
    "telegram": (("botToken", "TELEGRAM_BOT_TOKEN"),),
    "discord": (("token", "DISCORD_BOT_TOKEN"),),
    "slack": (("botToken", "SLACK_BOT_TOKEN"), ("appToken", "SLACK_APP_TOKEN")),
    "whatsapp": (),
}

SecretKind = Literal["gateway", "byok", "platform", "channel"]


@dataclass(frozen=True, slots=True)
class SecretEnv:
    """An app secret the agent reads: its variable, what it is, and for whom (provider or channel)."""

    env_var: str
    kind: SecretKind
    subject: str  # provider id, channel kind, "gateway", or "proxy" (the metering proxy's token)
    generated: bool = False  # a per-tenant random value the worker creates (not the tenant's input)


@dataclass(frozen=True, slots=True)
class WebhookListener:
    """An inbound webhook listener the machine must expose through Fly's proxy (on its own port)."""

    channel: str
    internal_port: int
    public_port: int
    path: str


class ChannelPolicyError(ValueError):
    """A channel setting the plan does not allow. The message names the field."""


@dataclass(frozen=True, slots=True)
class RenderedOpenClawConfig:
    config: dict[str, Any]
    content: bytes  # canonical JSON
    sha256: str  # "sha256:<hex>" of content; goes into machine metadata
    routing: RoutingDecision
    channels: tuple[str, ...]  # channel kinds configured
    dropped_channels: tuple[str, ...]  # wanted but not configured (see channel_notes for why)
    secret_env: tuple[SecretEnv, ...]  # sorted by env_var
    channel_notes: tuple[str, ...] = ()  # one line per dropped channel: "<kind>: <reason>"
    webhook_listeners: tuple[WebhookListener, ...] = ()  # services the machine config must add


def env_ref(var: str) -> str:
    return "${" + var + "}"


def secret_ref(var: str) -> dict[str, str]:
    return {"source": "env", "provider": "default", "id": var}


def _gateway(spec: TenantSpec, gates: FeatureGates, routing: RoutingDecision) -> dict[str, Any]:
    # No OpenAI-compatible API while a byok plan runs on the operator's key (the grace period).
    api = gates.api_access and not routing.on_platform_fallback
    return {
        "mode": "local",
        "bind": "lan",
        "port": GATEWAY_PORT,
        "auth": {"mode": "token", "token": env_ref(GATEWAY_TOKEN_ENV)},
        "controlUi": {"allowedOrigins": [f"https://{spec.app_name}.fly.dev"]},
        "terminal": {"enabled": False},
        "http": {
            "endpoints": {
                "chatCompletions": {"enabled": api},
                "responses": {"enabled": api},
            }
        },
    }


def _model_row(ref: str) -> dict[str, Any]:
    model = MODELS[ref]
    row: dict[str, Any] = {"id": model.id, "name": model.name}
    if model.context_window is not None:
        row["contextWindow"] = model.context_window
    if model.max_tokens is not None:
        row["maxTokens"] = model.max_tokens
    return row


def _proxied(provider_id: str, routing: RoutingDecision, proxy_url: str | None) -> bool:
    return proxy_url is not None and routing.key_source(provider_id) == "platform"


def _model_providers(routing: RoutingDecision, proxy_url: str | None) -> dict[str, Any]:
    providers: dict[str, Any] = {}
    for provider_id in routing.providers:
        provider = get_provider(provider_id)
        proxied = _proxied(provider_id, routing, proxy_url)
        entry: dict[str, Any] = {
            "apiKey": secret_ref(PLATFORM_PROXY_TOKEN_ENV if proxied else provider.env_var)
        }
        if proxied:
            entry["baseUrl"] = f"{proxy_url}/{provider_id}"
        elif provider.openclaw_base_url is not None:
            entry["baseUrl"] = provider.openclaw_base_url
        if provider.explicit_block:
            if provider.openclaw_api is not None:
                entry["api"] = provider.openclaw_api
            refs = [r for r in routing.candidates if MODELS[r].provider == provider_id]
            entry["models"] = [_model_row(r) for r in refs]
        providers[provider_id] = entry
    return providers


def _agents(plan: Plan, gates: FeatureGates, routing: RoutingDecision) -> dict[str, Any]:
    defaults: dict[str, Any] = {
        "workspace": WORKSPACE_DIR,
        "model": {"primary": routing.primary, "fallbacks": list(routing.fallbacks)},
        "heartbeat": {"every": plan.heartbeat_every},
        "sandbox": {"mode": "off"},  # no container runtime on the machine; the VM is the boundary
    }
    if routing.platform_fallback is not None:
        # The operator-paid fallback must not be selectable as the main model: only the tenant's own
        # keys' models are. Fallbacks stay eligible outside this list (docs/concepts/models.md). In the
        # grace (no own key) the list is the primary alone: an empty list would allow every model.
        defaults["modelPolicy"] = {"allow": list(routing.own_key_candidates) or [routing.primary]}
    elif plan.models.allowed_providers is not None or plan.models.allowed_models is not None:
        defaults["modelPolicy"] = {"allow": list(routing.candidates)}
    if not gates.custom_skills:
        # An explicit allowlist, so skills installed at run time are not loaded ([] = none).
        defaults["skills"] = list(plan.skills_allow or ())
    return {"defaults": defaults}


def _channel_block(spec: TenantSpec, gates: FeatureGates, channel: ChannelSpec) -> dict[str, Any]:
    block: dict[str, Any] = {"enabled": True}
    for field, var in CHANNEL_TOKEN_ENV[channel.kind]:
        block[field] = env_ref(var)
    if channel.kind == "slack":
        block["mode"] = "socket"
    if channel.kind == "telegram" and gates.sleep_when_idle:
        block["webhookUrl"] = (
            f"https://{spec.app_name}.fly.dev:{TELEGRAM_WEBHOOK_PUBLIC_PORT}{TELEGRAM_WEBHOOK_PATH}"
        )
        block["webhookSecret"] = env_ref(TELEGRAM_WEBHOOK_SECRET_ENV)
        block["webhookPath"] = TELEGRAM_WEBHOOK_PATH
        block["webhookHost"] = "0.0.0.0"  # Fly's proxy reaches the machine on its private interface
        block["webhookPort"] = TELEGRAM_WEBHOOK_PORT
    policy = channel.effective_dm_policy
    block["dmPolicy"] = policy
    if policy == "open":
        block["allowFrom"] = ["*"]
    elif channel.allow_from:
        block["allowFrom"] = list(channel.allow_from)
    return block


def select_channels(
    spec: TenantSpec, gates: FeatureGates
) -> tuple[tuple[ChannelSpec, ...], tuple[str, ...], tuple[str, ...]]:
    """The channels the plan allows (the first workable ones in the tenant's order), the kinds
    dropped (in the tenant's order) and one note per dropped kind saying why."""
    return plan_channels(spec.channels, gates)


def plan_channels(
    wanted: tuple[ChannelSpec, ...], gates: FeatureGates
) -> tuple[tuple[ChannelSpec, ...], tuple[str, ...], tuple[str, ...]]:
    """:func:`select_channels` over a bare channel list (the dashboard API shows the same verdict
    per channel before any config is rendered)."""
    workable = [c for c in wanted if gates.supports_channel(c.kind)]
    slots = gates.channel_slots(len(workable))
    selected = tuple(workable[:slots])
    dropped: list[str] = []
    notes: list[str] = []
    for channel in wanted:
        if channel in selected:
            continue
        dropped.append(channel.kind)
        if not gates.supports_channel(channel.kind):
            notes.append(f"{channel.kind}: {NOT_ON_SLEEPING_PLANS}")
        else:
            notes.append(f"{channel.kind}: beyond the plan's limit of {gates.max_channels} channel(s)")
    return selected, tuple(dropped), tuple(notes)


def _webhook_listeners(gates: FeatureGates, channels: tuple[ChannelSpec, ...]) -> tuple[WebhookListener, ...]:
    if gates.sleep_when_idle and any(c.kind == "telegram" for c in channels):
        return (
            WebhookListener(
                "telegram", TELEGRAM_WEBHOOK_PORT, TELEGRAM_WEBHOOK_PUBLIC_PORT, TELEGRAM_WEBHOOK_PATH
            ),
        )
    return ()


def _check_channel_policies(spec: TenantSpec, plan: Plan, gates: FeatureGates) -> None:
    if not gates.platform_key:
        return
    for position, channel in enumerate(spec.channels):
        if channel.effective_dm_policy == "open":
            raise ChannelPolicyError(
                f'channels[{position}].dm_policy: "open" is not allowed on plan {plan.id!r}: the '
                'operator pays for the AI, so anyone could spend it; use "pairing" or "allowlist"'
            )


def _tools(plan: Plan, gates: FeatureGates) -> dict[str, Any]:
    also_allow = set(plan.tools.also_allow)
    deny = set(plan.tools.deny) | set(ALWAYS_DENIED_TOOLS)
    if gates.cron:
        also_allow.add(CRON_TOOL)  # not in the "messaging" profile
    else:
        deny.add(CRON_TOOL)
    tools: dict[str, Any] = {
        "profile": plan.tools.profile,
        "fs": {"workspaceOnly": True},  # no /proc/self/environ, ~/.config … through file tools
    }
    if also_allow:
        tools["alsoAllow"] = sorted(also_allow)  # never together with "allow"
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


def _secret_env(
    spec: TenantSpec,
    gates: FeatureGates,
    routing: RoutingDecision,
    channels: tuple[ChannelSpec, ...],
) -> tuple[SecretEnv, ...]:
    found = [SecretEnv(GATEWAY_TOKEN_ENV, "gateway", "gateway")]
    proxied = False
    for provider_id, source in routing.key_sources:
        if _proxied(provider_id, routing, spec.platform_proxy_url):
            proxied = True  # the vendor key stays with the proxy
            continue
        found.append(SecretEnv(get_provider(provider_id).env_var, source, provider_id))
    if proxied:
        found.append(SecretEnv(PLATFORM_PROXY_TOKEN_ENV, "platform", "proxy", generated=True))
    for channel in channels:
        for _, var in CHANNEL_TOKEN_ENV[channel.kind]:
            found.append(SecretEnv(var, "channel", channel.kind))
    for listener in _webhook_listeners(gates, channels):
        if listener.channel == "telegram":
            found.append(SecretEnv(TELEGRAM_WEBHOOK_SECRET_ENV, "channel", "telegram", generated=True))
    return tuple(sorted(found, key=lambda s: s.env_var))


@dataclass(frozen=True, slots=True)
class BuiltConfig:
    config: dict[str, Any]
    routing: RoutingDecision
    channels: tuple[ChannelSpec, ...]
    dropped: tuple[str, ...]
    channel_notes: tuple[str, ...]


def build_openclaw_config(spec: TenantSpec, plan: Plan) -> BuiltConfig:
    """The config dict plus what it was built from. Raises ``NoUsableModelError`` or
    ``ChannelPolicyError``."""
    gates = FeatureGates.for_plan(plan)
    _check_channel_policies(spec, plan, gates)
    routing = route_models(
        plan,
        byok_providers=spec.byok_providers,
        platform_keys=spec.platform_keys,
        chosen_model=spec.chosen_model,
        strategy=spec.strategy,
    )
    channels, dropped, notes = select_channels(spec, gates)
    config: dict[str, Any] = {
        "gateway": _gateway(spec, gates, routing),
        "update": {"checkOnStart": False, "auto": {"enabled": False}},  # the image is pinned
        "models": {"providers": _model_providers(routing, spec.platform_proxy_url)},
        "auth": {"profiles": {f"{p}:default": {"provider": p, "mode": "api_key"} for p in routing.providers}},
        "agents": _agents(plan, gates, routing),
        "cron": {"enabled": gates.cron},
        "tools": _tools(plan, gates),
        "skills": _skills(gates),
    }
    by_kind = {c.kind: c for c in channels}
    if by_kind:
        config["channels"] = {
            k: _channel_block(spec, gates, by_kind[k]) for k in CHANNEL_KINDS if k in by_kind
        }
    return BuiltConfig(config, routing, channels, dropped, notes)


def render_openclaw_config(spec: TenantSpec, catalog: PlanCatalog) -> RenderedOpenClawConfig:
    """Render the tenant's ``openclaw.json``. Raises ``UnknownPlanError``, ``NoUsableModelError``,
    ``ChannelPolicyError`` or ``SecretLikeValueError`` (never with a secret in the message)."""
    plan = catalog.plan(spec.plan)
    gates = FeatureGates.for_plan(plan)
    built = build_openclaw_config(spec, plan)
    assert_no_secret_like_values(built.config, what="openclaw.json")
    content = canonical_json(built.config)
    return RenderedOpenClawConfig(
        config=built.config,
        content=content,
        sha256=content_hash(content),
        routing=built.routing,
        channels=tuple(c.kind for c in built.channels),
        dropped_channels=built.dropped,
        secret_env=_secret_env(spec, gates, built.routing, built.channels),
        channel_notes=built.channel_notes,
        webhook_listeners=_webhook_listeners(gates, built.channels),
    )


__all__ = [
    "ALWAYS_DENIED_TOOLS",
    "CHANNEL_TOKEN_ENV",
    "CRON_TOOL",
    "GATEWAY_PORT",
    "GATEWAY_TOKEN_ENV",
    "OPENCLAW_VERSION",
    "PLATFORM_PROXY_TOKEN_ENV",
    "STATE_DIR",
    "TELEGRAM_WEBHOOK_PATH",
    "TELEGRAM_WEBHOOK_PORT",
    "TELEGRAM_WEBHOOK_PUBLIC_PORT",
    "TELEGRAM_WEBHOOK_SECRET_ENV",
    "WORKSPACE_DIR",
    "BuiltConfig",
    "ChannelPolicyError",
    "RenderedOpenClawConfig",
    "SecretEnv",
    "WebhookListener",
    "build_openclaw_config",
    "env_ref",
    "render_openclaw_config",
    "plan_channels",
    "secret_ref",
    "select_channels",
]
