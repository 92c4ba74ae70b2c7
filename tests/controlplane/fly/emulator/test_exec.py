"""``POST /v1/apps/{app}/machines/{id}/exec`` on the emulator: Fly's answer shape (200 even when the
command failed), refusals on machines that are not running (never woken), leases, per-machine rate
limits, bad requests. Every /v1 request and response is checked against Fly's OpenAPI spec."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import pytest

from controlplane.fly.emulator import FlyEmulator
from tests.support.agent_machines import CONFIG_PATH, run, start_agent
from tests.support.emulator import CheckedClient, machine_body, make_app, options


@pytest.fixture
async def http_unchecked(emu: FlyEmulator) -> AsyncIterator[CheckedClient]:
    """Requests are deliberately malformed: check only the responses against the spec."""
    async with emu.client() as http:
        yield CheckedClient(http, check_requests=False)


async def test_a_command_answers_200_with_its_exit_code_and_output(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    echoed = await run(api, app, mid, "echo", "hello", "fleet")
    assert echoed.status_code == 200
    assert echoed.json() == {"exit_code": 0, "exit_signal": 0, "stdout": "hello fleet\n", "stderr": ""}

    failed = await run(api, app, mid, "false")
    assert failed.status_code == 200 and failed.json()["exit_code"] == 1  # 200 although it failed

    missing = await run(api, app, mid, "/usr/bin/nonexistent", "--flag")
    assert missing.status_code == 200 and missing.json()["exit_code"] == 127
    assert "not found" in missing.json()["stderr"]
    in_shell = await run(api, app, mid, "sh", "-c", "nonexistent --flag")
    assert (
        in_shell.json()["exit_code"] == 127 and in_shell.json()["stderr"] == "sh: 1: nonexistent: not found\n"
    )


async def test_the_openclaw_cli_answers_in_every_entry_point_form(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    forms = (
        ["openclaw", "--version"],
        ["/usr/local/bin/openclaw", "--version"],
        ["node", "dist/index.js", "--version"],
        ["node", "/app/openclaw.mjs", "--version"],
        ["sh", "-c", "openclaw --version"],
    )
    for argv in forms:
        answer = (await run(api, app, mid, *argv)).json()
        assert answer == {
            "exit_code": 0,
            "exit_signal": 0,
            "stdout": "OpenClaw 2026.9.6 (eb377ac)\n",
            "stderr": "",
        }
    deprecated = await api.post(f"/v1/apps/{app}/machines/{mid}/exec", json={"cmd": "openclaw --version"})
    assert deprecated.status_code == 200 and deprecated.json()["stdout"].startswith("OpenClaw 2026.9.6")


async def test_reading_the_delivered_config_shows_references_not_secrets(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    answer = (await run(api, app, mid, "cat", CONFIG_PATH)).json()
    assert answer["exit_code"] == 0
    config = json.loads(answer["stdout"])
    assert config["gateway"]["auth"]["token"] == "${OPENCLAW_GATEWAY_TOKEN}"
    assert "gw-token-for-tests" not in answer["stdout"]
    absent = (await run(api, app, mid, "cat", "/etc/passwd-nope")).json()
    assert absent["exit_code"] == 1 and "No such file" in absent["stderr"]


@pytest.mark.parametrize("power", ["stop", "suspend"])
async def test_a_machine_that_is_not_running_refuses_exec_and_stays_asleep(
    emu: FlyEmulator, api: CheckedClient, power: str
) -> None:
    app, mid = await start_agent(emu, api)
    body = {} if power == "stop" else None
    assert (await api.post(f"/v1/apps/{app}/machines/{mid}/{power}", json=body)).status_code == 200
    emu.advance(5)
    asleep = emu.machine(mid).state
    assert asleep in ("stopped", "suspended")
    refused = await run(api, app, mid, "openclaw", "models", "status", "--json")
    assert refused.status_code == 412
    assert refused.json() == {
        "error": f"unable to exec on machine from current state: '{asleep}'",
        "status": "failed_precondition",
    }
    emu.advance(60)
    assert emu.machine(mid).state == asleep  # its services autostart, but exec never woke it
    assert [e.type for e in emu.machine(mid).events].count("start") == 1


async def test_a_booting_or_never_started_machine_refuses_exec() -> None:
    emu = FlyEmulator(options(latency="fast"))
    async with emu.client() as http:
        api = CheckedClient(http)
        app = await make_app(api)
        created = await api.post(f"/v1/apps/{app}/machines", json=machine_body(skip_launch=True))
        mid = created.json()["id"]
        emu.advance(1)
        assert (await run(api, app, mid, "true")).status_code == 412  # created, never started
        await api.post(f"/v1/apps/{app}/machines/{mid}/start")
        booting = await run(api, app, mid, "true")
        assert booting.status_code == 412 and "'starting'" in booting.json()["error"]
        emu.advance(5)
        assert (await run(api, app, mid, "true")).status_code == 200


async def test_exec_is_refused_while_another_client_holds_the_lease(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    lease = await api.post(f"/v1/apps/{app}/machines/{mid}/lease", json={"ttl": 30})
    nonce = lease.json()["data"]["nonce"]
    refused = await run(api, app, mid, "openclaw", "health", "--json")
    assert refused.status_code == 409
    assert refused.json()["status"] == "error" and "lease currently held by" in refused.json()["message"]
    ours = await run(api, app, mid, "openclaw", "health", "--json", nonce=nonce)
    assert ours.status_code == 200 and ours.json()["exit_code"] == 0
    emu.advance(31)  # the lease expired
    assert (await run(api, app, mid, "openclaw", "health", "--json")).status_code == 200


async def test_leases_can_be_ignored_by_option() -> None:
    emu = FlyEmulator(options(exec_respects_leases=False))
    async with emu.client() as http:
        api = CheckedClient(http)
        app, mid = await start_agent(emu, api)
        await api.post(f"/v1/apps/{app}/machines/{mid}/lease", json={"ttl": 30})
        assert (await run(api, app, mid, "true")).status_code == 200


async def test_exec_is_rate_limited_per_machine_like_every_machine_action() -> None:
    emu = FlyEmulator(options(rate_limits=True))
    async with emu.client() as http:
        api = CheckedClient(http)
        app, first = await start_agent(emu, api)
        other = await api.post(f"/v1/apps/{app}/machines", json=machine_body())
        emu.advance(1)
        statuses = [(await run(api, app, first, "true")).status_code for _ in range(4)]
        assert statuses == [200, 200, 200, 429]  # 1 req/s, burst 3
        assert (await run(api, app, other.json()["id"], "true")).status_code == 200  # its own bucket
        emu.advance(1.0)
        assert (await run(api, app, first, "true")).status_code == 200


async def test_malformed_requests_are_refused(emu: FlyEmulator, http_unchecked: CheckedClient) -> None:
    api = http_unchecked
    app, mid = await start_agent(emu, api)
    url = f"/v1/apps/{app}/machines/{mid}/exec"
    for body in (
        {},
        {"command": []},
        {"command": "openclaw health"},
        {"command": [1]},
        {"command": ["true"], "timeout": "10s"},
    ):
        answer = await api.post(url, json=body)
        assert answer.status_code == 400, body
        assert answer.json()["status"] == "invalid_argument"
    assert (
        await api.post(f"/v1/apps/{app}/machines/ffffffffffffff/exec", json={"command": ["true"]})
    ).status_code == 404
    emu.set_host_status(mid, "unreachable")
    assert (await api.post(url, json={"command": ["true"]})).status_code == 503
