"""Apps (global names, 422 name_taken, 403 foreign, async cascading delete) and volumes."""

from __future__ import annotations

from controlplane.fly.emulator import FlyEmulator, LatencyProfile
from tests.support.emulator import CheckedClient, machine_body, make_app, options


async def test_app_create_get_list_and_name_rules(api: CheckedClient, emu: FlyEmulator) -> None:
    created = await api.post(
        "/v1/apps", json={"name": "tenant-a", "org_slug": "test-org", "network": "tenant-a"}
    )
    assert created.status_code == 201 and created.json()["network"] == "tenant-a"
    taken = await api.post("/v1/apps", json={"app_name": "tenant-a", "org_slug": "test-org"})
    assert taken.status_code == 422 and taken.json()["status"] == "name_taken"
    emu.reserve_foreign_app("someone-elses")
    assert (
        await api.post("/v1/apps", json={"app_name": "someone-elses", "org_slug": "test-org"})
    ).status_code == 422
    assert (await api.get("/v1/apps/someone-elses")).status_code == 403
    assert (await api.get("/v1/apps/free-name")).status_code == 404
    assert (
        await api.post("/v1/apps", json={"app_name": "Bad_Name", "org_slug": "test-org"})
    ).status_code == 422
    shown = (await api.get("/v1/apps/tenant-a")).json()
    assert shown["organization"]["slug"] == "test-org" and shown["status"] == "pending"
    listed = (await api.get("/v1/apps", params={"org_slug": "test-org"})).json()
    assert listed["total_apps"] == 1 and listed["apps"][0]["name"] == "tenant-a"


async def test_app_delete_is_async_and_cascades() -> None:
    emu = FlyEmulator(options(latency=LatencyProfile(app_delete=30.0)))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        await api.post(f"/v1/apps/{app}/secrets", json={"values": {"K": "v"}})
        await api.post(f"/v1/apps/{app}/machines", json=machine_body())
        refused = await api.delete(f"/v1/apps/{app}")
        assert refused.status_code == 412 and "force" in refused.json()["error"]
        accepted = await api.delete(f"/v1/apps/{app}", params={"force": "true"})
        assert accepted.status_code == 202
        assert (await api.get(f"/v1/apps/{app}")).status_code == 200  # still being deleted
        emu.advance(30.0)
        assert (await api.get(f"/v1/apps/{app}")).status_code == 404
        assert emu.machines_in(app, include_destroyed=True) == []
        assert (await api.post("/v1/apps", json={"app_name": app, "org_slug": "test-org"})).status_code == 201
        assert (await api.get(f"/v1/apps/{app}/secrets")).json()["secrets"] == []


async def test_volumes_lifecycle_and_mounts(api: CheckedClient) -> None:
    app = await make_app(api)
    volume = (
        await api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "fra", "size_gb": 1})
    ).json()
    assert volume["id"].startswith("vol_") and volume["state"] == "created" and volume["region"] == "fra"
    body = machine_body()
    body["config"]["mounts"] = [{"volume": volume["id"], "path": "/data"}]
    wrong_region = {**body, "region": "ams"}
    assert (await api.post(f"/v1/apps/{app}/machines", json=wrong_region)).status_code == 400
    machine = (await api.post(f"/v1/apps/{app}/machines", json=body)).json()
    shown = (await api.get(f"/v1/apps/{app}/volumes/{volume['id']}")).json()
    assert shown["attached_machine_id"] == machine["id"]
    second = {**body, "name": "second"}
    assert (await api.post(f"/v1/apps/{app}/machines", json=second)).status_code == 400  # already attached
    extended = await api.put(f"/v1/apps/{app}/volumes/{volume['id']}/extend", json={"size_gb": 5})
    assert extended.json()["volume"]["size_gb"] == 5 and extended.json()["needs_restart"] is True
    assert (
        await api.put(f"/v1/apps/{app}/volumes/{volume['id']}/extend", json={"size_gb": 2})
    ).status_code == 400
    assert (await api.delete(f"/v1/apps/{app}/volumes/{volume['id']}")).status_code == 412
    await api.delete(f"/v1/apps/{app}/machines/{machine['id']}", params={"force": "true"})
    deleted = await api.delete(f"/v1/apps/{app}/volumes/{volume['id']}")
    assert deleted.status_code == 200 and deleted.json()["state"] == "destroyed"
    assert (await api.get(f"/v1/apps/{app}/volumes")).json() == []
    assert (await api.get(f"/v1/apps/{app}/volumes/{volume['id']}")).status_code == 404
