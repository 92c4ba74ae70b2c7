"""A machine's whole life against the emulator, checking every state and status code on the way:
create -> wait started -> lease -> update with min_secrets_version -> wait -> stop -> update stopped ->
destroy -> 404, with the 409 (lease), 412 (start while replacing, secrets version) and 408 (wait)."""

from __future__ import annotations

import re

from controlplane.fly.emulator import FlyEmulator
from tests.support.emulator import CheckedClient, machine_body, make_app, options, slow_profile

NONCE = "fly-machine-lease-nonce"
P = slow_profile(create=100, start=100, replace=1000, stop=100, destroy=100, destroyed_retention=500)


async def test_full_lifecycle_states_and_status_codes() -> None:
    emu = FlyEmulator(options(latency=P, enforce_current_version=True))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        secrets = await api.post(
            f"/v1/apps/{app}/secrets", json={"values": {"OPENCLAW_GATEWAY_TOKEN": "gw-1"}}
        )
        assert secrets.status_code == 200 and secrets.json()["version"] == 1

        created = await api.post(
            f"/v1/apps/{app}/machines", json=machine_body("agent", min_secrets_version=1)
        )
        assert created.status_code == 200
        machine = created.json()
        mid, v1 = machine["id"], machine["instance_id"]
        assert re.fullmatch(r"[0-9a-f]{14}", mid) and len(v1) == 26
        assert machine["state"] == "created" and machine["region"] == "fra" and machine["name"] == "agent"
        base = f"/v1/apps/{app}/machines/{mid}"

        emu.advance(P.create)
        assert (await api.get(base)).json()["state"] == "starting"
        timed_out = await api.get(base + "/wait", params={"state": "started", "version": v1, "timeout": 1})
        assert timed_out.status_code == 408
        assert "currently starting" in timed_out.json()["error"]

        emu.advance(P.start)
        waited = await api.get(base + "/wait", params={"state": "started", "version": v1, "timeout": 5})
        assert waited.status_code == 200
        assert (
            waited.json()["ok"] is True
            and waited.json()["state"] == "started"
            and waited.json()["version"] == v1
        )

        lease = await api.post(base + "/lease", json={"ttl": 3600, "description": "rotate"})
        assert lease.status_code == 201 and lease.json()["status"] == "success"
        nonce = lease.json()["data"]["nonce"]
        assert lease.json()["data"]["version"] == v1

        config = (await api.get(base)).json()["config"]
        update = {"config": config, "current_version": v1, "min_secrets_version": 2}
        conflict = await api.post(base, json=update)
        assert conflict.status_code == 409
        assert conflict.json()["status"] == "error" and conflict.json()["code"] == "invalid"
        assert f"machine ID {mid} lease currently held by" in conflict.json()["message"]

        too_new = await api.post(base, json=update, headers={NONCE: nonce})
        assert too_new.status_code == 412 and "min_secrets_version" in too_new.json()["error"]

        rotated = await api.post(
            f"/v1/apps/{app}/secrets", json={"values": {"OPENCLAW_GATEWAY_TOKEN": "gw-2"}}
        )
        assert rotated.json()["version"] == 2
        stale = await api.post(
            base, json={**update, "current_version": "01HZZZZZZZZZZZZZZZZZZZZZZZ"}, headers={NONCE: nonce}
        )
        assert stale.status_code == 412

        updated = await api.post(base, json=update, headers={NONCE: nonce})
        assert updated.status_code == 200
        v2 = updated.json()["instance_id"]
        assert updated.json()["state"] == "replacing" and v2 != v1

        while_replacing = await api.post(base + "/start", headers={NONCE: nonce})
        assert while_replacing.status_code == 412
        assert "unable to start machine from current state" in while_replacing.json()["error"]

        old = await api.get(base + "/wait", params={"state": "started", "version": v1, "timeout": 1})
        assert old.status_code == 408 and "currently replaced" in old.json()["error"]

        emu.advance(P.replace)
        waited = await api.get(base + "/wait", params={"state": "started", "version": v2, "timeout": 5})
        assert waited.status_code == 200 and waited.json()["version"] == v2
        shown = (await api.get(base)).json()
        assert shown["state"] == "started" and shown["instance_id"] == v2
        assert [e["type"] for e in shown["events"]][:2] == ["start", "update"]  # newest first

        bad_stop = await api.post(base + "/stop", headers={NONCE: nonce}, check=False)
        assert bad_stop.status_code == 400
        stopped = await api.post(
            base + "/stop", json={"signal": "SIGINT", "timeout": "10s"}, headers={NONCE: nonce}
        )
        assert stopped.status_code == 200
        assert (await api.get(base)).json()["state"] == "stopping"
        no_version = await api.get(base + "/wait", params={"state": "stopped", "timeout": 1})
        assert no_version.status_code == 400
        emu.advance(P.stop)
        waited = await api.get(base + "/wait", params={"state": "stopped", "version": v2, "timeout": 5})
        assert waited.status_code == 200 and waited.json()["state"] == "stopped"

        config = (await api.get(base)).json()["config"]
        config["env"] = {"LOG_LEVEL": "debug"}
        updated = await api.post(base, json={"config": config, "current_version": v2}, headers={NONCE: nonce})
        v3 = updated.json()["instance_id"]
        assert updated.status_code == 200 and updated.json()["state"] == "replacing"
        emu.advance(P.replace)
        settled = await api.get(base + "/wait", params={"state": "settled", "version": v3, "timeout": 5})
        assert settled.json()["state"] == "stopped"
        assert (await api.get(base)).json()["state"] == "stopped"  # an update never starts a stopped machine

        no_nonce = await api.delete(base)
        assert no_nonce.status_code == 409
        released = await api.delete(base + "/lease", headers={NONCE: nonce})
        assert released.status_code == 200 and released.json() == {"status": "success", "data": {"ok": True}}
        assert (await api.get(base + "/lease")).status_code == 404

        destroyed = await api.delete(base)
        assert destroyed.status_code == 200
        assert (await api.get(base)).json()["state"] == "destroying"
        emu.advance(P.destroy)
        assert (await api.get(base)).json()["state"] == "destroyed"
        emu.advance(P.destroyed_retention)
        gone = await api.get(base)
        assert gone.status_code == 404 and gone.json()["error"] == "machine not found"
        listed = await api.get(f"/v1/apps/{app}/machines", params={"include_deleted": "true"})
        assert [m["state"] for m in listed.json()] == ["destroyed"]
        assert (await api.get(f"/v1/apps/{app}/machines")).json() == []


async def test_suspend_resume_restart_and_forced_destroy() -> None:
    emu = FlyEmulator(options(latency=P))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        machine = (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()
        base = f"/v1/apps/{app}/machines/{machine['id']}"
        emu.advance(P.create + P.start)
        assert (await api.post(base + "/suspend")).status_code == 200
        assert (await api.get(base)).json()["state"] == "suspending"
        emu.advance(P.suspend)
        assert (await api.get(base)).json()["state"] == "suspended"
        resumed = await api.post(base + "/start")
        assert resumed.status_code == 200 and resumed.json()["previous_state"] == "suspended"
        emu.advance(P.resume)
        assert (await api.get(base)).json()["state"] == "started"

        restarted = await api.post(base + "/restart")
        assert restarted.status_code == 200
        assert (await api.get(base)).json()["state"] == "restarting"
        emu.advance(P.restart)
        after = (await api.get(base)).json()
        assert after["state"] == "started" and after["instance_id"] == machine["instance_id"]

        refused = await api.delete(base)
        assert refused.status_code == 412 and "not currently stopped" in refused.json()["error"]
        assert (await api.delete(base, params={"force": "true"})).status_code == 200
        assert (await api.get(base)).json()["state"] == "destroying"


async def test_create_variants_and_validation(api: CheckedClient, emu: FlyEmulator) -> None:
    app = await make_app(api)
    skipped = await api.post(f"/v1/apps/{app}/machines", json=machine_body("a", skip_launch=True))
    assert skipped.json()["state"] == "created"
    again = await api.get(f"/v1/apps/{app}/machines/{skipped.json()['id']}")
    assert again.json()["state"] == "created"  # skip_launch: never boots

    duplicate = await api.post(f"/v1/apps/{app}/machines", json=machine_body("a"))
    assert duplicate.status_code == 409 and duplicate.json()["status"] == "already_exists"
    assert skipped.json()["id"] in duplicate.json()["error"]

    body = machine_body("b")
    body["config"]["auto_stop_machines"] = True  # a fly.toml name: Fly drops unknown fields silently
    body["config"]["services"][0]["autostop"] = "suspend"
    created = await api.post(f"/v1/apps/{app}/machines", json=body, check=False)
    config = created.json()["config"]
    assert "auto_stop_machines" not in config and config["services"][0]["autostop"] == "suspend"
    off = await api.post(f"/v1/apps/{app}/machines", json=machine_body("c"))
    assert off.json()["config"]["services"][0]["autostop"] is False  # "off" answered as false

    bad_guest = machine_body("d")
    bad_guest["config"]["guest"] = {"cpu_kind": "shared", "cpus": 1, "memory_mb": 4096}
    assert (await api.post(f"/v1/apps/{app}/machines", json=bad_guest)).status_code == 400
    bad_region = await api.post(f"/v1/apps/{app}/machines", json=machine_body("e", region="xxx"))
    assert bad_region.status_code == 422
    bad_duration = machine_body("f")
    bad_duration["config"]["checks"]["startup"]["interval"] = 15
    assert (await api.post(f"/v1/apps/{app}/machines", json=bad_duration, check=False)).status_code == 400
    missing_app = await api.post("/v1/apps/nope/machines", json=machine_body())
    assert missing_app.status_code == 404 and missing_app.json() == {
        "error": "app not found",
        "status": "not_found",
    }

    leased = await api.post(f"/v1/apps/{app}/machines", json=machine_body("g", lease_ttl=30))
    assert leased.json()["nonce"]
    mid = leased.json()["id"]
    blocked = await api.post(f"/v1/apps/{app}/machines/{mid}/stop", json={})
    assert blocked.status_code == 409


async def test_wait_arguments(api: CheckedClient) -> None:
    app = await make_app(api)
    machine = (await api.post(f"/v1/apps/{app}/machines", json=machine_body())).json()
    base = f"/v1/apps/{app}/machines/{machine['id']}/wait"
    too_long = await api.get(base, params={"state": "started", "timeout": 61}, check=False)
    assert too_long.status_code == 400 and too_long.json()["status"] == "invalid_argument"
    bad_state = await api.get(base, params={"state": "running"}, check=False)
    assert bad_state.status_code == 400
    repeated = await api.get(
        base,
        params=[
            ("state", "stopped"),
            ("state", "started"),
            ("version", machine["instance_id"]),
            ("timeout", "2"),
        ],
    )
    assert repeated.status_code == 200 and repeated.json()["state"] == "started"
    comma = await api.get(base, params={"state": "suspended,started", "timeout": 2})
    assert comma.json()["state"] == "started"


async def test_auth_required_when_token_configured(emu: FlyEmulator) -> None:
    async with emu.client(headers={"Authorization": ""}) as http:
        denied = await http.get("/v1/apps", params={"org_slug": "test-org"})
        assert denied.status_code == 401 and "error" in denied.json()
        wrong = await http.get(
            "/v1/apps", params={"org_slug": "test-org"}, headers={"Authorization": "Bearer x"}
        )
        assert wrong.status_code == 401
        flyv1 = await http.get(
            "/v1/apps", params={"org_slug": "test-org"}, headers={"Authorization": "FlyV1 test-token"}
        )
        assert flyv1.status_code == 200 and flyv1.json() == {"total_apps": 0, "apps": []}


async def test_metadata_events_versions_and_list_filters(api: CheckedClient) -> None:
    app = await make_app(api)
    first = (await api.post(f"/v1/apps/{app}/machines", json=machine_body("one"))).json()
    second = (await api.post(f"/v1/apps/{app}/machines", json=machine_body("two", region="ams"))).json()
    base = f"/v1/apps/{app}/machines/{first['id']}"
    assert (await api.post(base + "/metadata/control_plane_id", json={"value": "cp-9"})).status_code == 204
    assert (await api.get(base + "/metadata/control_plane_id")).json() == {"value": "cp-9"}
    assert (await api.get(base + "/metadata")).json() == {"control_plane_id": "cp-9"}
    found = await api.get(f"/v1/apps/{app}/machines", params={"metadata.control_plane_id": "cp-9"})
    assert [m["id"] for m in found.json()] == [first["id"]]
    by_region = await api.get(f"/v1/apps/{app}/machines", params={"region": "ams", "summary": "true"})
    assert [m["id"] for m in by_region.json()] == [second["id"]] and "config" not in by_region.json()[0]
    by_state = await api.get(f"/v1/apps/{app}/machines", params={"state": "started"})
    assert len(by_state.json()) == 2
    assert (await api.delete(base + "/metadata/control_plane_id")).status_code == 204
    assert (await api.get(base + "/metadata/control_plane_id")).status_code == 404
    events = (await api.get(base + "/events", params={"limit": 1})).json()
    assert len(events) == 1 and events[0]["type"] == "start"
    versions = (await api.get(base + "/versions")).json()
    assert versions[0]["version"] == first["instance_id"]
