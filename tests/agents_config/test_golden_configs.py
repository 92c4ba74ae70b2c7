"""Golden files: the exact OpenClaw and machine configs of a few tenants.

Regenerate after an intended change: ``UPDATE_GOLDEN=1 .venv/bin/pytest tests/agents_config -k golden``
and review the diff.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from agents_config.canonical import pretty_json
from agents_config.machine_config import render_machine_config
from agents_config.spec import ChannelSpec
from tests.support.agent_configs import default_catalog, platform_catalog, spec

GOLDEN = Path(__file__).parent / "golden"

TENANTS = {
    "default-starter-deepseek": (
        default_catalog,
        spec(
            plan="starter",
            app_name="oc-gold-1",
            byok_providers=["deepseek"],
            strategy="aggressive",
            channels=[ChannelSpec(kind="telegram", allow_from=("123456789",)), ChannelSpec(kind="slack")],
        ),
    ),
    "default-power-multi": (
        default_catalog,
        spec(
            plan="power",
            app_name="oc-gold-2",
            byok_providers=["anthropic", "openai", "moonshot"],
            chosen_model="anthropic/claude-sonnet-4-6",
            strategy="quality_first",
            desired_rev=9,
            channels=[
                ChannelSpec(kind="discord", allow_from=("112233445566778899",)),
                ChannelSpec(kind="telegram", dm_policy="open"),
                ChannelSpec(kind="slack"),
            ],
        ),
    ),
    "default-pro-whatsapp": (
        default_catalog,
        spec(
            plan="pro",
            app_name="oc-gold-6",
            byok_providers=["anthropic"],
            channels=[
                ChannelSpec(kind="whatsapp", allow_from=("+15555550123",)),
                ChannelSpec(kind="telegram", allow_from=("123456789",)),
            ],
        ),
    ),
    "default-starter-whatsapp-dropped": (
        default_catalog,
        spec(
            plan="starter",
            app_name="oc-gold-7",
            byok_providers=["openai"],
            channels=[
                ChannelSpec(kind="whatsapp", allow_from=("+15555550123",)),
                ChannelSpec(kind="telegram", allow_from=("123456789",)),
            ],
        ),
    ),
    "platform-starter-kimi": (
        platform_catalog,
        spec(
            plan="starter",
            app_name="oc-gold-3",
            platform_keys=["moonshot", "minimax"],
            channels=[ChannelSpec(kind="telegram")],
        ),
    ),
    "platform-byok-grace-proxy": (
        platform_catalog,
        spec(
            plan="byok",
            app_name="oc-gold-5",
            platform_keys=["minimax"],
            platform_proxy_url="https://meter.example.com",
            channels=[ChannelSpec(kind="telegram", allow_from=("123456789",))],
        ),
    ),
    "platform-byok-fallback": (
        platform_catalog,
        spec(
            plan="byok",
            app_name="oc-gold-4",
            byok_providers=["openai"],
            platform_keys=["minimax"],
            strategy="balanced",
            channels=[ChannelSpec(kind="slack", allow_from=("U012ABCDEF",))],
        ),
    ),
}


@pytest.mark.parametrize("name", sorted(TENANTS))
def test_golden(name: str) -> None:
    catalog_factory, tenant = TENANTS[name]
    from agents_config.openclaw_config import render_openclaw_config

    rendered = render_openclaw_config(tenant, catalog_factory())
    machine = render_machine_config(tenant, catalog_factory(), volume_id="vol_gold000001", openclaw=rendered)
    actual = (
        pretty_json(
            {
                "openclaw": rendered.config,
                "sha256": rendered.sha256,
                "routing_notes": list(rendered.routing.notes),
                "dropped_channels": list(rendered.dropped_channels),
                "channel_notes": list(rendered.channel_notes),
                "secret_env": [
                    [s.env_var, s.kind, s.subject] + (["generated"] if s.generated else [])
                    for s in rendered.secret_env
                ],
                "machine": machine,
            }
        )
        + "\n"
    )
    path = GOLDEN / f"{name}.json"
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(actual, encoding="utf-8")
    assert path.exists(), f"missing {path.name}: run with UPDATE_GOLDEN=1 to create it"
    expected = path.read_text(encoding="utf-8")
    assert json.loads(actual) == json.loads(expected), f"{path.name} differs; UPDATE_GOLDEN=1 if intended"
    assert actual == expected
