"""Shared helpers for the agents_config tests (``tests.agents_config.ac_support``; no package __init__ here,
so the folder name cannot shadow the real ``agents_config`` package)."""

from __future__ import annotations

import copy
import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Any

from jsonschema import Draft7Validator

from agents_config.catalog import PlanCatalog, load_catalog
from agents_config.spec import ChannelSpec, TenantSpec

REPO = Path(__file__).resolve().parents[2]
PLATFORM_CATALOG_PATH = REPO / "agents_config" / "catalogs" / "platform-tiers.toml"
# ../shared sits beside the repository (developers' checkouts and CI's clone alike).
SHARED = Path(os.environ.get("CP_SHARED_DIR", REPO.parent / "shared"))
SCHEMA_PATH = Path(
    os.environ.get("OPENCLAW_SCHEMA", SHARED / "reference" / "openclaw-2026.9.6.schema.json")
)
VALIDATOR = Path(os.environ.get("OPENCLAW_VALIDATE", SHARED / "tools" / "openclaw-validate"))
IMAGE = "ghcr.io/openclaw/openclaw:2026.9.6"


@lru_cache(maxsize=1)
def default_catalog() -> PlanCatalog:
    return load_catalog()


@lru_cache(maxsize=1)
def platform_catalog() -> PlanCatalog:
    return load_catalog(PLATFORM_CATALOG_PATH)


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
    ),
    (
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
    add("default", plan="power", byok_providers=("anthropic", "openai"), chosen_model="openai/gpt-5.4-nano", channels=CHANNEL_SETS[2])
    for i, keys in enumerate((("minimax", "moonshot"), ("moonshot",), ("minimax",))):
        add("platform-tiers", plan="starter", platform_keys=keys, channels=CHANNEL_SETS[i % 4], strategy=STRATEGIES[i])
    add("platform-tiers", plan="premium", platform_keys=("anthropic",), channels=CHANNEL_SETS[2])
    add("platform-tiers", plan="premium", platform_keys=("anthropic",), chosen_model="anthropic/claude-opus-4-6", channels=CHANNEL_SETS[3], strategy="quality_first")
    for i, keys in enumerate(BYOK_KEY_SETS):
        add("platform-tiers", plan="byok", byok_providers=keys, platform_keys=("minimax",), channels=CHANNEL_SETS[(i + 1) % 4], strategy=STRATEGIES[i % 3])
    add("platform-tiers", plan="byok", platform_keys=("minimax",), channels=CHANNEL_SETS[1])  # grace: no own key
    add("platform-tiers", plan="byok", byok_providers=("openai",), channels=CHANNEL_SETS[0])  # no platform key offered
    return cases


def catalog_of(name: str) -> PlanCatalog:
    return default_catalog() if name.startswith("default-") else platform_catalog()
