"""The client against the emulator's less-kind corners: dead-end states in waits, migrated
versions, a 404 lookup during an idempotent create, and lease acquires whose answer is lost."""

from __future__ import annotations

import pytest

from controlplane.fly import (
    CreateMachineRequest,
    FlyMachineFailed,
    FlyNotFound,
    MachineConfig,
    MachineLease,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from controlplane.fly.emulator import LatencyProfile
from tests.support.emulator import emulator, eventually

REQUEST = CreateMachineRequest(config=MachineConfig(image="img:1"))


async def test_wait_raises_at_once_on_failed_and_launch_failed(make_client) -> None:  # type: ignore[no-untyped-def]
    # a full 60 s long poll is 0.3 s real; launch_failed lasts long enough to be seen
    emu = emulator(clock_speed=200.0, latency=LatencyProfile.fast().with_(destroy=600.0))
    fly, transport = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-fail")
        machine = await create_machine_idempotent(fly, "oc-fail", REQUEST, "tag-fail", lookup_first=False)
        await wait_for(fly, "oc-fail", machine.id, "started", timeout=60, version=machine.current_version)
        emu.fail_machine(machine.id)
        before = len(transport.calls("GET", rf"/apps/oc-fail/machines/{machine.id}/wait"))
        with pytest.raises(FlyMachineFailed) as info:
            await wait_for(
                fly, "oc-fail", machine.id, "started", timeout=3600, version=machine.current_version
            )
        assert info.value.last_state == "failed" and not info.value.transient
        # one long poll (or none), not a spin to the one-hour deadline
        assert len(transport.calls("GET", rf"/apps/oc-fail/machines/{machine.id}/wait")) - before == 1
        assert (await wait_for(fly, "oc-fail", machine.id, "failed", timeout=60)).state == "failed"

        doomed = await create_machine_idempotent(
            fly,
            "oc-fail",
            CreateMachineRequest(config=MachineConfig(image="img:1"), name="doomed"),
            "tag-doomed",
            lookup_first=False,
        )
        await eventually(lambda: fly.get_machine("oc-fail", doomed.id), fly.clock, retry_on=(FlyNotFound,))
        emu.launch_fail(doomed.id)
        with pytest.raises(FlyMachineFailed) as info:
            await wait_for(fly, "oc-fail", doomed.id, "started", timeout=3600, version=doomed.current_version)
        assert info.value.last_state == "launch_failed"
        emu.advance(600)
        gone = await wait_for(fly, "oc-fail", doomed.id, "destroyed", timeout=60)  # it ends destroyed
        assert gone.state == "destroyed"


async def test_wait_follows_a_migrated_version(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator(clock_speed=200.0)  # the wait on the old version ends in a 60 s long poll
    fly, _ = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-move")
        machine = await create_machine_idempotent(fly, "oc-move", REQUEST, "tag-move", lookup_first=False)
        await wait_for(fly, "oc-move", machine.id, "started", timeout=60, version=machine.current_version)
        await fly.stop_machine("oc-move", machine.id)
        await wait_for(fly, "oc-move", machine.id, "stopped", timeout=60, version=machine.current_version)
        emu.migrate(machine.id, on_next_start=True)
        started = await fly.start_machine("oc-move", machine.id)
        assert started.migrated is True and started.new_host
        result = await wait_for(
            fly, "oc-move", machine.id, "started", timeout=60, version=machine.current_version
        )
        assert result.state == "started" and result.version == emu.machine(machine.id).instance_id
        assert result.version != machine.current_version


async def test_idempotent_create_never_recreates_on_a_404_lookup(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator()
    fly, transport = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-lag")
        emu.inject("create_machine", "ambiguous_503", times=1)
        emu.inject("list_machines", "404", times=None)  # the lookup keeps answering "not found"
        with pytest.raises(FlyNotFound):
            await create_machine_idempotent(
                fly, "oc-lag", REQUEST, "tag-lag", lookup_first=False, lookup_delay=0.1
            )
        assert len(transport.calls("POST", r"/apps/oc-lag/machines")) == 1  # never created again
        assert len(emu.machines_in("oc-lag")) == 1

        emu.clear_faults()
        emu.inject("list_machines", "404", times=2)  # a brief lag: looked up again, then adopted
        adopted = await create_machine_idempotent(fly, "oc-lag", REQUEST, "tag-lag")
        assert [m.id for m in emu.machines_in("oc-lag")] == [adopted.id]


@pytest.mark.parametrize("kind", ["ambiguous_408", "ambiguous_503", "ambiguous_drop"])
async def test_ambiguous_lease_acquire_is_looked_up_never_assumed(make_client, kind: str) -> None:  # type: ignore[no-untyped-def]
    emu = emulator()
    fly, _ = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-lease")
        machine = await create_machine_idempotent(fly, "oc-lease", REQUEST, "tag-l", lookup_first=False)
        await wait_for(fly, "oc-lease", machine.id, "started", timeout=60, version=machine.current_version)
        emu.inject("acquire_lease", kind, times=1)
        async with MachineLease(fly, "oc-lease", machine.id, description="rotate") as lease:
            held = emu.machine(machine.id).lease
            assert held is not None and lease.nonce == held.nonce  # adopted by its marker: nonce known
            await fly.stop_machine("oc-lease", machine.id, nonce=lease.nonce)
        assert await fly.get_lease("oc-lease", machine.id) is None  # released, not leaked

        emu.inject("acquire_lease", "503", times=1)  # refused before it ran: nothing to adopt
        async with MachineLease(fly, "oc-lease", machine.id) as lease:
            assert lease.nonce == emu.machine(machine.id).lease.nonce  # type: ignore[union-attr]
        assert await fly.get_lease("oc-lease", machine.id) is None
