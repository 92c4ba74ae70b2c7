"""Full tenant lifecycle through the client against the emulator (in-process and real loopback).

The emulator runs the ``fast`` profile, so everything Fly does not do instantly is not instant here
either: secrets become visible a moment after the write, lists lag behind changes, a destroyed
machine is first visible as ``destroyed``, a deleted app answers 404 only after its machines are gone.
The test waits for each of those the way production code must."""

from __future__ import annotations

import pytest

from controlplane.fly import (
    CREATE_TAG_KEY,
    CreateMachineRequest,
    CreateVolumeRequest,
    FlyClient,
    FlyLeaseHeld,
    FlySecretsNotVisible,
    MachineConfig,
    MachineGuest,
    MachineLease,
    MachineMount,
    MachineService,
    OrgMachineQuery,
    OrgMachineScan,
    UpdateMachineRequest,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from controlplane.fly import FlyNotFound as _NotFound
from tests.support.emulator import ORG, TOKEN, emulator, eventually

APP = "oc-tenant-1"


def machine_request(min_secrets_version: int | None, volume: str | None = None) -> CreateMachineRequest:
    return CreateMachineRequest(
        name="gateway",
        region="iad",
        min_secrets_version=min_secrets_version,
        config=MachineConfig(
            image="ghcr.io/openclaw/openclaw:2026.9.6",
            guest=MachineGuest(cpu_kind="shared", cpus=1, memory_mb=1024),
            env={"OPENCLAW_GATEWAY_PORT": "18789"},
            metadata={"tenant": "t1"},
            services=[
                MachineService(
                    protocol="tcp",
                    internal_port=18789,
                    autostop="stop",
                    autostart=True,
                    ports=[{"port": 443, "handlers": ["tls", "http"]}],
                )
            ],
            mounts=[MachineMount(volume=volume, path="/data")] if volume else None,
        ),
    )


async def lifecycle(fly: FlyClient) -> None:
    app = await create_app_idempotent(fly, APP, network=APP)
    assert app.name == APP
    assert (await create_app_idempotent(fly, APP)).name == APP  # adopt on repeat (422 → ours)

    secrets = await fly.set_secrets(APP, {"ANTHROPIC_API_KEY": "sk-ant-one"})
    assert secrets.version is not None

    async def secret_names() -> set[str]:
        return {s.name for s in await fly.list_secrets(APP)}

    async def only_anthropic() -> None:
        assert await secret_names() == {"ANTHROPIC_API_KEY"}

    await eventually(only_anthropic, fly.clock)  # the secret store is read eventually-consistently

    volume = await fly.create_volume(APP, CreateVolumeRequest(name="data", region="iad", size_gb=1))
    assert (await fly.get_volume(APP, volume.id)).id == volume.id
    assert [v.id for v in await fly.list_volumes(APP)] == [volume.id]

    machine = await create_machine_idempotent(
        fly, APP, machine_request(secrets.version, volume.id), "tag-t1-1"
    )
    assert machine.metadata[CREATE_TAG_KEY] == "tag-t1-1"
    started = await wait_for(fly, APP, machine.id, "started", timeout=60, version=machine.current_version)
    assert started.state == "started"

    async def listed_started() -> None:  # the list catches up with "started" a moment later
        listed = await fly.list_machines(APP, metadata={CREATE_TAG_KEY: "tag-t1-1"}, state="started")
        assert [m.id for m in listed] == [machine.id]

    await eventually(listed_started, fly.clock)

    # key rotation: new secrets version, whole-config update under a lease, nonce on every mutation
    rotated = await fly.set_secrets(APP, {"ANTHROPIC_API_KEY": "sk-ant-two", "OPENAI_API_KEY": "sk-two"})
    assert rotated.version is not None and secrets.version is not None and rotated.version > secrets.version
    async with MachineLease(fly, APP, machine.id, description="rotate keys") as lease:
        current = await fly.get_machine(APP, machine.id)
        assert current.config is not None
        with pytest.raises(FlyLeaseHeld):  # without the nonce a leased machine refuses mutations
            await fly.update_machine(APP, machine.id, UpdateMachineRequest(config=current.config))
        # min_secrets_version newer than the store shows → 412 for a moment: retry (a definite refusal)
        updated = await eventually(
            lambda: fly.update_machine(
                APP,
                machine.id,
                UpdateMachineRequest.from_machine(current, min_secrets_version=rotated.version),
                nonce=lease.nonce,
            ),
            fly.clock,
            retry_on=(FlySecretsNotVisible,),
        )
        assert updated.current_version != current.current_version
        assert updated.config and updated.config.env == {"OPENCLAW_GATEWAY_PORT": "18789"}
        assert updated.config.services and updated.config.services[0].autostop == "stop"
        await wait_for(fly, APP, machine.id, "started", timeout=60, version=updated.current_version)
        await fly.stop_machine(APP, machine.id, nonce=lease.nonce)
        stopped = await wait_for(fly, APP, machine.id, "stopped", timeout=60, version=updated.current_version)
        assert stopped.state == "stopped"
    assert await fly.get_lease(APP, machine.id) is None  # released

    await fly.set_metadata(APP, machine.id, "observed_rev", "7")
    assert (await fly.get_metadata(APP, machine.id))["observed_rev"] == "7"
    events = await fly.list_events(APP, machine.id, limit=50)
    assert events and all(e.type for e in events)

    async def in_org_listing() -> None:
        org_view = OrgMachineScan(fly, OrgMachineQuery(summary=True))
        found = [m async for m in org_view]
        assert [m.id for m in found if m.app_name == APP] == [machine.id]
        assert not org_view.error_regions

    await eventually(in_org_listing, fly.clock)

    await fly.unset_secrets(APP, ["OPENAI_API_KEY"])
    await eventually(only_anthropic, fly.clock)

    # two-phase destroy: delete (404 is done), confirm gone via wait destroyed (404 = destroyed)
    assert await fly.destroy_machine(APP, machine.id)
    gone = await wait_for(fly, APP, machine.id, "destroyed", timeout=60)
    assert gone.state == "destroyed"
    await fly.destroy_machine(APP, machine.id, missing_ok=True)
    await fly.delete_volume(APP, volume.id, missing_ok=True)
    assert await fly.delete_app(APP)
    await app_gone(fly, APP)


async def app_gone(fly: FlyClient, name: str) -> None:
    """Poll GET /apps/{name} until 404 (the delete is asynchronous)."""

    async def gone() -> None:
        try:
            await fly.get_app(name)
        except _NotFound:
            return
        raise AssertionError(f"app {name} still there")

    await eventually(gone, fly.clock, timeout=60)


async def test_full_lifecycle_in_process(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator()
    fly, transport = make_client(emu)
    async with fly:
        await lifecycle(fly)
    assert emu.machines_in(APP) == []
    ops = {(s.method, s.path) for s in transport.sent}
    assert ("POST", f"/apps/{APP}/machines") in ops


async def test_full_lifecycle_over_loopback_http() -> None:
    emu = emulator()
    async with emu.serve(host="127.0.0.1", port=0) as base_url:
        async with FlyClient(
            token=TOKEN, base_url=base_url, org=ORG, clock=emu.client_clock(jump=False)
        ) as fly:
            await lifecycle(fly)


async def test_wrong_token_is_unauthorized(make_client) -> None:  # type: ignore[no-untyped-def]
    from controlplane.fly import FlyUnauthorized
    from tests.support.fly_fakes import ValidatingTransport

    emu = emulator()
    async with FlyClient(
        token="fm2_wrong",
        base_url="http://fly-emulator",
        org=ORG,
        transport=ValidatingTransport(emu.transport()),
    ) as fly:
        with pytest.raises(FlyUnauthorized) as info:
            await fly.get_app("x")
    assert "fm2_wrong" not in str(info.value)


async def test_force_delete_app_with_running_machine(make_client) -> None:  # type: ignore[no-untyped-def]
    emu = emulator()
    fly, transport = make_client(emu)
    async with fly:
        await create_app_idempotent(fly, "oc-force")
        machine = await create_machine_idempotent(
            fly, "oc-force", machine_request(None), "tag-f", lookup_first=False
        )
        await wait_for(fly, "oc-force", machine.id, "started", timeout=30)
        assert await fly.delete_app("oc-force", force=True)
        await app_gone(fly, "oc-force")
        assert await fly.delete_app("oc-force", missing_ok=True) is False
    assert ("force", "true") in transport.calls("DELETE", "/apps/oc-force")[0].params
