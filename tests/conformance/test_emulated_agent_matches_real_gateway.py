"""Conformance with the real agent: the REAL OpenClaw 2026.9.6 gateway (the validator's cached install;
installed first if missing, about a minute — never skipped) boots once on loopback with a config the
control plane generates, against a fake provider that refuses the key for billing and a fake Telegram
that later refuses the bot token. Its /healthz, /startupz, /readyz and the status commands the health
poller will exec are compared with the Fly emulator's answers in the same situation: same shape (keys,
JSON types) and same meaning (exit codes, statuses, unusable profiles with reason and hint, channel
state, readiness), never volatile values (see tests/support/agent_conformance.py).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from controlplane.fly.emulator import FlyEmulator
from tests.support.agent_conformance import differences, emulate
from tests.support.agent_machines import agent_config
from tests.support.openclaw_captures.capture import Recorder, capture_secrets
from tests.support.openclaw_gateway import GATEWAY_TOKEN, FakeUpstream, OpenClawInstall, real_gateway

PROBES = ("/healthz", "/startupz", "/readyz")
STATUS_COMMANDS = (  # each is a fresh Node process (~3 s of CPU): the poller's three, nothing more
    ("models", "status", "--json"),
    ("channels", "status", "--json"),
    ("health", "--json"),
)


def _billing(emu: FlyEmulator, machine_id: str) -> None:
    emu.fail_credential(machine_id, "anthropic", "billing")


def _billing_and_channel(emu: FlyEmulator, machine_id: str) -> None:
    _billing(emu, machine_id)
    emu.fail_channel(machine_id, "telegram")


def _real_answers(root: Path) -> list[tuple[dict[str, Any], Any]]:
    """One boot of the real gateway: (capture, emulator set-up) for each phase."""
    install = OpenClawInstall.ensure()
    secrets = capture_secrets()
    phases: list[tuple[dict[str, Any], Any]] = []
    with (
        FakeUpstream() as upstream,
        real_gateway(install, root, agent_config(), secrets, upstream) as gateway,
    ):
        healthy = Recorder("healthy", root, secrets)
        for path in PROBES:
            healthy.probe(gateway, path, "local")

        billing = Recorder("billing", root, secrets)
        upstream.modes.anthropic = "billing"
        answer = gateway.chat("hello")
        assert answer.status == 401 and "credit balance is too low" in str(answer.body)
        for command in STATUS_COMMANDS:
            billing.command(gateway.cli(*command))
        for path in PROBES:  # no probe reflects a provider key's health
            billing.probe(gateway, path, "local")

        channel = Recorder("channel_failed", root, secrets)
        upstream.modes.telegram = "unauthorized"
        gateway.wait_until(
            "the telegram account to fail",
            lambda: gateway.probe("/readyz", token=GATEWAY_TOKEN).status == 503,
        )
        channel.probe(gateway, "/readyz", "local")
        channel.command(gateway.cli("channels", "status", "--json"))
    for recorder, setup in ((healthy, None), (billing, _billing), (channel, _billing_and_channel)):
        phases.append(
            ({"scenario": recorder.scenario, "probes": recorder.probes, "commands": recorder.commands}, setup)
        )
    return phases


@pytest.mark.validator
async def test_the_emulated_agent_answers_like_the_real_gateway(tmp_path: Path) -> None:
    phases = await asyncio.to_thread(_real_answers, tmp_path)
    for real, setup in phases:
        emulated = await emulate(real, setup or (lambda emu, machine_id: None))
        assert differences(real, emulated) == [], real["scenario"]

    status = phases[1][0]["commands"][0]["stdout"]
    (profile,) = status["auth"]["unusableProfiles"]
    assert (profile["kind"], profile["reason"]) == ("disabled", "billing")  # what the poller acts on
    readyz = phases[2][0]["probes"][0]
    assert readyz["status"] == 503 and readyz["body"]["failing"] == ["telegram"]
