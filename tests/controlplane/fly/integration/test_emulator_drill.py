"""Drill: a whole tenant lifecycle through the client while 20% of ALL mutating calls are ambiguous
(``ambiguous=0.2``: the call runs on the emulator, then the answer is a 408, a 503 or a dropped
connection). The reconciler below only ever re-reads and retries; the drill passes when the world
ends exactly as intended: one machine per tenant with the rotated config, stopped, tagged, no lease
left behind (in particular none whose nonce the client never saw), and everything deleted at the end.

Tenants run one after another, so the sequence of mutations — and with it the seeded sequence of
ambiguous answers — is the same on every run."""

from __future__ import annotations

from collections import Counter
from collections.abc import Awaitable, Callable
from typing import TypeVar

from controlplane.fly import (
    CreateMachineRequest,
    FlyClient,
    FlyError,
    FlyNotFound,
    MachineConfig,
    MachineGuest,
    MachineLease,
    UpdateMachineRequest,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from tests.support.emulator import emulator

T = TypeVar("T")
TENANTS = 6
LEASE_TTL = 60  # long enough that no background refresh interleaves (keeps the drill deterministic)


async def converge(fly: FlyClient, step: Callable[[], Awaitable[T]], *, attempts: int = 40) -> T:
    """The reconciler's rule: on a transient or ambiguous error, re-read and try again later."""
    for _ in range(attempts):
        try:
            return await step()
        except FlyError as exc:
            if not (exc.transient or exc.ambiguous):
                raise
            await fly.clock.sleep(0.5)
    raise AssertionError("did not converge")


async def tenant_lifecycle(fly: FlyClient, tenant: int) -> str:
    app = f"oc-drill-{tenant}"
    await converge(fly, lambda: create_app_idempotent(fly, app, network=app, lookup_delay=0.5))
    secrets = await converge(fly, lambda: fly.set_secrets(app, {"API_KEY": f"key-{tenant}"}))
    request = CreateMachineRequest(
        region="iad",
        min_secrets_version=secrets.version,
        config=MachineConfig(
            image="img:1",
            guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=512),
            metadata={"tenant": str(tenant)},
        ),
    )
    machine = await converge(
        fly, lambda: create_machine_idempotent(fly, app, request, f"drill-{tenant}", lookup_delay=0.5)
    )
    await converge(fly, lambda: wait_for(fly, app, machine.id, "started", timeout=60))

    async def rotate_and_stop() -> None:
        async with MachineLease(fly, app, machine.id, ttl=LEASE_TTL, description="drill") as lease:
            current = await fly.get_machine(app, machine.id)
            if current.config is None or current.config.env != {"ROTATED": "1"}:
                update = UpdateMachineRequest.from_machine(current)
                update.config.env = {"ROTATED": "1"}
                await fly.update_machine(app, machine.id, update, nonce=lease.nonce)  # ambiguous → redo
            await wait_for(fly, app, machine.id, ["started", "stopped"], timeout=60)
            await fly.stop_machine(app, machine.id, nonce=lease.nonce)
            await wait_for(fly, app, machine.id, "stopped", timeout=60)

    await converge(fly, rotate_and_stop)
    await converge(fly, lambda: fly.set_metadata(app, machine.id, "observed_rev", "2"))
    return machine.id


async def teardown(fly: FlyClient, tenant: int, machine_id: str) -> None:
    app = f"oc-drill-{tenant}"
    await converge(fly, lambda: fly.destroy_machine(app, machine_id, missing_ok=True))
    await converge(fly, lambda: wait_for(fly, app, machine_id, "destroyed", timeout=60))
    await converge(fly, lambda: fly.delete_app(app, missing_ok=True))

    for _ in range(60):  # the delete is asynchronous: poll until 404
        try:
            await fly.get_app(app)
        except FlyNotFound:
            return
        await fly.clock.sleep(0.5)
    raise AssertionError(f"app {app} never went away")


async def test_lifecycle_under_ambiguous_mutations_ends_consistent(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator("ambiguous=0.2", seed=7)
    fly, _ = make_client(emu)
    async with fly:
        machine_ids = [await tenant_lifecycle(fly, t) for t in range(TENANTS)]

        for tenant, machine_id in enumerate(machine_ids):
            machines = emu.machines_in(f"oc-drill-{tenant}")
            assert [m.id for m in machines] == [machine_id]  # no duplicate from an ambiguous create
            record = machines[0]
            assert record.state == "stopped" and record.config["env"] == {"ROTATED": "1"}
            assert record.config["metadata"]["observed_rev"] == "2"
            assert await fly.get_lease(f"oc-drill-{tenant}", machine_id) is None  # nothing leaked

        for tenant, machine_id in enumerate(machine_ids):
            await teardown(fly, tenant, machine_id)
    assert dict(emu.apps) == {} and emu.machines_in("oc-drill-0", include_destroyed=True) == []

    fired = Counter(op for op, kind in emu.faults_fired if kind.startswith("ambiguous"))
    assert sum(fired.values()) >= 10, fired
    # the dangerous ones were really exercised
    assert fired["acquire_lease"] >= 1 and fired["update_machine"] >= 1 and fired["create_machine"] >= 1, (
        fired
    )
