"""Snapshot round trip (JSON, no secret values) and the ``controlplane fly-emulator`` command."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx

from controlplane.fly.emulator import EmulatorOptions, FlyEmulator
from tests.support.emulator import CheckedClient, machine_body, make_app, options, slow_profile


async def test_snapshot_round_trip(tmp_path: Path) -> None:
    profile = slow_profile(create=50, start=50)
    emu = FlyEmulator(options(latency=profile))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        await api.post(f"/v1/apps/{app}/secrets", json={"values": {"OPENCLAW_GATEWAY_TOKEN": "tok-plain"}})
        await api.post(f"/v1/apps/{app}/volumes", json={"name": "data", "region": "fra", "size_gb": 3})
        machine = (await api.post(f"/v1/apps/{app}/machines", json=machine_body("agent"))).json()
        lease = (await api.post(f"/v1/apps/{app}/machines/{machine['id']}/lease", json={"ttl": 600})).json()
        before = (await api.get(f"/v1/apps/{app}/machines/{machine['id']}")).json()
    path = tmp_path / "fly.json"
    emu.snapshot_to(path)
    assert "tok-plain" not in path.read_text()

    loaded = FlyEmulator.load(path, options(latency=profile))
    async with loaded.client() as http:
        api = CheckedClient(http)
        after = (await api.get(f"/v1/apps/{app}/machines/{machine['id']}")).json()
        assert after == before
        assert (await api.get(f"/v1/apps/{app}/machines/{machine['id']}/lease")).json() == lease
        assert len((await api.get(f"/v1/apps/{app}/volumes")).json()) == 1
        assert (await api.get(f"/v1/apps/{app}/secrets")).json()["version"] == 1
        loaded.advance(100)  # the planned boot survived the round trip
        assert (await api.get(f"/v1/apps/{app}/machines/{machine['id']}")).json()["state"] == "started"
        authed = await http.get(f"/gateway/{app}/startupz", headers={"Authorization": "Bearer tok-plain"})
        assert authed.json()["version"] == "2026.9.6"  # token check works from the stored MAC


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_cli_command_serves_the_api(tmp_path: Path) -> None:
    port = _free_port()
    snapshot = tmp_path / "cli.json"
    env = {**os.environ, "FLY_EMULATOR_TOKEN": "cli-token"}
    process = subprocess.Popen(  # noqa: ASYNC220 - a long-running server process, read in a thread
        [
            sys.executable,
            "-m",
            "controlplane",
            "fly-emulator",
            "--port",
            str(port),  # default latency: fast
            "--faults",
            "none",
            "--seed",
            "3",
            "--org",
            "cli-org",
            "--snapshot",
            str(snapshot),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        async with httpx.AsyncClient(base_url=base, headers={"Authorization": "Bearer cli-token"}) as http:
            for _ in range(200):
                try:
                    response = await http.get("/v1/apps", params={"org_slug": "cli-org"})
                    break
                except httpx.TransportError:
                    assert process.poll() is None, process.stderr.read().decode() if process.stderr else ""
                    await asyncio.sleep(0.05)
            assert response.status_code == 200 and response.json() == {"total_apps": 0, "apps": []}
            created = await http.post("/v1/apps", json={"app_name": "cli-app", "org_slug": "cli-org"})
            assert created.status_code == 201
            assert (await http.get("/v1/apps")).status_code == 400  # org_slug required
            assert (await http.get("/v1/apps", headers={"Authorization": ""})).status_code == 401
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=15)
    assert process.returncode == 0
    restored = FlyEmulator.load(snapshot, EmulatorOptions(org="cli-org"))
    assert list(restored.apps) == ["cli-app"]


def test_cli_latency_choices_default_to_fast() -> None:
    import inspect

    from controlplane.cli import fly as cli

    assert cli.LATENCIES == ("zero", "fast", "realistic")
    assert inspect.signature(cli.fly_emulator).parameters["latency"].default == "fast"
