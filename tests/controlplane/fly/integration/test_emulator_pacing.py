"""Client-side pacing keeps the control plane under Fly's published limits: against the emulator
(which enforces them and answers 429), a burst of calls on one machine gets no 429 at all.

Deterministic: the client reads the emulator's clock and its sleeps advance that clock
(``emu.client_clock(jump=True)``), so both sides count tokens on the same time line; the emulated
clock is otherwise nearly frozen (``clock_speed``), so real scheduling jitter cannot add or remove
tokens on either side. The client's ~90% margin is what keeps the server from ever refusing."""

from __future__ import annotations

import asyncio

import structlog

from controlplane.fly import (
    CreateMachineRequest,
    MachineConfig,
    create_app_idempotent,
    create_machine_idempotent,
)
from tests.support.emulator import emulator


async def test_burst_on_one_machine_never_provokes_429(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(rate_limits=True, clock_speed=1e-6)
    fly, transport = make_client(emu, clock=emu.client_clock(jump=True))
    async with fly:
        await create_app_idempotent(fly, "oc-pace")
        request = CreateMachineRequest(config=MachineConfig(image="img:1"))
        machine = await create_machine_idempotent(fly, "oc-pace", request, "tag-p", lookup_first=False)
        emu.advance(emu.world.profile.read_lag)  # past the read-after-write lag of the new machine
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(
                *(fly.get_machine("oc-pace", machine.id) for _ in range(14)),
                *(fly.set_metadata("oc-pace", machine.id, "k", str(i)) for i in range(5)),
                *(fly.create_app(f"oc-pace-{i}") for i in range(5)),  # one org-wide bucket on Fly
            )
    rejected = [e for e in logs if e.get("status_code") == 429]
    assert rejected == []
    assert len(transport.calls("GET", rf"/apps/oc-pace/machines/{machine.id}")) == 14
    assert len(transport.calls("POST", r"/apps")) == 6


async def test_without_client_pacing_the_same_burst_is_refused(make_client) -> None:  # type: ignore[no-untyped-def]
    """The control: the emulator really enforces the limits the test above stays under."""
    emu = emulator(rate_limits=True, clock_speed=1e-6)
    fly, _ = make_client(emu, clock=emu.client_clock(jump=True), rate_limiting=False)
    async with fly:
        with structlog.testing.capture_logs() as logs:
            await asyncio.gather(*(fly.create_app(f"oc-free-{i}") for i in range(5)), return_exceptions=True)
    assert [e for e in logs if e.get("status_code") == 429]
