"""Emulated machines that carry a generated OpenClaw config, and exec helpers, for tests of the
emulated agent (the same tenant the real-gateway captures were made with)."""

from __future__ import annotations

import base64
import json
from typing import Any

import httpx

from agents_config.catalog import load_catalog
from agents_config.openclaw_config import GATEWAY_TOKEN_ENV, render_openclaw_config
from agents_config.spec import ChannelSpec, TenantSpec
from controlplane.fly.emulator import FlyEmulator
from tests.support.byok_fakes import valid_key
from tests.support.emulator import IMAGE, CheckedClient, machine_body, make_app

CONFIG_PATH = "/etc/openclaw/openclaw.json"
GATEWAY_TOKEN = "gw-token-for-tests"
TELEGRAM_TOKEN = "7000000001:AAfakeTelegramTokenForEmulatorTest0"


def agent_spec() -> TenantSpec:
    """Power plan, one Anthropic key, Telegram: what ``tests/support/openclaw_captures`` ran."""
    return TenantSpec(
        tenant_id="01JCAPTURE000000000000001",
        app_name="oc-capture-1",
        plan="power",
        byok_providers=("anthropic",),
        channels=(ChannelSpec(kind="telegram", allow_from=("123456789",)),),
        chosen_model="anthropic/claude-sonnet-4-6",
        strategy="quality_first",
        region="fra",
        image=IMAGE,
        desired_rev=1,
    )


def agent_config(spec: TenantSpec | None = None) -> dict[str, Any]:
    return render_openclaw_config(spec or agent_spec(), load_catalog()).config


def agent_secrets() -> dict[str, str]:
    return {
        "ANTHROPIC_API_KEY": valid_key("anthropic", seed=2026),
        "TELEGRAM_BOT_TOKEN": TELEGRAM_TOKEN,
        GATEWAY_TOKEN_ENV: GATEWAY_TOKEN,
    }


def agent_machine_body(config: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    """A machine create body whose config delivers ``openclaw.json`` like the control plane does."""
    body = machine_body(**extra)
    raw = base64.b64encode(json.dumps(config or agent_config()).encode()).decode()
    body["config"]["env"] = {"OPENCLAW_CONFIG_PATH": CONFIG_PATH, "OPENCLAW_STATE_DIR": "/data"}
    body["config"]["files"] = [{"guest_path": CONFIG_PATH, "raw_value": raw, "mode": 420}]
    body["config"]["restart"] = {"policy": "on-failure", "max_retries": 10}
    return body


async def start_agent(
    emu: FlyEmulator, api: CheckedClient, app: str = "oc-capture-1", **extra: Any
) -> tuple[str, str]:
    """App + secrets + a machine running the agent; the emulated clock moved until it is booted."""
    await make_app(api, app)
    response = await api.post(f"/v1/apps/{app}/secrets", json={"values": agent_secrets()})
    assert response.status_code == 200, response.text
    emu.advance(emu.world.profile.secrets_visibility)
    body = agent_machine_body(min_secrets_version=response.json()["version"], **extra)
    created = await api.post(f"/v1/apps/{app}/machines", json=body)
    assert created.status_code == 200, created.text
    profile = emu.world.profile
    emu.advance(profile.create + profile.start + profile.gateway_boot + profile.read_lag)
    return app, str(created.json()["id"])


async def run(
    api: CheckedClient, app: str, machine_id: str, *argv: str, nonce: str | None = None
) -> httpx.Response:
    headers = {"fly-machine-lease-nonce": nonce} if nonce else None
    return await api.post(
        f"/v1/apps/{app}/machines/{machine_id}/exec",
        json={"command": list(argv), "timeout": 30},
        headers=headers,
    )


async def run_json(api: CheckedClient, app: str, machine_id: str, *argv: str) -> tuple[int, Any]:
    """(exit code, parsed stdout) of a command that prints JSON; the exec itself must answer 200."""
    response = await run(api, app, machine_id, *argv)
    assert response.status_code == 200, response.text
    answer = response.json()
    return int(answer["exit_code"]), json.loads(answer["stdout"])
