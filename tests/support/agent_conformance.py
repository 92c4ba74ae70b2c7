"""Compare the Fly emulator's emulated OpenClaw agent with the real one.

A *capture* is what the real gateway and CLI answered in one scenario (the JSON files in
``tests/support/openclaw_captures``, or the same structure built live by the conformance test):
``{"scenario", "probes": [{path, caller, status, body}], "commands": [{argv, exit_code, stdout,
stderr}]}``. :func:`emulate` puts a zero-latency emulator in the same scenario and replays every probe
and command through the emulator's HTTP API (``/gateway/<app>/...`` and ``POST .../exec``, each /v1
answer checked against Fly's OpenAPI spec); :func:`differences` lists where the two disagree:

* shape: every object has the same keys, every value the same JSON type (numbers are numbers, int or
  float), list items of the emulator match some item of the real list; a few maps whose keys are data
  (``aliases``, ``missingCostByModel``, ``cpuBreakdown``) only compare their values' types;
* meaning: exit codes and probe statuses, and the fields the health poller reads (unusable profiles'
  id/kind/reason/hint, channel running/connected/lifecycle/error, readiness and its failing list,
  gateway reachability, per provider/model token counts) are equal.

Volatile values (timestamps, durations, ids, paths, event-loop figures) are never compared.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from controlplane.fly.emulator import FlyEmulator
from tests.support.agent_machines import GATEWAY_TOKEN, start_agent
from tests.support.emulator import CheckedClient, options

CAPTURES = Path(__file__).resolve().parent / "openclaw_captures"
FREE_MAPS = frozenset({"aliases", "missingCostByModel", "cpuBreakdown"})
NULLABLE = frozenset({"degradedSinceMs"})  # null until the event loop was once degraded


def _usage(emu: FlyEmulator, mid: str) -> None:
    emu.add_agent_usage(
        mid, "anthropic", "claude-sonnet-4-6", input_tokens=1200, output_tokens=42, priced=False
    )


def _billing(emu: FlyEmulator, mid: str) -> None:
    _usage(emu, mid)
    emu.fail_credential(mid, "anthropic", "billing")


def _channel_failed(emu: FlyEmulator, mid: str) -> None:
    _billing(emu, mid)
    emu.fail_channel(mid, "telegram")


def _gateway_down(emu: FlyEmulator, mid: str) -> None:
    _channel_failed(emu, mid)
    emu.crash_loop(mid, restarts=1)


# The capture's main boot runs healthy -> usage -> billing -> channel_failed -> gateway_down in one
# gateway, so each scenario keeps what the ones before it did; auth and auth_permanent boot fresh.
SCENARIOS: dict[str, Callable[[FlyEmulator, str], None]] = {
    "healthy": lambda emu, mid: None,
    "remote_probes": lambda emu, mid: None,
    "usage": _usage,
    "billing": _billing,
    "channel_failed": _channel_failed,
    "gateway_down": _gateway_down,
    "auth": lambda emu, mid: emu.fail_credential(mid, "anthropic", "auth"),
    "auth_permanent": lambda emu, mid: emu.fail_credential(mid, "anthropic", "auth_permanent"),
}


def load_capture(name: str) -> dict[str, Any]:
    return dict(json.loads((CAPTURES / f"{name}.json").read_text()))


def capture_names() -> list[str]:
    return sorted(p.stem for p in CAPTURES.glob("*.json"))


async def emulate(
    capture: dict[str, Any], setup: Callable[[FlyEmulator, str], None] | None = None
) -> dict[str, Any]:
    """The emulator's answers to the capture's probes and commands, in the same scenario."""
    emu = FlyEmulator(options(latency="zero"))
    out: dict[str, Any] = {"scenario": capture["scenario"], "probes": [], "commands": []}
    async with emu.client() as http:
        api = CheckedClient(http)
        app, machine_id = await start_agent(emu, api)
        (setup or SCENARIOS[capture["scenario"]])(emu, machine_id)
        for probe in capture["probes"]:
            # Through Fly's proxy nothing is a local caller: a local caller's details need the token.
            token = probe["caller"] in ("token", "local")
            headers = {"Authorization": f"Bearer {GATEWAY_TOKEN}"} if token else {}
            response = await http.get(f"/gateway/{app}{probe['path']}", headers=headers)
            out["probes"].append(
                {
                    **probe,
                    "status": response.status_code,
                    "body": response.json() if response.content else None,
                }
            )
        for command in capture["commands"]:
            response = await api.post(
                f"/v1/apps/{app}/machines/{machine_id}/exec",
                json={"command": command["argv"], "timeout": 30},
            )
            assert response.status_code == 200, response.text
            answer = response.json()
            try:
                stdout: Any = json.loads(answer["stdout"])
            except ValueError:
                stdout = answer["stdout"]
            out["commands"].append(
                {
                    "argv": command["argv"],
                    "exit_code": answer["exit_code"],
                    "stdout": stdout,
                    "stderr": answer["stderr"],
                }
            )
    return out


# --- shape -----------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def shape_differences(real: Any, emulated: Any, path: str = "$") -> list[str]:
    key = path.rsplit(".", 1)[-1]
    if _kind(real) != _kind(emulated):
        if key in NULLABLE and "null" in (_kind(real), _kind(emulated)):
            return []
        return [f"{path}: real {_kind(real)}, emulated {_kind(emulated)}"]
    if isinstance(real, dict):
        problems: list[str] = []
        if key not in FREE_MAPS:
            missing = sorted(real.keys() - emulated.keys())
            extra = sorted(emulated.keys() - real.keys())
            if missing:
                problems.append(f"{path}: emulated lacks {missing}")
            if extra:
                problems.append(f"{path}: emulated adds {extra}")
        for name in sorted(real.keys() & emulated.keys()):
            problems += shape_differences(real[name], emulated[name], f"{path}.{name}")
        return problems
    if isinstance(real, list):
        if not emulated:
            return []
        if not real:
            return [f"{path}: the real list was empty: the emulated items' shape is unconfirmed"]
        problems = []
        for index, item in enumerate(emulated):
            attempts = [shape_differences(candidate, item, f"{path}[{index}]") for candidate in real]
            best = min(attempts, key=len)
            problems += best
        return problems
    return []


# --- meaning ---------------------------------------------------------------------------------------


def _unusable(status: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (p["profileId"], p["kind"], p["reason"], p["recoveryHint"])
        for p in status["auth"]["unusableProfiles"]
    )


def _accounts(status: dict[str, Any]) -> dict[str, tuple[Any, ...]]:
    return {
        channel: tuple(
            (
                a.get("running"),
                a.get("connected"),
                a.get("lifecycle"),
                a.get("healthState"),
                a.get("lastError"),
            )
            for a in accounts
        )
        for channel, accounts in status.get("channelAccounts", {}).items()
    }


def _usage_by_model(report: dict[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (m["provider"], m["model"], m["count"], m["totals"]["input"], m["totals"]["output"])
        for m in report["aggregates"]["byModel"]
    )


def meaning(argv: list[str], stdout: Any) -> Any:
    """What the poller reads from one command's JSON (None: nothing beyond the exit code)."""
    if not isinstance(stdout, dict):
        return stdout if argv[1:2] == ["--version"] else None
    if stdout.get("ok") is False and "error" in stdout:
        return ("error", stdout["error"].get("type"), stdout["error"].get("kind"))
    words = [a for a in argv[1:] if not a.startswith("-")]
    if words[:2] == ["models", "status"]:
        return {"unusable": _unusable(stdout), "missing": stdout["auth"]["missingProvidersInUse"]}
    if words[:2] == ["channels", "status"]:
        if stdout.get("configOnly"):
            return {
                "configOnly": True,
                "reachable": stdout["gatewayReachable"],
                "channels": stdout["configuredChannels"],
            }
        issues = sorted((i["channel"], i["kind"], i["message"], i["fix"]) for i in stdout["statusIssues"])
        return {"accounts": _accounts(stdout), "issues": issues}
    if words[:1] == ["health"]:
        channels = {
            name: (c["running"], c["connected"], c["lifecycle"]) for name, c in stdout["channels"].items()
        }
        return {"ok": stdout["ok"], "channels": channels, "degraded": stdout["modelRuntime"]["degraded"]}
    if words[:2] == ["gateway", "usage-cost"]:
        totals = stdout["totals"]
        return (
            "usage-cost",
            totals["input"],
            totals["output"],
            totals["totalTokens"],
            totals["missingCostEntries"],
        )
    if words[:3] == ["gateway", "call", "sessions.usage"]:
        return {
            "byModel": _usage_by_model(stdout),
            "providers": [p["provider"] for p in stdout["aggregates"]["byProvider"]],
        }
    return None


def _probe_meaning(probe: dict[str, Any]) -> tuple[Any, ...]:
    body = probe["body"] if isinstance(probe["body"], dict) else {}
    return (probe["status"], body.get("ok"), body.get("status"), body.get("ready"), body.get("failing"))


def differences(real: dict[str, Any], emulated: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    for want, got in zip(real["probes"], emulated["probes"], strict=True):
        where = f"probe {want['path']} ({want['caller']})"
        if _probe_meaning(want) != _probe_meaning(got):
            problems.append(f"{where}: real {_probe_meaning(want)}, emulated {_probe_meaning(got)}")
        problems += [f"{where} {p}" for p in shape_differences(want["body"], got["body"])]
    for want, got in zip(real["commands"], emulated["commands"], strict=True):
        where = " ".join(want["argv"])
        if want["exit_code"] != got["exit_code"]:
            problems.append(f"{where}: exit code real {want['exit_code']}, emulated {got['exit_code']}")
        if meaning(want["argv"], want["stdout"]) != meaning(got["argv"], got["stdout"]):
            problems.append(
                f"{where}: real means {meaning(want['argv'], want['stdout'])}, "
                f"emulated {meaning(got['argv'], got['stdout'])}"
            )
        if isinstance(want["stdout"], (dict, list)):
            problems += [f"{where} {p}" for p in shape_differences(want["stdout"], got["stdout"])]
        if bool(want["stderr"]) != bool(got["stderr"]):
            problems.append(f"{where}: stderr real {want['stderr'][:80]!r}, emulated {got['stderr'][:80]!r}")
    return problems
