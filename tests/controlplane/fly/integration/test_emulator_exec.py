"""``FlyClient.exec_machine`` against the emulator: the agent's own view read privately through Fly's
exec, refusals as classified errors, client pacing under Fly's per-machine limit."""

from __future__ import annotations

import asyncio
import json

import pytest
import structlog

from controlplane.fly import (
    CreateMachineRequest,
    FlyClient,
    FlyLeaseHeld,
    FlyWrongState,
    create_app_idempotent,
    create_machine_idempotent,
)
from controlplane.fly.emulator import FlyEmulator
from tests.support.agent_machines import agent_machine_body, agent_secrets
from tests.support.emulator import emulator

APP = "oc-exec-1"
MODELS = ["openclaw", "models", "status", "--json"]


async def _agent(fly: FlyClient, emu: FlyEmulator) -> str:
    await create_app_idempotent(fly, APP)
    written = await fly.set_secrets(APP, agent_secrets())
    request = CreateMachineRequest.model_validate(agent_machine_body())
    request.min_secrets_version = written.version
    emu.advance(emu.world.profile.secrets_visibility)
    machine = await create_machine_idempotent(fly, APP, request, "tag-exec", lookup_first=False)
    # The emulated clock is nearly frozen (deterministic pacing): move it past the boot instead of waiting.
    profile = emu.world.profile
    emu.advance(profile.create + profile.start + profile.gateway_boot + profile.read_lag)
    assert emu.machine(machine.id).state == "started"
    return machine.id


async def test_exec_reads_the_agents_own_view(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(rate_limits=True, clock_speed=1e-6)
    fly, transport = make_client(emu, clock=emu.client_clock(jump=True))
    async with fly:
        mid = await _agent(fly, emu)
        emu.fail_credential(mid, "anthropic", "billing")
        result = await fly.exec_machine(APP, mid, MODELS, timeout=20)
        assert result.ok and result.exit_signal == 0
        (profile,) = json.loads(result.stdout)["auth"]["unusableProfiles"]
        assert (profile["reason"], profile["kind"]) == ("billing", "disabled")

        checked = await fly.exec_machine(APP, mid, [*MODELS, "--check"], timeout=20)
        assert checked.exit_code == 1 and not checked.ok  # a failed command is an answer, not an error
        assert "stdout=<" in repr(checked) and "unusableProfiles" not in repr(checked)

    (sent,) = transport.calls("POST", rf"/apps/{APP}/machines/{mid}/exec")[:1]
    assert sent.body == {"command": MODELS, "timeout": 20}


async def test_exec_refusals_are_classified_errors(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(clock_speed=1e-6)
    fly, _ = make_client(emu, clock=emu.client_clock(jump=True))
    async with fly:
        mid = await _agent(fly, emu)
        lease = await fly.acquire_lease(APP, mid, ttl=30)
        with pytest.raises(FlyLeaseHeld):
            await fly.exec_machine(APP, mid, ["openclaw", "health", "--json"])
        assert (await fly.exec_machine(APP, mid, ["true"], nonce=lease.nonce)).ok
        await fly.release_lease(APP, mid, lease.nonce)

        await fly.stop_machine(APP, mid)
        emu.advance(emu.world.profile.stop)
        with pytest.raises(FlyWrongState):
            await fly.exec_machine(APP, mid, ["openclaw", "health", "--json"])
        emu.advance(30)
        assert emu.machine(mid).state == "stopped"  # never woken by exec
        with pytest.raises(ValueError):
            await fly.exec_machine(APP, mid, [])


async def test_a_burst_of_execs_on_one_machine_is_paced_not_refused(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(rate_limits=True, clock_speed=1e-6)
    fly, transport = make_client(emu, clock=emu.client_clock(jump=True))
    async with fly:
        mid = await _agent(fly, emu)
        with structlog.testing.capture_logs() as logs:
            results = await asyncio.gather(*(fly.exec_machine(APP, mid, ["true"]) for _ in range(8)))
    assert all(r.ok for r in results)
    assert [e for e in logs if e.get("status_code") == 429] == []
    assert len(transport.calls("POST", rf"/apps/{APP}/machines/{mid}/exec")) == 8
