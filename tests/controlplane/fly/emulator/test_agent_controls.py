"""Per-machine controls of the emulated OpenClaw agent, as the health poller will see them through exec
and the gateway probes: unusable model credentials (with OpenClaw's own reasons, windows and recovery
hints), failing channels, a crash-looping gateway (exit events, restart count), usage counters."""

from __future__ import annotations

from pathlib import Path

import pytest

from controlplane.fly.emulator import FlyEmulator
from tests.support.agent_machines import GATEWAY_TOKEN, run, run_json, start_agent
from tests.support.emulator import CheckedClient

MODELS = ("openclaw", "models", "status", "--json")


def about(ms: int, window_s: float) -> bool:
    """A window's remaining time, read a moment after it started (the emulated clock runs on)."""
    return window_s * 1000 - 1000 < ms <= window_s * 1000


BEARER = {"Authorization": f"Bearer {GATEWAY_TOKEN}"}


@pytest.mark.parametrize(
    ("reason", "kind", "window_s", "hint"),
    [
        ("billing", "disabled", 600, "Top up credits (provider billing) or switch provider."),
        ("auth", "cooldown", 30, "Re-authenticate with `openclaw models auth login`."),
        ("auth_permanent", "disabled", 600, "Re-authenticate with `openclaw models auth login`."),
        ("rate_limit", "cooldown", 30, "Wait for cooldown or switch provider."),
    ],
)
async def test_an_unusable_credential_shows_in_models_status_with_the_real_reason_and_hint(
    emu: FlyEmulator, api: CheckedClient, reason: str, kind: str, window_s: int, hint: str
) -> None:
    app, mid = await start_agent(emu, api)
    code, before = await run_json(api, app, mid, *MODELS)
    assert code == 0 and before["auth"]["unusableProfiles"] == []
    assert (await run_json(api, app, mid, *MODELS, "--check"))[0] == 0

    emu.fail_credential(mid, "anthropic", reason)  # type: ignore[arg-type]
    code, status = await run_json(api, app, mid, *MODELS)
    assert code == 0
    (profile,) = status["auth"]["unusableProfiles"]
    assert profile["profileId"] == "inline-api-key:anthropic"
    assert (profile["kind"], profile["reason"], profile["recoveryHint"]) == (kind, reason, hint)
    assert about(profile["remainingMs"], window_s) and profile["until"] > 0
    assert status["auth"]["missingProvidersInUse"] == ["anthropic"]
    assert (await run_json(api, app, mid, *MODELS, "--check"))[0] == 1  # --check: 1 = unavailable

    emu.restore_credential(mid, "anthropic")
    code, after = await run_json(api, app, mid, *MODELS)
    assert after["auth"]["unusableProfiles"] == [] and after["auth"]["missingProvidersInUse"] == []


async def test_a_refused_key_stays_unusable_while_traffic_keeps_failing(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    emu.fail_credential(mid, "anthropic", "billing")
    emu.advance(601)  # the first 10-minute window ended; the next message failed again
    (profile,) = (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"]
    assert profile["reason"] == "billing" and about(profile["remainingMs"], 599)

    emu.fail_credential(mid, "anthropic", "auth", persistent=False)  # one failure, then no traffic
    assert (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"][0]["reason"] == "auth"
    emu.advance(31)
    assert (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"] == []


async def test_rate_limit_cooldowns_grow_while_the_provider_keeps_refusing(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    emu.fail_credential(mid, "anthropic", "rate_limit")
    remaining = []
    for wait in (0, 30, 60):  # windows of 30 s, 60 s, 120 s back to back
        emu.advance(wait)
        remaining.append(
            (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"][0]["remainingMs"]
        )
    assert [about(ms, window) for ms, window in zip(remaining, (30, 60, 120), strict=True)] == [True] * 3


async def test_only_the_failing_provider_is_unusable(emu: FlyEmulator, api: CheckedClient) -> None:
    app, mid = await start_agent(emu, api)
    emu.fail_credential(mid, "openai", "auth")  # a provider the config does not even use
    emu.fail_credential(mid, "anthropic", "billing")
    profiles = (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"]
    assert [(p["profileId"], p["reason"]) for p in profiles] == [
        ("inline-api-key:openai", "auth"),  # shortest remaining window first, like OpenClaw
        ("inline-api-key:anthropic", "billing"),
    ]
    emu.restore_credential(mid)
    assert (await run_json(api, app, mid, *MODELS))[1]["auth"]["unusableProfiles"] == []
    with pytest.raises(ValueError, match="unknown credential failure"):
        emu.fail_credential(mid, "anthropic", "broke")  # type: ignore[arg-type]


async def test_a_failing_channel_makes_readyz_503_and_shows_in_channel_and_health_status(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    http = api.http
    assert (await http.get(f"/gateway/{app}/readyz")).status_code == 200
    emu.fail_channel(mid, "telegram")

    anonymous = await http.get(f"/gateway/{app}/readyz")
    assert anonymous.status_code == 503 and anonymous.json() == {"ready": False}
    detailed = await http.get(f"/gateway/{app}/readyz", headers=BEARER)
    assert detailed.status_code == 503 and detailed.json()["failing"] == ["telegram"]
    assert (await http.get(f"/gateway/{app}/startupz")).status_code == 200  # startup ignores channels
    assert (await http.get(f"/gateway/{app}/healthz")).status_code == 200

    code, channels = await run_json(api, app, mid, "openclaw", "channels", "status", "--json")
    assert code == 0
    (account,) = channels["channelAccounts"]["telegram"]
    assert (account["running"], account["connected"], account["lifecycle"]) == (False, False, "blocked")
    assert account["healthState"] == "terminal-disconnect" and account["terminalDisconnect"] is True
    assert account["lastError"] == "Unauthorized | Telegram ingress worker exited with code 1"
    assert channels["channels"]["telegram"]["running"] is False
    assert [(i["channel"], i["kind"]) for i in channels["statusIssues"]] == [("telegram", "runtime")]
    code, health = await run_json(api, app, mid, "openclaw", "health", "--json")
    assert code == 0 and health["ok"] is True  # the gateway itself is fine
    assert health["channels"]["telegram"]["lifecycle"] == "blocked"

    emu.restore_channel(mid, "telegram")
    assert (await http.get(f"/gateway/{app}/readyz")).status_code == 200
    channels = (await run_json(api, app, mid, "openclaw", "channels", "status", "--json"))[1]
    assert channels["statusIssues"] == [] and channels["channelAccounts"]["telegram"][0]["running"] is True


async def test_a_channel_failure_carries_the_given_error(emu: FlyEmulator, api: CheckedClient) -> None:
    app, mid = await start_agent(emu, api)
    emu.fail_channel(mid, "discord", error="Discord gateway closed: 4004 authentication failed")
    code, channels = await run_json(
        api, app, mid, "openclaw", "channels", "status", "--json", "--channel", "discord"
    )
    assert code == 0 and channels["channelOrder"] == ["discord"]
    assert channels["statusIssues"][0]["message"] == "Discord gateway closed: 4004 authentication failed"
    detailed = await api.http.get(f"/gateway/{app}/readyz", headers=BEARER)
    assert detailed.json()["failing"] == ["discord"]


async def test_a_crash_looping_gateway_restarts_until_flyd_gives_up(
    emu: FlyEmulator, api: CheckedClient
) -> None:
    app, mid = await start_agent(emu, api)
    emu.crash_loop(mid, exit_code=1, restarts=1, every=10.0)

    assert (await api.http.get(f"/gateway/{app}/healthz")).status_code == 502
    code, health = await run_json(api, app, mid, "openclaw", "health", "--json", "--timeout", "3000")
    assert code == 1 and health["error"]["type"] == "gateway_transport_error"
    assert health["error"]["message"] == "Gateway not reachable after waiting 3 s."
    code, channels = await run_json(api, app, mid, "openclaw", "channels", "status", "--json")
    assert code == 0 and channels["configOnly"] is True and channels["gatewayReachable"] is False
    models = await run(api, app, mid, *MODELS)
    assert models.json()["exit_code"] == 0 and models.json()["stderr"].startswith("[secrets]")

    emu.advance(35)  # three more exits
    events = (await api.get(f"/v1/apps/{app}/machines/{mid}/events", params={"limit": 50})).json()
    exits = [e["request"] for e in events if e["type"] == "exit"]
    assert [x["restart_count"] for x in exits] == [4, 3, 2, 1]  # newest first
    assert all(x["exit_event"]["restarting"] and not x["exit_event"]["requested_stop"] for x in exits)
    assert all(x["exit_event"]["exit_code"] == 1 for x in exits)
    assert emu.machine(mid).state == "started"

    emu.advance(100)  # restart.max_retries = 10 spent: flyd leaves the machine stopped
    machine = (await api.get(f"/v1/apps/{app}/machines/{mid}")).json()
    assert machine["state"] == "stopped"
    events = (await api.get(f"/v1/apps/{app}/machines/{mid}/events", params={"limit": 50})).json()
    last = next(e for e in events if e["type"] == "exit")
    assert last["request"]["exit_event"]["restarting"] is False and last["request"]["restart_count"] == 10
    assert (await run(api, app, mid, "openclaw", "health", "--json")).status_code == 412


async def test_a_restored_gateway_answers_again(emu: FlyEmulator, api: CheckedClient) -> None:
    app, mid = await start_agent(emu, api)
    emu.crash_loop(mid, restarts=2, every=5.0)
    emu.restore_gateway(mid)
    emu.advance(60)  # no further exits once restored
    exits = [e for e in emu.machine(mid).events if e.type == "exit"]
    assert len(exits) == 2 and emu.machine(mid).health.restart_count == 2
    assert (await api.http.get(f"/gateway/{app}/healthz")).status_code == 200
    code, health = await run_json(api, app, mid, "openclaw", "health", "--json")
    assert code == 0 and health["ok"] is True


async def test_usage_counters_grow_when_told(emu: FlyEmulator, api: CheckedClient) -> None:
    app, mid = await start_agent(emu, api)
    emu.add_agent_usage(
        mid,
        "anthropic",
        "claude-sonnet-4-6",
        input_tokens=1000,
        output_tokens=50,
        input_cost_usd=0.003,
        output_cost_usd=0.00075,
    )
    emu.add_agent_usage(mid, "anthropic", "claude-sonnet-4-6", input_tokens=200, output_tokens=10, calls=2)
    emu.add_agent_usage(
        mid, "openai", "gpt-5.4", input_tokens=500, output_tokens=100, priced=False, day="2000-01-01"
    )

    code, cost = await run_json(api, app, mid, "openclaw", "gateway", "usage-cost", "--json", "--days", "2")
    assert code == 0 and cost["days"] == 2 and len(cost["daily"]) == 2
    assert (cost["totals"]["input"], cost["totals"]["output"], cost["totals"]["totalTokens"]) == (
        1200,
        60,
        1260,
    )
    assert cost["totals"]["totalCost"] == pytest.approx(0.00375)
    assert cost["daily"][-1]["input"] == 1200 and cost["daily"][0]["input"] == 0

    params = '{"range":"30d","agentScope":"all"}'
    code, report = await run_json(
        api, app, mid, "openclaw", "gateway", "call", "sessions.usage", "--params", params, "--json"
    )
    assert code == 0
    by_model = [
        (m["provider"], m["model"], m["count"], m["totals"]["input"]) for m in report["aggregates"]["byModel"]
    ]
    assert by_model == [("anthropic", "claude-sonnet-4-6", 3, 1200)]  # the 2000-01-01 usage is out of range

    wide = '{"startDate":"2000-01-01","endDate":"2100-01-01"}'
    report = (
        await run_json(
            api, app, mid, "openclaw", "gateway", "call", "sessions.usage", "--params", wide, "--json"
        )
    )[1]
    providers = {p["provider"]: p["totals"]["totalTokens"] for p in report["aggregates"]["byProvider"]}
    assert providers == {"anthropic": 1260, "openai": 600}
    daily = {(d["date"], d["provider"]): d["tokens"] for d in report["aggregates"]["modelDaily"]}
    assert daily[("2000-01-01", "openai")] == 600
    assert report["totals"]["missingCostEntries"] == 1 and report["totals"]["missingCostByModel"] == {
        "openai/gpt-5.4": 1
    }


async def test_cli_errors_answer_like_the_real_cli(emu: FlyEmulator, api: CheckedClient) -> None:
    app, mid = await start_agent(emu, api)
    unknown = (await run(api, app, mid, "openclaw", "frobnicate")).json()
    assert unknown["exit_code"] == 1 and unknown["stderr"].startswith(
        'OpenClaw does not know the command "frobnicate".'
    )
    bad_option = (await run(api, app, mid, *MODELS, "--bogus")).json()
    assert bad_option["exit_code"] == 1 and '"--bogus"' in bad_option["stderr"]
    assert '"type": "cli_error"' in bad_option["stdout"]
    text_form = (await run(api, app, mid, "openclaw", "models", "status")).json()
    assert text_form["exit_code"] == 2 and text_form["stderr"].startswith("fly-emulator:")


async def test_agent_state_survives_a_snapshot(emu: FlyEmulator, api: CheckedClient, tmp_path: Path) -> None:
    app, mid = await start_agent(emu, api)
    emu.fail_credential(mid, "anthropic", "billing")
    emu.fail_channel(mid, "telegram")
    emu.add_agent_usage(mid, "anthropic", "claude-sonnet-4-6", input_tokens=7, output_tokens=3)
    emu.snapshot_to(tmp_path / "fly.json")
    loaded = FlyEmulator.load(tmp_path / "fly.json", emu.options)
    agent = loaded.machine(mid).agent
    assert agent.credential_faults["anthropic"].reason == "billing"
    assert agent.channel_faults["telegram"].error.startswith("Unauthorized")
    assert loaded.agent_view(mid).usage_cost(1)["totals"]["totalTokens"] == 10
