"""Fly behaviours the emulator must NOT be kinder about (each fails against a kinder emulator):
the default ``fast`` profile's races, read-after-write 404s, lagging list views, untrustworthy hosts,
``launch_failed``/``migrated``, app-delete cascade, suspend/stop preconditions, lease versions."""

from __future__ import annotations

import asyncio

from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from tests.support.emulator import CheckedClient, machine_body, make_app, options

NONCE = "fly-machine-lease-nonce"
FAST = LatencyProfile.fast()


def fast_emulator(**overrides: object) -> FlyEmulator:
    return FlyEmulator(options(latency="fast", clock_speed=1e-6, **overrides))  # time moves by advance only


async def _started(emu: FlyEmulator, api: CheckedClient, app: str, **body: object) -> tuple[str, dict]:
    created = (await api.post(f"/v1/apps/{app}/machines", json=machine_body(**body))).json()  # type: ignore[arg-type]
    emu.advance(FAST.create + FAST.start + FAST.read_lag)
    return f"/v1/apps/{app}/machines/{created['id']}", created


def test_fast_is_the_default_profile_with_non_zero_floors() -> None:
    assert EmulatorOptions().latency == "fast"
    profile = EmulatorOptions().profile()
    assert profile.replace >= 1 and profile.destroyed_retention >= 1 and profile.gateway_boot >= 1
    assert profile.secrets_visibility >= 0.5 and profile.list_consistency >= 0.5 and profile.read_lag >= 0.5
    assert EmulatorOptions().retry_after is False and EmulatorOptions().enforce_current_version is False


async def test_fast_profile_shows_the_races_zero_hides() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, _ = await _started(emu, api, app)
        assert (await api.get(base)).json()["checks"] == []  # right after start: no results yet
        emu.advance(FAST.gateway_boot)
        assert (await api.get(base)).json()["checks"]

        await api.post(base + "/stop", json={})
        emu.advance(FAST.stop)
        config = (await api.get(base)).json()["config"]
        updated = await api.post(base, json={"config": config})
        assert updated.json()["state"] == "replacing"
        refused = await api.post(base + "/start")
        assert refused.status_code == 412 and "replacing" in refused.json()["error"]
        emu.advance(FAST.replace)
        assert (await api.post(base + "/start")).status_code == 200

        version = (await api.post(f"/v1/apps/{app}/secrets", json={"values": {"K": "v"}})).json()["version"]
        too_soon = await api.post(f"/v1/apps/{app}/machines", json=machine_body(min_secrets_version=version))
        assert too_soon.status_code == 412
        emu.advance(FAST.secrets_visibility)
        assert (
            await api.post(f"/v1/apps/{app}/machines", json=machine_body(min_secrets_version=version))
        ).status_code == 200

        emu.advance(FAST.start)
        await api.delete(base, params={"force": "true"})
        emu.advance(FAST.destroy)
        assert (await api.get(base)).json()["state"] == "destroyed"  # visible before the 404
        emu.advance(FAST.destroyed_retention)
        assert (await api.get(base)).status_code == 404


async def test_read_after_write_404_on_new_machine_and_app() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        assert (await api.get(f"/v1/apps/{app}")).status_code == 404
        assert (await api.get(f"/v1/apps/{app}/machines")).status_code == 404
        created = (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()  # create works
        base = f"/v1/apps/{app}/machines/{created['id']}"
        assert (await api.get(base)).status_code == 404
        assert (await api.get(base + "/wait", params={"state": "started", "timeout": 1})).status_code == 404
        emu.advance(FAST.read_lag)
        assert (await api.get(f"/v1/apps/{app}")).status_code == 200
        assert (await api.get(base)).status_code == 200

        emu.inject("get_machine", "404", times=1)  # injectable, too
        injected = await api.get(base)
        assert injected.status_code == 404 and injected.json()["error"] == "machine not found"
        assert (await api.get(base)).status_code == 200


async def test_lists_lag_behind_every_change_and_keep_the_change_time() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, created = await _started(emu, api, app)
        emu.advance(FAST.list_consistency)

        async def listed() -> dict:
            machines = (await api.get(f"/v1/apps/{app}/machines")).json()
            org = (await api.get("/v1/orgs/test-org/machines")).json()["machines"]
            assert len(machines) == 1 and len(org) == 1
            assert machines[0]["state"] == org[0]["state"]
            return machines[0]

        assert (await listed())["state"] == "started"
        await api.post(base + "/stop", json={})
        stop_time = (await api.get(base)).json()["updated_at"]
        assert (await listed())["state"] == "started"  # not yet
        emu.advance(FAST.list_consistency)
        shown = await listed()
        assert shown["state"] == "stopping" and shown["updated_at"] == stop_time  # the change's own time

        await api.post(base + "/metadata/rev", json={"value": "7"})
        assert "rev" not in (await listed())["config"]["metadata"]
        filtered = await api.get(f"/v1/apps/{app}/machines", params={"metadata.rev": "7"})
        assert filtered.json() == []
        emu.advance(FAST.list_consistency)
        assert (await listed())["config"]["metadata"]["rev"] == "7"
        assert created["instance_id"] == (await listed())["instance_id"]


async def test_untrustworthy_host_hides_config_skips_filters_and_refuses_mutations() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, created = await _started(emu, api, app)
        emu.set_host_status(created["id"], "unreachable")
        emu.advance(FAST.list_consistency)
        shown = (await api.get(base)).json()
        assert "config" not in shown and shown["incomplete_config"]["metadata"] == {
            "control_plane_id": "cp-1"
        }
        assert shown["host_status"] == "unreachable"
        assert (
            await api.get(f"/v1/apps/{app}/machines", params={"metadata.control_plane_id": "cp-1"})
        ).json() == []
        for call in (
            api.post(base + "/stop", json={}),
            api.post(base, json={"config": machine_body()["config"]}),
            api.post(base + "/metadata/k", json={"value": "v"}),
            api.delete(base, params={"force": "true"}),
        ):
            refused = await call
            assert refused.status_code == 503
        assert emu.machine(created["id"]).state == "started"  # nothing happened
        emu.set_host_status(created["id"], "ok")
        assert (await api.post(base + "/stop", json={})).status_code == 200


async def test_launch_failed_ends_destroyed_and_migration_leaves_a_migrated_version() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        doomed = (await api.post(f"/v1/apps/{app}/machines", json=machine_body("doomed"))).json()
        emu.advance(FAST.read_lag)
        emu.launch_fail(doomed["id"])
        base = f"/v1/apps/{app}/machines/{doomed['id']}"
        assert (await api.get(base)).json()["state"] == "launch_failed"
        emu.advance(FAST.destroy)
        assert (await api.get(base)).json()["state"] == "destroyed"

        base, created = await _started(emu, api, app, name="mover")
        v1 = created["instance_id"]
        v2 = emu.migrate(created["id"])
        assert v2 and v2 != v1
        waiting = asyncio.ensure_future(
            api.get(base + "/wait", params={"state": "started", "version": v1, "timeout": 1})
        )
        await asyncio.sleep(0.05)
        emu.advance(1.5)  # let the long poll time out (emulated time is frozen otherwise)
        old = await waiting
        assert old.status_code == 408 and "currently migrated" in old.json()["error"]
        assert (await api.get(base)).json()["instance_id"] == v2

        await api.post(base + "/stop", json={})
        emu.advance(FAST.stop)
        emu.migrate(created["id"], on_next_start=True)
        started = (await api.post(base + "/start")).json()
        assert started["migrated"] is True and started["new_host"]
        assert (await api.get(base)).json()["instance_id"] != v2


async def test_app_delete_cascades_refuses_creates_then_404() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, created = await _started(emu, api, app)
        assert (await api.delete(f"/v1/apps/{app}", params={"force": "true"})).status_code == 202
        assert (await api.get(base)).json()["state"] == "destroying"
        refused = await api.post(f"/v1/apps/{app}/machines", json=machine_body("late"), check=False)
        assert refused.status_code == 409 and "being deleted" in refused.json()["error"]
        emu.advance(FAST.destroy * 1.1)
        emu.advance(FAST.list_consistency)
        listed = (await api.get(f"/v1/apps/{app}/machines", params={"include_deleted": "true"})).json()
        assert [m["state"] for m in listed] == ["destroyed"]
        emu.advance(FAST.app_delete + FAST.destroyed_retention)
        assert (await api.get(f"/v1/apps/{app}")).status_code == 404
        assert created["id"] not in emu.machines


async def test_stop_timeout_string_suspend_preconditions_cordon_and_lease_version() -> None:
    emu = fast_emulator()
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, created = await _started(emu, api, app)
        bad = await api.post(base + "/stop", json={"timeout": 10}, check=False)
        assert bad.status_code == 400 and "duration" in bad.json()["error"]

        big = machine_body("big")
        big["config"]["guest"] = {"cpu_kind": "performance", "cpus": 2, "memory_mb": 4096}
        swap = machine_body("swap")
        swap["config"]["init"] = {"swap_size_mb": 512}
        scheduled = machine_body("cron")
        scheduled["config"]["schedule"] = "daily"
        for body, text in ((big, "memory"), (swap, "swap"), (scheduled, "schedule")):
            machine = (await api.post(f"/v1/apps/{app}/machines", json=body, check=False)).json()
            emu.advance(FAST.create + FAST.start + FAST.read_lag)
            refused = await api.post(f"/v1/apps/{app}/machines/{machine['id']}/suspend")
            assert refused.status_code == 412 and text in refused.json()["error"], refused.json()
        assert (await api.post(base + "/suspend")).status_code == 200  # 2 GB, no swap, no schedule

        cordoned = (
            await api.post(
                f"/v1/apps/{app}/machines", json=machine_body("quiet", skip_service_registration=True)
            )
        ).json()
        assert cordoned["cordoned"] is True

        emu.advance(FAST.suspend)
        lease = (await api.post(base + "/lease", json={"ttl": 600})).json()["data"]
        assert lease["version"] == created["instance_id"]
        config = (await api.get(base)).json()["config"]
        stale = await api.post(
            base,
            json={"config": config, "current_version": "01HZZZZZZZZZZZZZZZZZZZZZZZ"},
            headers={NONCE: lease["nonce"]},
        )
        assert stale.status_code == 200  # current_version is not enforced unless asked (unverified on Fly)
        shown = (await api.get(base + "/lease")).json()["data"]
        assert shown["version"] == created["instance_id"] != stale.json()["instance_id"]  # taken-at version


async def test_current_version_enforced_when_enabled() -> None:
    emu = fast_emulator(enforce_current_version=True)
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        emu.advance(FAST.read_lag)
        base, _ = await _started(emu, api, app)
        config = (await api.get(base)).json()["config"]
        stale = await api.post(base, json={"config": config, "current_version": "01HZZZZZZZZZZZZZZZZZZZZZZZ"})
        assert stale.status_code == 412 and "version" in stale.json()["error"]


async def test_ambiguous_spec_applies_to_every_mutation() -> None:
    import httpx

    from controlplane.fly.emulator import FaultSpec

    emu = fast_emulator(faults=FaultSpec.parse("ambiguous=1"))

    async def lost(call) -> None:  # type: ignore[no-untyped-def]
        try:
            response = await call
        except httpx.TransportError:
            return  # the dropped-connection variant
        assert response.status_code in (408, 503), response.text

    async with emu.client() as http:
        api = CheckedClient(http, check_requests=False)
        await lost(http.post("/v1/apps", json={"app_name": "amb", "org_slug": "test-org"}))
        assert "amb" in emu.apps  # it ran anyway
        emu.advance(FAST.read_lag)
        await lost(http.post("/v1/apps/amb/machines", json=machine_body()))
        (mid,) = [m.id for m in emu.machines_in("amb")]
        emu.advance(FAST.create + FAST.start + FAST.read_lag)
        base = f"/v1/apps/amb/machines/{mid}"
        await lost(http.post(base + "/lease", json={"ttl": 60}))
        assert emu.machine(mid).lease is not None  # held, with a nonce the caller never saw
        emu.advance(61)
        await lost(http.post(base + "/stop", json={}))
        assert emu.machine(mid).state == "stopping"
        await lost(http.post(base + "/metadata/k", json={"value": "v"}))
        assert emu.machine(mid).config["metadata"]["k"] == "v"
        await lost(http.post("/v1/apps/amb/secrets", json={"values": {"A": "b"}}))
        assert emu.apps["amb"].secrets_version == 1
        assert (await api.get(base)).status_code == 200  # reads are never made ambiguous
        kinds = [kind for _, kind in emu.faults_fired]
        assert len(kinds) == 6 and set(kinds) <= {"ambiguous_408", "ambiguous_503", "ambiguous_drop"}
