"""Hypothesis properties of the generated OpenClaw and machine configs."""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from agents_config.canonical import canonical_json
from agents_config.gates import FeatureGates
from agents_config.leakcheck import SecretLikeValueError
from agents_config.machine_config import render_machine_config
from agents_config.models import MODEL_REFS
from agents_config.openclaw_config import render_openclaw_config
from agents_config.providers import PROVIDER_IDS, PROVIDERS
from agents_config.routing import NoUsableModelError
from agents_config.spec import ChannelSpec, TenantSpec
from controlplane.cli.agent_config import _format_validation
from tests.support.agent_configs import IMAGE, catalogs, default_catalog, platform_catalog

PROPERTY_SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_ALNUM = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
_PREFIXES = ("sk-ant-api03-", "sk-proj-", "sk-or-v1-", "sk-", "AIza", "gsk_", "xai-", "xoxb-", "xapp-1-", "")
secrets = st.builds(
    lambda prefix, body: prefix + body,
    st.sampled_from(_PREFIXES),
    st.text(alphabet=_ALNUM, min_size=32, max_size=64).filter(
        lambda s: any(c.isupper() for c in s) and any(c.islower() for c in s) and any(c.isdigit() for c in s)
    ),
)
telegram_bot_tokens = st.builds(
    lambda n, body: f"{n}:{body}",
    st.integers(100000, 9999999999),
    st.text(alphabet=_ALNUM, min_size=35, max_size=35),
)
any_secret = st.one_of(secrets, telegram_bot_tokens)

ids = {
    "telegram": st.integers(1, 10**12).map(str),
    "discord": st.integers(10**16, 10**19).map(str),
    "slack": st.from_regex(r"U[A-Z0-9]{8,10}", fullmatch=True),
}


@st.composite
def channel_lists(draw, secret_pool=None):
    kinds = draw(st.permutations(["telegram", "discord", "slack"]))
    chosen = kinds[: draw(st.integers(0, 3))]
    out = []
    for kind in chosen:
        policy = draw(st.sampled_from([None, "pairing", "allowlist", "open", "disabled"]))
        allow = draw(st.lists(ids[kind], min_size=1 if policy == "allowlist" else 0, max_size=3, unique=True))
        if policy in ("open",):
            allow = []
        if policy in (None,) and draw(st.booleans()):
            allow = []
        if secret_pool is not None and draw(st.booleans()):
            allow = [*allow, draw(st.sampled_from(secret_pool))]
        out.append({"kind": kind, "allow_from": allow, "dm_policy": policy})
    return out


@st.composite
def tenant_inputs(draw, secret_pool=None):
    catalog_name = draw(st.sampled_from(["default", "platform-tiers"]))
    catalog = catalogs()[catalog_name]
    fields = {
        "tenant_id": draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,30}", fullmatch=True)),
        "app_name": draw(st.from_regex(r"oc-[a-z0-9]{1,20}", fullmatch=True)),
        "plan": draw(st.sampled_from(catalog.plan_ids)),
        "byok_providers": draw(st.lists(st.sampled_from(PROVIDER_IDS), max_size=5)),
        "platform_keys": draw(st.lists(st.sampled_from(PROVIDER_IDS), max_size=3)),
        "channels": draw(channel_lists(secret_pool)),
        "chosen_model": draw(st.none() | st.sampled_from(MODEL_REFS)),
        "strategy": draw(st.sampled_from(["aggressive", "balanced", "quality_first"])),
        "region": draw(st.sampled_from(["fra", "ams", "iad", "sin"])),
        "image": IMAGE,
        "desired_rev": draw(st.integers(0, 10**6)),
    }
    plan = catalog.plans.get(fields["plan"])
    if plan is not None and plan.key_mode == "platform":  # open DMs are refused there (tested below)
        for c in fields["channels"]:
            if c["dm_policy"] == "open":
                c["dm_policy"] = "pairing"
    if draw(st.booleans()):
        fields["platform_proxy_url"] = draw(
            st.sampled_from(["https://meter.example.com", "https://m.example.net:8443/p/"])
        )
    if secret_pool is not None:
        # put secret-looking strings into every free-form field, some of the time
        for field in (
            "tenant_id",
            "app_name",
            "chosen_model",
            "region",
            "image",
            "plan",
            "platform_proxy_url",
        ):
            if draw(st.integers(0, 3)) == 0:
                fields[field] = draw(st.sampled_from(secret_pool))
        if draw(st.booleans()):
            fields["byok_providers"] = [*fields["byok_providers"], draw(st.sampled_from(secret_pool))]
    return catalog, fields


def _render_all(catalog, spec: TenantSpec):
    rendered = render_openclaw_config(spec, catalog)
    machine = render_machine_config(spec, catalog, volume_id="vol_abc123", openclaw=rendered)
    return rendered, machine


@PROPERTY_SETTINGS
@given(data=st.data(), pool=st.lists(any_secret, min_size=1, max_size=5, unique=True))
def test_no_secret_value_ever_appears(data, pool) -> None:
    catalog, fields = data.draw(tenant_inputs(secret_pool=pool))
    try:
        spec = TenantSpec.model_validate(fields)
    except ValidationError as exc:
        message = _format_validation(exc, "spec.json")  # what the CLI prints
        assert not any(s in message for s in pool)
        return
    try:
        rendered, machine = _render_all(catalog, spec)
    except (NoUsableModelError, SecretLikeValueError, KeyError) as exc:
        assert not any(s in str(exc) for s in pool)
        return
    blobs = [
        rendered.content,
        canonical_json(machine),
        base64.b64decode(machine["files"][0]["raw_value"]),
    ]
    for blob in blobs:
        for secret in pool:
            assert secret.encode() not in blob


@PROPERTY_SETTINGS
@given(data=st.data())
def test_channel_count_never_exceeds_the_plan(data) -> None:
    catalog, fields = data.draw(tenant_inputs())
    fields["byok_providers"] = ["openai"]
    fields["platform_keys"] = list(PROVIDER_IDS)
    spec = TenantSpec.model_validate(fields)
    rendered = render_openclaw_config(spec, catalog)
    limit = catalog.plan(spec.plan).max_channels
    configured = rendered.config.get("channels", {})
    assert len(configured) == len(rendered.channels)
    assert limit is None or len(configured) <= limit
    assert len(rendered.channels) + len(rendered.dropped_channels) == len(spec.channels)
    assert sorted(rendered.channels + rendered.dropped_channels) == sorted(c.kind for c in spec.channels)
    assert len(rendered.channel_notes) == len(rendered.dropped_channels)
    gates = FeatureGates.for_plan(catalog.plan(spec.plan))
    workable = tuple(c.kind for c in spec.channels if gates.supports_channel(c.kind))
    assert rendered.channels == workable[: len(rendered.channels)]  # the first workable ones, in order
    if gates.sleep_when_idle:
        assert not {"discord", "slack"} & set(configured)
    for block in configured.values():
        policy, allow = block["dmPolicy"], block.get("allowFrom", [])
        assert (policy == "allowlist") <= (len(allow) >= 1)
        assert (policy == "open") <= (allow == ["*"])
        assert ("*" in allow) <= (policy == "open")


@PROPERTY_SETTINGS
@given(
    keys=st.lists(st.sampled_from(PROVIDER_IDS), min_size=1, max_size=6),
    platform=st.lists(st.sampled_from(PROVIDER_IDS), max_size=4),
    channels=channel_lists(),
    catalog_name=st.sampled_from(["default", "platform-tiers"]),
)
def test_starter_never_has_cron_or_api_endpoints(keys, platform, channels, catalog_name) -> None:
    catalog = catalogs()[catalog_name]
    if catalog_name == "platform-tiers":
        platform = [*platform, "moonshot"]
        channels = [{**c, "dm_policy": "pairing"} if c["dm_policy"] == "open" else c for c in channels]
    spec = TenantSpec(
        tenant_id="t1",
        app_name="oc-t1",
        plan="starter",
        byok_providers=keys,
        platform_keys=platform,
        channels=[ChannelSpec(**c) for c in channels],
        region="fra",
        image=IMAGE,
        desired_rev=1,
    )
    config = render_openclaw_config(spec, catalog).config
    assert config["cron"] == {"enabled": False}
    assert "automations" in config["tools"]["deny"] and "automations" not in config["tools"].get(
        "alsoAllow", []
    )
    endpoints = config["gateway"]["http"]["endpoints"]
    assert not any(e["enabled"] for e in endpoints.values())
    assert "extraDirs" not in json.dumps(config["skills"])


@PROPERTY_SETTINGS
@given(data=st.data())
def test_same_input_same_bytes_and_hash(data) -> None:
    catalog, fields = data.draw(tenant_inputs())
    fields["platform_keys"] = list(PROVIDER_IDS)
    fields["byok_providers"] = [*fields["byok_providers"], "openai"]
    spec = TenantSpec.model_validate(fields)
    shuffled = dict(fields)
    shuffled["byok_providers"] = list(reversed(fields["byok_providers"])) * 2
    shuffled["platform_keys"] = data.draw(st.permutations(fields["platform_keys"]))
    spec2 = TenantSpec.model_validate(shuffled)
    a, ma = _render_all(catalog, spec)
    b, mb = _render_all(catalog, spec2)
    assert a.content == b.content and a.sha256 == b.sha256
    assert canonical_json(ma) == canonical_json(mb)
    assert json.loads(a.content) == a.config


SECRET_ENV_NAMES = {p.env_var for p in PROVIDERS.values()} | {
    "OPENCLAW_GATEWAY_TOKEN",
    "TELEGRAM_BOT_TOKEN",
    "DISCORD_BOT_TOKEN",
    "SLACK_BOT_TOKEN",
    "SLACK_APP_TOKEN",
    "TELEGRAM_WEBHOOK_SECRET",
    "PLATFORM_PROXY_TOKEN",
}


@PROPERTY_SETTINGS
@given(data=st.data())
def test_machine_env_and_metadata_never_carry_secrets(data) -> None:
    catalog, fields = data.draw(tenant_inputs())
    fields["platform_keys"] = list(PROVIDER_IDS)
    fields["byok_providers"] = [*fields["byok_providers"], "openai"]
    spec = TenantSpec.model_validate(fields)
    rendered, machine = _render_all(catalog, spec)
    env = machine["env"]
    assert set(env) == {
        "NODE_ENV",
        "NODE_OPTIONS",
        "OPENCLAW_CONFIG_PATH",
        "OPENCLAW_PREFER_PNPM",
        "OPENCLAW_STATE_DIR",
    }
    assert not SECRET_ENV_NAMES & set(env)
    assert {s.env_var for s in rendered.secret_env} <= SECRET_ENV_NAMES
    assert set(machine["metadata"]) == {"tenant_id", "desired_rev", "openclaw_config_hash", "plan"}
    assert all(isinstance(v, str) for v in [*env.values(), *machine["metadata"].values()])


def test_leak_check_refuses_secret_shaped_values() -> None:
    # a Fly-valid app name that is shaped like a DeepSeek key
    spec = TenantSpec(
        tenant_id="t1",
        app_name="sk-0123456789abcdef0123456789abcdef",
        plan="pro",
        byok_providers=["openai"],
        region="fra",
        image=IMAGE,
        desired_rev=1,
    )
    with pytest.raises(SecretLikeValueError) as info:
        render_openclaw_config(spec, default_catalog())
    assert "0123456789abcdef" not in str(info.value)


def test_platform_catalog_is_exercised() -> None:
    assert platform_catalog().plan("starter").key_mode == "platform"
