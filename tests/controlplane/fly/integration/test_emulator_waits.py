"""wait_for against the emulator with slow transitions: 408 loops, replaced-version following,
start while replacing (412), and 404 = destroyed. The emulator runs 300x faster than real time; the
client reads the emulated clock, so wait deadlines below are emulated seconds."""

from __future__ import annotations

from controlplane.fly import (
    CreateMachineRequest,
    FlyWrongState,
    MachineConfig,
    MachineLease,
    UpdateMachineRequest,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from tests.support.emulator import ORG, TOKEN

SPEED = 300.0  # emulated seconds per real second


def slow_emulator() -> FlyEmulator:
    profile = LatencyProfile.zero().with_(start=150.0, replace=120.0, stop=3.0, destroy=2.0)
    return FlyEmulator(EmulatorOptions(latency=profile, org=ORG, token=TOKEN, clock_speed=SPEED))


async def test_wait_loops_over_408_and_follows_replaced_version(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = slow_emulator()
    fly, transport = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-slow")
        request = CreateMachineRequest(config=MachineConfig(image="img:1"))
        machine = await create_machine_idempotent(fly, "oc-slow", request, "tag-slow", lookup_first=False)
        # Each emulated /wait lasts at most 60 s (0.2 s real), so a 150 s boot needs several
        # 408-answered long polls.
        result = await wait_for(
            fly, "oc-slow", machine.id, "started", timeout=600, version=machine.current_version
        )
        assert result.state == "started"
        waits = transport.calls("GET", rf"/apps/oc-slow/machines/{machine.id}/wait")
        assert len(waits) >= 2

        current = await fly.get_machine("oc-slow", machine.id)
        assert current.config is not None
        async with MachineLease(fly, "oc-slow", machine.id) as lease:
            current.config.env = {"ROTATED": "1"}
            updated = await fly.update_machine(
                "oc-slow",
                machine.id,
                UpdateMachineRequest(config=current.config, current_version=current.current_version),
                nonce=lease.nonce,
            )
        assert updated.current_version != current.current_version
        # Waiting on the OLD version: the emulator answers "currently replaced"; we re-GET and follow.
        followed = await wait_for(
            fly, "oc-slow", machine.id, "started", timeout=600, version=current.current_version
        )
        assert followed.state == "started" and followed.version == updated.current_version


async def test_start_while_replacing_is_wrong_state_then_works(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = slow_emulator()
    fly, _ = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-stopped")
        machine = await create_machine_idempotent(
            fly,
            "oc-stopped",
            CreateMachineRequest(config=MachineConfig(image="img:1"), skip_launch=True),
            "tag-s",
            lookup_first=False,
        )
        await wait_for(
            fly,
            "oc-stopped",
            machine.id,
            ["stopped", "settled"],
            timeout=600,
            version=machine.current_version,
        )
        current = await fly.get_machine("oc-stopped", machine.id)
        assert current.config is not None
        updated = await fly.update_machine(
            "oc-stopped", machine.id, UpdateMachineRequest(config=current.config, skip_launch=True)
        )
        try:
            await fly.start_machine("oc-stopped", machine.id)
        except FlyWrongState:
            pass  # 412 while replacing: the documented behaviour; wait for it to settle first
        else:
            raise AssertionError("start during replacing should be refused")
        await wait_for(fly, "oc-stopped", machine.id, "settled", timeout=600, version=updated.current_version)
        await fly.start_machine("oc-stopped", machine.id)
        started = await wait_for(
            fly, "oc-stopped", machine.id, "started", timeout=600, version=updated.current_version
        )
        assert started.state == "started"
        await fly.destroy_machine("oc-stopped", machine.id, force=True)
        assert (await wait_for(fly, "oc-stopped", machine.id, "destroyed", timeout=600)).state == "destroyed"
