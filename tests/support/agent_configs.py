"""Shared helpers for the agents_config tests (``tests.support.agent_configs``; no package __init__ here,
so the folder name cannot shadow the real ``agents_config`` package)."""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from agents_config.catalog import PlanCatalog, load_catalog, parse_catalog_text
from agents_config.spec import ChannelSpec, TenantSpec

REPO = Path(__file__).resolve().parents[2]
PLATFORM_CATALOG_PATH = REPO / "agents_config" / "catalogs" / "platform-tiers.toml"
# ../shared sits beside the repository (developers' checkouts and CI's clone alike).
SHARED = Path(os.environ.get("CP_SHARED_DIR", REPO.parent / "shared"))
SCHEMA_PATH = Path(os.environ.get("OPENCLAW_SCHEMA", SHARED / "reference" / "openclaw-2026.9.6.schema.json"))
VALIDATOR = Path(os.environ.get("OPENCLAW_VALIDATE", SHARED / "tools" / "openclaw-validate"))
IMAGE = "ghcr.io/openclaw/openclaw:2026.9.6"


@lru_cache(maxsize=1)
def default_catalog() -> PlanCatalog:
    return load_catalog()


@lru_cache(maxsize=1)
def platform_catalog() -> PlanCatalog:
    return load_catalog(PLATFORM_CATALOG_PATH)


# A platform plan over every provider: the metering proxy must work for bundled and explicit blocks.
PROXY_ALL_TOML = """
[catalog]
name = "proxy-all"

[plans.everything]
display_name = "Everything on the operator's keys"
stripe_price_id = "price_everything"
monthly_price_cents = 9900
key_mode = "platform"
requests_per_minute = 30
max_channels = "unlimited"
cron = true
custom_skills = false
file_browser = false
api_access = true
sleep_when_idle = false
caps = { web_searches_per_month = 0, browser_minutes_per_month = 0, emails_per_month = 0, phone_minutes_per_month = 0 }
machine = { cpu_kind = "shared", cpus = 2, memory_mb = 2048, volume_size_gb = 1 }
skills_allow = ["weather"]
models = { default_model = "openai/gpt-5.4-mini" }
"""


@lru_cache(maxsize=1)
def proxy_all_catalog() -> PlanCatalog:
    return parse_catalog_text(PROXY_ALL_TOML, source="proxy-all")


def catalogs() -> dict[str, PlanCatalog]:
    return {"default": default_catalog(), "platform-tiers": platform_catalog()}


def spec(**fields: Any) -> TenantSpec:
    base: dict[str, Any] = {
        "tenant_id": "01JTEST000000000000000001",
        "app_name": "oc-test-1",
        "plan": "pro",
        "region": "fra",
        "image": IMAGE,
        "desired_rev": 1,
    }
    base.update(fields)
    return TenantSpec.model_validate(base)


def _relax(node: Any) -> Any:
    """Drop every ``required`` entry whose property has a ``default`` (OpenClaw fills those in)."""
    if isinstance(node, dict):
        props = node.get("properties")
        if isinstance(props, dict) and isinstance(node.get("required"), list):
            node["required"] = [
                name
                for name in node["required"]
                if not (isinstance(props.get(name), dict) and "default" in props[name])
            ]
        for value in node.values():
            _relax(value)
    elif isinstance(node, list):
        for item in node:
            _relax(item)
    return node


@lru_cache(maxsize=1)
def relaxed_schema_validator() -> Draft7Validator:
    schema = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    relaxed = _relax(copy.deepcopy(schema))
    return Draft7Validator(relaxed)


def schema_errors(config: dict[str, Any]) -> list[str]:
    validator = relaxed_schema_validator()
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(config), key=lambda e: list(map(str, e.absolute_path)))
    ]


# --- the conformance matrix ----------------------------------------------------------------------

CHANNEL_SETS: tuple[tuple[ChannelSpec, ...], ...] = (
    (),
    (ChannelSpec(kind="telegram", allow_from=("123456789",)),),
    (
        ChannelSpec(kind="telegram", allow_from=("123456789", "987654321")),
        ChannelSpec(kind="discord", allow_from=("112233445566778899",)),
        ChannelSpec(kind="slack", dm_policy="open"),
        ChannelSpec(kind="whatsapp", allow_from=("+15555550123", "+447700900123")),
    ),
    (
        ChannelSpec(kind="whatsapp"),
        ChannelSpec(kind="slack", allow_from=("U012ABCDEF",)),
        ChannelSpec(kind="discord"),
        ChannelSpec(kind="telegram", dm_policy="disabled"),
    ),
)
BYOK_KEY_SETS: tuple[tuple[str, ...], ...] = (
    ("deepseek",),
    ("anthropic", "openai"),
    ("google", "minimax", "moonshot"),
    ("cohere", "groq", "mistral", "openrouter", "xai"),
)
STRATEGIES = ("aggressive", "balanced", "quality_first")


def without_open_dms(channels: tuple[ChannelSpec, ...]) -> tuple[ChannelSpec, ...]:
    """Platform-key plans refuse dm_policy "open": the same channels with "pairing" instead."""
    return tuple(
        ChannelSpec(kind=c.kind, dm_policy="pairing") if c.effective_dm_policy == "open" else c
        for c in channels
    )


PROXY_URL = "https://meter.example.com/v1"


def conformance_cases() -> list[tuple[str, TenantSpec]]:
    """(name, spec) pairs covering every plan of both catalogs × key sets × channels × strategies."""
    cases: list[tuple[str, TenantSpec]] = []
    n = 0

    def add(catalog: str, **fields: Any) -> None:
        nonlocal n
        n += 1
        cases.append(
            (
                f"{catalog}-{fields['plan']}-{n:02d}",
                spec(tenant_id=f"01JCONF{n:018d}", app_name=f"oc-conf-{n}", desired_rev=n, **fields),
            )
        )

    for plan in ("starter", "pro", "power"):
        for i, keys in enumerate(BYOK_KEY_SETS):
            for variant in range(2):
                add(
                    "default",
                    plan=plan,
                    byok_providers=keys,
                    strategy=STRATEGIES[(i + variant) % 3],
                    channels=CHANNEL_SETS[(i + 2 * variant) % 4],
                )
    add(
        "default",
        plan="power",
        byok_providers=("anthropic", "openai"),
        chosen_model="openai/gpt-5.4-nano",
        channels=CHANNEL_SETS[2],
    )
    add(  # WhatsApp alone, open to everyone
        "default",
        plan="power",
        byok_providers=("google",),
        channels=(ChannelSpec(kind="whatsapp", dm_policy="open"),),
    )
    for i, keys in enumerate((("minimax", "moonshot"), ("moonshot",), ("minimax",))):
        add(
            "platform-tiers",
            plan="starter",
            platform_keys=keys,
            channels=without_open_dms(CHANNEL_SETS[i % 4]),
            strategy=STRATEGIES[i],
        )
    add(
        "platform-tiers",
        plan="premium",
        platform_keys=("anthropic",),
        channels=without_open_dms(CHANNEL_SETS[2]),
    )
    add(
        "platform-tiers",
        plan="premium",
        platform_keys=("anthropic",),
        chosen_model="anthropic/claude-opus-4-6",
        channels=CHANNEL_SETS[3],
        strategy="quality_first",
    )
    for i, keys in enumerate(BYOK_KEY_SETS):
        add(
            "platform-tiers",
            plan="byok",
            byok_providers=keys,
            platform_keys=("minimax",),
            channels=CHANNEL_SETS[(i + 1) % 4],
            strategy=STRATEGIES[i % 3],
        )
    add(
        "platform-tiers", plan="byok", platform_keys=("minimax",), channels=CHANNEL_SETS[1]
    )  # grace: no own key
    add(
        "platform-tiers", plan="byok", byok_providers=("openai",), channels=CHANNEL_SETS[0]
    )  # no platform key offered
    # the metering proxy in front of platform keys (bundled and explicit-block providers alike)
    add(
        "platform-tiers",
        plan="starter",
        platform_keys=("minimax", "moonshot"),
        channels=CHANNEL_SETS[1],
        platform_proxy_url=PROXY_URL,
    )
    add(
        "platform-tiers",
        plan="premium",
        platform_keys=("anthropic",),
        channels=CHANNEL_SETS[3],
        platform_proxy_url=PROXY_URL,
    )
    add(
        "platform-tiers",
        plan="byok",
        byok_providers=("deepseek",),
        platform_keys=("minimax",),
        channels=CHANNEL_SETS[0],
        platform_proxy_url=PROXY_URL,
    )
    add(
        "platform-tiers",
        plan="byok",
        platform_keys=("minimax",),
        channels=CHANNEL_SETS[2],
        platform_proxy_url=PROXY_URL,
    )
    for i, keys in enumerate(BYOK_KEY_SETS):
        add(
            "proxy-all",
            plan="everything",
            platform_keys=keys,
            strategy=STRATEGIES[i % 3],
            channels=without_open_dms(CHANNEL_SETS[i % 4]),
            platform_proxy_url=PROXY_URL,
        )
    return cases


def catalog_of(name: str) -> PlanCatalog:
    if name.startswith("proxy-all-"):
        return proxy_all_catalog()
    return default_catalog() if name.startswith("default-") else platform_catalog()
