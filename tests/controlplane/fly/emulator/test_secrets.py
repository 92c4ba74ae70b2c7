"""App secrets: versioned writes, write-only values, visibility delay -> 412 on min_secrets_version."""

from __future__ import annotations

import json

from controlplane.fly.emulator import FlyEmulator, LatencyProfile
from tests.support.emulator import CheckedClient, machine_body, make_app, options


async def test_versions_and_values_never_returned(api: CheckedClient, emu: FlyEmulator) -> None:
    app = await make_app(api)
    first = await api.post(
        f"/v1/apps/{app}/secrets", json={"values": {"ANTHROPIC_API_KEY": "sk-ant-secret-1", "OTHER": "x"}}
    )
    assert first.status_code == 200 and first.json()["version"] == 1
    second = await api.post(f"/v1/apps/{app}/secrets", json={"values": {"OTHER": None}})
    assert second.json()["version"] == 2 and [s["name"] for s in second.json()["secrets"]] == [
        "ANTHROPIC_API_KEY"
    ]
    one = await api.post(f"/v1/apps/{app}/secrets/SINGLE", json={"value": "v"})
    assert one.status_code == 201 and one.json()["version"] == 3 and one.json()["name"] == "SINGLE"
    listed = await api.get(f"/v1/apps/{app}/secrets", params={"show_secrets": "true"})
    assert {s["name"] for s in listed.json()["secrets"]} == {"ANTHROPIC_API_KEY", "SINGLE"}
    assert all(set(s) == {"name", "digest", "created_at", "updated_at"} for s in listed.json()["secrets"])
    assert (await api.get(f"/v1/apps/{app}/secrets/SINGLE")).json()["name"] == "SINGLE"
    deleted = await api.delete(f"/v1/apps/{app}/secrets/SINGLE")
    assert deleted.status_code == 200 and deleted.json() == {"version": 4}
    assert (await api.delete(f"/v1/apps/{app}/secrets/SINGLE")).status_code == 404
    assert (await api.post(f"/v1/apps/{app}/secrets", json={"values": {"bad-name": "v"}})).status_code == 400
    everything = json.dumps(emu.state.model_dump(mode="json")) + json.dumps(listed.json())
    assert "sk-ant-secret-1" not in everything


async def test_min_secrets_version_412_until_visible() -> None:
    emu = FlyEmulator(options(latency=LatencyProfile(secrets_visibility=10.0)))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        version = (await api.post(f"/v1/apps/{app}/secrets", json={"values": {"KEY": "v1"}})).json()[
            "version"
        ]
        early = await api.post(f"/v1/apps/{app}/machines", json=machine_body(min_secrets_version=version))
        assert early.status_code == 412 and "not yet available" in early.json()["error"]
        assert emu.machines_in(app) == []
        lagging = await api.get(f"/v1/apps/{app}/secrets")
        assert lagging.json()["secrets"] == [] and lagging.json()["version"] == 0
        assert (await api.get(f"/v1/apps/{app}/secrets", params={"min_version": version})).status_code == 412
        emu.advance(10.0)
        created = await api.post(f"/v1/apps/{app}/machines", json=machine_body(min_secrets_version=version))
        assert created.status_code == 200
        assert emu.machine(created.json()["id"]).secrets_version == version

        newer = (await api.post(f"/v1/apps/{app}/secrets", json={"values": {"KEY": "v2"}})).json()["version"]
        base = f"/v1/apps/{app}/machines/{created.json()['id']}"
        config = (await api.get(base)).json()["config"]
        refused = await api.post(base, json={"config": config, "min_secrets_version": newer})
        assert refused.status_code == 412
        # without min_secrets_version the update silently boots with the OLD visible version
        quiet = await api.post(base, json={"config": config})
        assert quiet.status_code == 200 and emu.machine(created.json()["id"]).secrets_version == version
        emu.advance(10.0)
        fresh = await api.post(base, json={"config": config, "min_secrets_version": newer})
        assert fresh.status_code == 200 and emu.machine(created.json()["id"]).secrets_version == newer
