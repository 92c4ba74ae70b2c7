"""OpenClaw gateway probes served per emulated machine, by Host header and by /gateway/<app>/ path."""

from __future__ import annotations

import httpx

from controlplane.fly.emulator import FlyEmulator
from tests.support.emulator import CheckedClient, machine_body, make_app, options, slow_profile

P = slow_profile(create=10, start=10, stop=10, replace=10, gateway_boot=20)


async def _setup(emu: FlyEmulator, http: httpx.AsyncClient) -> tuple[CheckedClient, str, str]:
    api = CheckedClient(http)
    app = await make_app(api)
    await api.post(f"/v1/apps/{app}/secrets", json={"values": {"OPENCLAW_GATEWAY_TOKEN": "gw-token"}})
    body = machine_body(min_secrets_version=1)
    machine = (await api.post(f"/v1/apps/{app}/machines", json=body)).json()
    return api, app, machine["id"]


async def test_probe_answers_follow_machine_state() -> None:
    emu = FlyEmulator(options(latency=P))
    async with emu.client() as http:
        api, app, mid = await _setup(emu, http)
        created = await http.get(f"/gateway/{app}/healthz")
        assert created.status_code == 502 and "fly-proxy" in created.text  # created, not running
        emu.advance(P.create)
        booting = await http.get(f"/gateway/{app}/startupz")
        assert booting.status_code == 503 and booting.json() == {"ok": False, "status": "starting"}
        emu.advance(P.start)  # VM started, gateway still booting
        assert (await http.get(f"/gateway/{app}/healthz")).json() == {"ok": True, "status": "live"}
        assert (await http.get(f"/gateway/{app}/startupz")).status_code == 503
        assert (await http.get(f"/gateway/{app}/readyz")).json() == {"ready": False}
        assert (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()["checks"] == []
        emu.advance(P.gateway_boot)
        by_host = await http.get("/startupz", headers={"Host": f"{app}.fly.dev"})
        assert by_host.status_code == 200 and by_host.json() == {"ok": True, "status": "started"}
        assert (await http.get(f"/gateway/{app}/readyz")).json() == {"ready": True}
        checks = (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()["checks"]
        assert checks and all(c["status"] == "passing" for c in checks)

        await api.post(f"/v1/apps/{app}/machines/{mid}/suspend")
        emu.advance(P.suspend)
        emu.state.machines[mid].config["services"][0]["autostart"] = False
        down = await http.get(f"/gateway/{app}/healthz")
        assert down.status_code == 502 and "suspended" in down.text


async def test_details_only_with_the_gateway_token_of_the_machine_version(emu: FlyEmulator) -> None:
    async with emu.client() as http:
        _api, app, _mid = await _setup(emu, http)
        anonymous = await http.get(f"/gateway/{app}/readyz")
        assert anonymous.json() == {"ready": True}
        authed = await http.get(f"/gateway/{app}/readyz", headers={"Authorization": "Bearer gw-token"})
        body = authed.json()
        # the real gateway's key set (tests/support/openclaw_captures/remote_probes.json)
        assert set(body) == {"ready", "failing", "uptimeMs", "eventLoop"}
        assert body["ready"] is True and body["failing"] == [] and isinstance(body["uptimeMs"], int)
        started = await http.get(f"/gateway/{app}/startupz", headers={"Authorization": "Bearer gw-token"})
        assert started.json()["version"] == "2026.9.6" and isinstance(started.json()["uptimeMs"], int)
        live = await http.get(f"/gateway/{app}/healthz", headers={"Authorization": "Bearer gw-token"})
        assert live.json() == {"ok": True, "status": "live"}  # healthz never adds details
        wrong = await http.get(f"/gateway/{app}/startupz", headers={"Authorization": "Bearer nope"})
        assert set(wrong.json()) == {"ok", "status"}
        # a rotated token only counts once the machine was updated to see it
        await _api.post(f"/v1/apps/{app}/secrets", json={"values": {"OPENCLAW_GATEWAY_TOKEN": "gw-2"}})
        stale = await http.get(f"/gateway/{app}/startupz", headers={"Authorization": "Bearer gw-2"})
        assert "version" not in stale.json()


async def test_unhealthy_and_crash_loop_controls(emu: FlyEmulator) -> None:
    async with emu.client() as http:
        api, app, mid = await _setup(emu, http)
        emu.set_gateway_health(mid, ready=False, failing=["channels.telegram"])
        not_ready = await http.get(f"/gateway/{app}/readyz", headers={"Authorization": "Bearer gw-token"})
        assert not_ready.status_code == 503
        assert not_ready.json()["ready"] is False and not_ready.json()["failing"] == ["channels.telegram"]
        assert (await http.get(f"/gateway/{app}/healthz")).status_code == 200

        emu.crash_loop(mid, exit_code=137, restarts=3, oom=True)
        assert (await http.get(f"/gateway/{app}/healthz")).status_code == 502
        machine = (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()
        assert machine["state"] == "started"
        assert all(c["status"] == "critical" for c in machine["checks"])
        exits = [
            e for e in (await api.get(f"/v1/apps/{app}/machines/{mid}/events")).json() if e["type"] == "exit"
        ]
        latest = exits[0]["request"]
        assert latest["exit_event"]["restarting"] is True and latest["exit_event"]["exit_code"] == 137
        assert latest["exit_event"]["oom_killed"] is True and latest["restart_count"] == 3

        emu.crash_loop(mid, restarts=1, give_up=True)
        assert (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()["state"] == "stopped"


async def test_proxy_autostart_wakes_a_stopped_machine(emu: FlyEmulator) -> None:
    async with emu.client() as http:
        api, app, mid = await _setup(emu, http)
        await api.post(f"/v1/apps/{app}/machines/{mid}/stop", json={})
        assert emu.machine(mid).state == "stopped"
        woke = await http.get(f"/gateway/{app}/healthz")
        assert woke.status_code == 200 and emu.machine(mid).state == "started"
        assert emu.machine(mid).events[-2].source == "proxy"
        assert (await http.get("/gateway/nope/healthz")).status_code == 404
        forced = await http.get(
            f"/gateway/{app}/healthz", headers={"fly-force-instance-id": "ffffffffffffff"}
        )
        assert forced.status_code == 502
