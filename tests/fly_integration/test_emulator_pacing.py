"""Client-side pacing keeps the control plane under Fly's published limits: against the emulator
(which enforces them and answers 429), a burst of calls on one machine gets no 429 at all."""

from __future__ import annotations

import asyncio

import structlog

from controlplane.fly import CreateMachineRequest, MachineConfig
from tests.fly_integration.conftest import emulator


async def test_burst_on_one_machine_never_provokes_429(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(rate_limits=True)
    fly, transport = make_client(emu)
    async with fly:
        await fly.create_app_idempotent("oc-pace")
        machine = await fly.create_machine_idempotent(
            "oc-pace", CreateMachineRequest(config=MachineConfig(image="img:1")), "tag-p", lookup_first=False
        )
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(
                *(fly.get_machine("oc-pace", machine.id) for _ in range(14)),
                *(fly.set_metadata("oc-pace", machine.id, "k", str(i)) for i in range(5)),
            )
    rejected = [e for e in logs if e.get("status_code") == 429]
    assert rejected == []
    assert len(transport.calls("GET", rf"/apps/oc-pace/machines/{machine.id}")) == 14
