"""The ``openclaw`` CLI as an exec'd command sees it: argument parsing, exit codes and output of the
commands the health poller runs, answered from :class:`~controlplane.fly.emulator.agent.AgentView`.

Emulated (JSON forms only, shapes captured from 2026.9.6, see ``agent``'s docstring):

    openclaw models status --json [--check] [--agent ID]      (also: openclaw models --json)
    openclaw channels status --json [--probe] [--channel C] [--timeout MS]
    openclaw health --json [--timeout MS]
    openclaw gateway usage-cost --json [--days N] [--agent ID | --all-agents] [--timeout MS]
    openclaw gateway call sessions.usage --params '{"range":"30d","agentScope":"all"}' --json
    openclaw gateway call usage.cost|health|channels.status [--params JSON] --json
    openclaw --version

An unknown command or option answers like the real CLI (exit 1, its captured messages). A real
command the emulator does not model, or a text (non ``--json``) form, exits 2 with a line starting
``fly-emulator:`` — never a made-up answer.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from dataclasses import dataclass
from typing import Any

from controlplane.fly.emulator.agent import AgentView, day_of

DEFAULT_TIMEOUT_MS = 60_000
# Top-level commands of openclaw 2026.9.6 (`openclaw --help`).
KNOWN_COMMANDS = frozenset(
    "acp agent agents approvals attach audit automations backup browser capability channels chat clawbot "
    "completion config configure connect cron daemon dashboard database devices directory dns docs doctor "
    "exec-approvals exec-policy file-transfer fleet gateway googlemeet health help hooks infer logs mcp "
    "memory message migrate models node nodes onboard pairing plugins promos proxy qr reset resume sandbox "
    "secrets security sessions setup skills status system tasks teamsmeetings telemetry terminal "
    "transcripts triage tui uninstall update users webhooks worker worktrees zoommeetings".split()
)
_RANGE = re.compile(r"^(\d+)d$")


@dataclass(frozen=True)
class ExecOutput:
    exit_code: int
    stdout: str = ""
    stderr: str = ""


@dataclass(frozen=True)
class _Options:
    flags: frozenset[str]
    values: dict[str, str]


class _CliError(Exception):
    def __init__(self, message: str, json_output: bool) -> None:
        super().__init__(message)
        self.message = message
        self.json_output = json_output

    def output(self) -> ExecOutput:
        stdout = _json({"ok": False, "error": {"type": "cli_error", "message": self.message}})
        return ExecOutput(1, stdout if self.json_output else "", self.message + "\n")


def _json(value: Any) -> str:
    return json.dumps(value, indent=2) + "\n"


def _parse(args: list[str], command: str, flags: set[str], valued: set[str]) -> _Options:
    found: set[str] = set()
    values: dict[str, str] = {}
    json_output = "--json" in args
    i = 0
    while i < len(args):
        arg = args[i]
        name, eq, inline = arg.partition("=")
        if name in flags and not eq:
            found.add(name)
        elif name in valued:
            if eq:
                values[name] = inline
            elif i + 1 < len(args):
                i += 1
                values[name] = args[i]
            else:
                raise _CliError(f"option '{name} <value>' argument missing", json_output)
        elif arg.startswith("-"):
            raise _CliError(
                f'OpenClaw does not recognize option "{name}".\nTry: openclaw {command} --help', json_output
            )
        else:
            raise _CliError(
                f"too many arguments for '{command}'. Expected 0 arguments but got {arg!r}.", json_output
            )
        i += 1
    return _Options(frozenset(found), values)


def _int_option(options: _Options, name: str, default: int) -> int:
    raw = options.values.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise _CliError(f"{name} must be a positive integer", "--json" in options.flags) from None
    if value <= 0:
        raise _CliError(f"{name} must be a positive integer", "--json" in options.flags)
    return value


def _not_modelled(what: str) -> ExecOutput:
    return ExecOutput(2, "", f"fly-emulator: `openclaw {what}` is not modelled by the emulated agent\n")


def run_openclaw(view: AgentView, args: list[str]) -> ExecOutput:
    """Run ``openclaw <args>`` against the emulated agent."""
    try:
        return _dispatch(view, args)
    except _CliError as exc:
        return exc.output()


def _dispatch(view: AgentView, args: list[str]) -> ExecOutput:
    if not args or args[0] in ("-h", "--help", "help"):
        return _not_modelled("--help")
    if args[0] in ("-V", "--version"):
        tag = str(view.machine.config.get("image", "")).rpartition(":")[2] or "unknown"
        suffix = " (eb377ac)" if tag == "2026.9.6" else ""
        return ExecOutput(0, f"OpenClaw {tag}{suffix}\n")
    command, rest = args[0], args[1:]
    if command not in KNOWN_COMMANDS:
        return ExecOutput(
            1,
            "",
            f'OpenClaw does not know the command "{command}".\nTry: openclaw --help\n'
            "Plugin command? openclaw plugins list\nDocs: https://docs.openclaw.ai/cli\n",
        )
    if command == "models":
        if rest[:1] == ["status"]:
            return _models_status(view, rest[1:], "models status")
        if rest and rest[0] in ("--json", "--status-json"):
            return _models_status(view, ["--json", *rest[1:]], "models")
        return _not_modelled(" ".join(args[:2]))
    if command == "channels" and rest[:1] == ["status"]:
        return _channels_status(view, rest[1:])
    if command == "health":
        return _health(view, rest)
    if command == "gateway" and rest[:1] == ["usage-cost"]:
        return _usage_cost(view, rest[1:])
    if command == "gateway" and rest[:1] == ["call"] and len(rest) > 1:
        return _gateway_call(view, rest[1], rest[2:])
    return _not_modelled(" ".join(args[:2]))


def _models_status(view: AgentView, args: list[str], command: str) -> ExecOutput:
    options = _parse(args, command, {"--json", "--check", "--plain"}, {"--agent"})
    if "--json" not in options.flags:
        return _not_modelled(f"{command} (text output)")
    status = view.models_status()
    stderr = "" if view.gateway_up() else view.refused_secrets_warning()
    exit_code = 0
    if "--check" in options.flags and (
        status["auth"]["unusableProfiles"] or status["auth"]["missingProvidersInUse"]
    ):
        exit_code = 1  # --check: 1 = missing/expired/unavailable
    return ExecOutput(exit_code, _json(status), stderr)


def _channels_status(view: AgentView, args: list[str]) -> ExecOutput:
    options = _parse(args, "channels status", {"--json", "--probe"}, {"--timeout", "--channel"})
    if "--json" not in options.flags:
        return _not_modelled("channels status (text output)")
    timeout = _int_option(options, "--timeout", DEFAULT_TIMEOUT_MS)
    status = view.channels_status(timeout)
    only = options.values.get("--channel")
    if only and only != "all" and "channels" in status:
        status = _only_channel(status, only)
    return ExecOutput(0, _json(status))


def _only_channel(status: dict[str, Any], channel: str) -> dict[str, Any]:
    filtered = dict(status)
    for key in ("channelLabels", "channelDetailLabels", "channelSystemImages", "channels", "channelAccounts"):
        filtered[key] = {k: v for k, v in status[key].items() if k == channel}
    filtered["channelDefaultAccountId"] = {
        k: v for k, v in status["channelDefaultAccountId"].items() if k == channel
    }
    filtered["channelOrder"] = [c for c in status["channelOrder"] if c == channel]
    filtered["channelMeta"] = [m for m in status["channelMeta"] if m["id"] == channel]
    filtered["statusIssues"] = [i for i in status["statusIssues"] if i["channel"] == channel]
    return filtered


def _health(view: AgentView, args: list[str]) -> ExecOutput:
    options = _parse(args, "health", {"--json", "--verbose", "--debug"}, {"--timeout"})
    if "--json" not in options.flags:
        return _not_modelled("health (text output)")
    timeout = _int_option(options, "--timeout", DEFAULT_TIMEOUT_MS)
    if not view.gateway_up():
        return ExecOutput(1, _json(view.unreachable(timeout)))
    return ExecOutput(0, _json(view.health()))


_GATEWAY_RPC_FLAGS = {"--json", "--expect-final"}
_GATEWAY_RPC_VALUES = {"--timeout", "--url", "--token", "--password", "--port"}


def _usage_cost(view: AgentView, args: list[str]) -> ExecOutput:
    options = _parse(
        args,
        "gateway usage-cost",
        {*_GATEWAY_RPC_FLAGS, "--all-agents"},
        {*_GATEWAY_RPC_VALUES, "--days", "--agent"},
    )
    if "--json" not in options.flags:
        return _not_modelled("gateway usage-cost (text output)")
    days = _int_option(options, "--days", 30)
    if not view.gateway_up():
        return ExecOutput(1, _json(view.refused()))
    return ExecOutput(0, _json(view.usage_cost(days)))


def _gateway_call(view: AgentView, method: str, args: list[str]) -> ExecOutput:
    options = _parse(args, "gateway call", _GATEWAY_RPC_FLAGS, {*_GATEWAY_RPC_VALUES, "--params"})
    json_output = "--json" in options.flags
    if not json_output:
        return _not_modelled(f"gateway call {method} (text output)")
    try:
        params = json.loads(options.values.get("--params") or "{}")
    except ValueError:
        raise _CliError("--params must be valid JSON", json_output) from None
    if not isinstance(params, dict):
        raise _CliError("--params must be a JSON object", json_output)
    if method not in ("sessions.usage", "usage.cost", "health", "channels.status"):
        return _not_modelled(f"gateway call {method}")
    if not view.gateway_up():
        return ExecOutput(1, _json(view.refused()))
    if method == "health":
        return ExecOutput(0, _json(view.health()))
    if method == "channels.status":
        return ExecOutput(0, _json(view.channels_status(DEFAULT_TIMEOUT_MS)))
    start, end = _date_window(view, params, json_output)
    if method == "usage.cost":
        days = (_as_date(end) - _as_date(start)).days + 1
        return ExecOutput(0, _json(view.usage_cost(days)))
    return ExecOutput(0, _json(view.sessions_usage(start, end)))


def _as_date(text: str) -> dt.date:
    return dt.date.fromisoformat(text)


def _date_window(view: AgentView, params: dict[str, Any], json_output: bool) -> tuple[str, str]:
    """``range: "<N>d"`` (ending today, UTC) or ``startDate``/``endDate`` (YYYY-MM-DD); default 30d."""
    today = day_of(view.now_wall)
    start, end = params.get("startDate"), params.get("endDate")
    if isinstance(start, str) or isinstance(end, str):
        try:
            first = dt.date.fromisoformat(str(start or today))
            last = dt.date.fromisoformat(str(end or today))
        except ValueError:
            raise _CliError("INVALID_REQUEST: startDate/endDate must be YYYY-MM-DD", json_output) from None
        return first.isoformat(), last.isoformat()
    found = _RANGE.match(str(params.get("range") or "30d"))
    if found is None:
        raise _CliError('INVALID_REQUEST: range must look like "30d"', json_output)
    days = max(1, int(found.group(1)))
    last = dt.date.fromisoformat(today)
    return (last - dt.timedelta(days=days - 1)).isoformat(), today
