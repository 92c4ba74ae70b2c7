"""The emulated OpenClaw 2026.9.6 agent inside a machine: what its CLI prints as JSON and what its
readiness probe reports, built from the machine's config (the ``openclaw.json`` delivered through
``config.files``), the app secrets the machine sees, and the test-controlled :class:`AgentState`.

Fidelity (captured vs assumed). The key sets, nesting, value types and the meaning of every field the
health poller reads were CAPTURED from the real gateway and CLI (``tests/support/openclaw_captures``,
checked by ``tests/controlplane/fly/emulator/test_agent_answers_match_captures.py`` and, against a live
gateway, by ``tests/conformance``):

* ``models status --json``: ``auth.unusableProfiles[{profileId: "inline-api-key:<provider>", kind,
  reason, recoveryHint, until, remainingMs}]`` with the real recovery hints (billing: "Top up credits
  (provider billing) or switch provider."; auth / auth_permanent: "Re-authenticate with `openclaw
  models auth login`."; rate_limit: "Wait for cooldown or switch provider.", read from the package's
  source, not captured — a rate-limited run retries for minutes before it records the cooldown);
  ``--check`` exits 1 while a profile is unusable. Keys come from env (``${VAR}``), so profiles are
  ``inline-api-key:<provider>`` and carry no ``provider`` field.
* ``channels status --json`` and ``health --json``: a failing account is ``running: false``,
  ``connected: false``, ``lifecycle: "blocked"``, ``terminalDisconnect: true``, ``healthState:
  "terminal-disconnect"``, ``lastError``, plus a ``statusIssues`` entry; ``health.ok`` stays true.
* gateway unreachable (booting, crash-looping): ``health`` and ``gateway usage-cost`` exit 1 with
  ``{ok: false, error: {type: "gateway_transport_error", ...}, gateway: {...}}``; ``channels status``
  exits 0 with ``configOnly: true``; ``models status`` still answers from the state dir (exit 0,
  a ``[secrets]`` warning on stderr).
* a provider whose credential is unusable is also listed in ``auth.missingProvidersInUse``.
* usage: ``gateway usage-cost --json`` (daily totals) and ``gateway call sessions.usage --params
  '{"range":"30d","agentScope":"all"}' --json`` (per provider and model: ``aggregates.byProvider``,
  ``aggregates.byModel``, ``aggregates.modelDaily``).

ASSUMED (values, not shapes): key masks (the real CLI prints the first and last 8 characters of the
key; the emulator never holds keys and prints a mask of the secret's digest), plugin lists, labels of
channels other than Telegram, utility model and aliases, event-loop figures, timestamps, session ids;
one emulated session per provider/model; channel account fields of Discord/Slack/WhatsApp copy
Telegram's (only Telegram was captured). The real CLI waits up to its ``--timeout`` (default 60 s)
for an unreachable gateway; the emulator answers at once.

NOTE for callers: the real ``models status --json`` prints 16 characters of every provider key
(``effective.detail``, ``env.value``). Never store or log that output raw.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from agents_config.providers import PROVIDERS
from controlplane.fly.emulator.agent_state import AgentState, UsageEntry, window_kind
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.state import MachineRecord

DEFAULT_CONFIG_PATH = "/etc/openclaw/openclaw.json"
DEFAULT_STATE_DIR = "/data"
DEFAULT_AGENT = "main"
RECOVERY_HINTS = {
    "billing": "Top up credits (provider billing) or switch provider.",
    "auth": "Re-authenticate with `openclaw models auth login`.",
    "auth_permanent": "Re-authenticate with `openclaw models auth login`.",
    "rate_limit": "Wait for cooldown or switch provider.",
}
# What the real Telegram account reports after a refused bot token (captured).
TELEGRAM_UNAUTHORIZED = "Unauthorized | Telegram ingress worker exited with code 1"
CHANNEL_FIX = "resolve the reported channel error, then restart the channel"
CHANNEL_LABELS = {
    "telegram": ("Telegram", "Telegram Bot", "paperplane"),  # captured
    "discord": ("Discord", "Discord Bot", "bubble.left.and.bubble.right"),
    "slack": ("Slack", "Slack Bot", "number"),
    "whatsapp": ("WhatsApp", "WhatsApp Web", "message"),
}
# Loaded by 2026.9.6 for an Anthropic + Telegram config besides the configured ones (captured).
BASE_PLUGINS = (
    "browser",
    "canvas",
    "cua-computer",
    "device-pair",
    "file-transfer",
    "geolocation",
    "github",
    "linux-node",
    "memory-core",
    "ollama",
    "openai",
    "talk-voice",
    "xai",
)
HEARTBEAT_PROMPT = (
    "Follow the heartbeat monitor scratch context when provided. Recurring tasks are automations; create "
    "or change their schedules with the automations tool, not heartbeat scratch. Do not infer or repeat "
    "old tasks from prior chats. If nothing needs attention, reply NO_REPLY."
)


def mask(value: str) -> str:
    """OpenClaw's mask: first and last 8 characters."""
    return f"{value[:8]}...{value[-8:]}"


def day_of(wall: float) -> str:
    return dt.datetime.fromtimestamp(wall, tz=dt.UTC).strftime("%Y-%m-%d")


def _ms(wall: float) -> int:
    return int(wall * 1000)


@dataclass(frozen=True)
class AgentView:
    """One machine's agent as the CLI inside it sees it, at one instant."""

    world: World
    machine: MachineRecord
    config: dict[str, Any]
    config_path: str
    state_dir: str
    now_wall: float

    @classmethod
    def of(cls, world: World, machine: MachineRecord) -> AgentView:
        env = machine.config.get("env") or {}
        config_path = str(env.get("OPENCLAW_CONFIG_PATH") or DEFAULT_CONFIG_PATH)
        return cls(
            world=world,
            machine=machine,
            config=read_openclaw_config(machine.config, config_path),
            config_path=config_path,
            state_dir=str(env.get("OPENCLAW_STATE_DIR") or DEFAULT_STATE_DIR).rstrip("/"),
            now_wall=world.wall(),
        )

    # --- facts -----------------------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self.machine.agent

    @property
    def agent_dir(self) -> str:
        return f"{self.state_dir}/agents/{DEFAULT_AGENT}/agent"

    def gateway_up(self) -> bool:
        """The gateway process is listening: machine started, booted, not crash-looping."""
        machine = self.machine
        if machine.state != "started" or machine.started_mono is None or machine.health.crash_looping:
            return False
        return self.world.now() >= machine.started_mono + self.world.profile.gateway_boot

    def gateway_started_wall(self) -> float:
        started = self.machine.started_mono
        return self.world.clock.wall_at(started) if started is not None else self.now_wall

    def model_refs(self) -> tuple[str | None, list[str]]:
        model = ((self.config.get("agents") or {}).get("defaults") or {}).get("model") or {}
        if isinstance(model, str):
            return model, []
        primary = model.get("primary") if isinstance(model, dict) else None
        fallbacks = model.get("fallbacks") if isinstance(model, dict) else None
        return (
            primary if isinstance(primary, str) else None,
            [f for f in fallbacks or [] if isinstance(f, str)],
        )

    def providers(self) -> list[str]:
        """Providers the agent is configured for (plus any a test made fail)."""
        found: set[str] = set((self.config.get("models") or {}).get("providers") or {})
        for profile in ((self.config.get("auth") or {}).get("profiles") or {}).values():
            if isinstance(profile, dict) and isinstance(profile.get("provider"), str):
                found.add(profile["provider"])
        primary, fallbacks = self.model_refs()
        for ref in [primary, *fallbacks]:
            if ref and "/" in ref:
                found.add(ref.split("/", 1)[0])
        found.update(self.state.credential_faults)
        return sorted(found)

    def channels(self) -> list[str]:
        channels = self.config.get("channels") or {}
        configured = [
            name for name, block in channels.items() if isinstance(block, dict) and block.get("enabled", True)
        ]
        for name in self.state.channel_faults:
            if name not in configured:
                configured.append(name)
        return configured

    def secret_digests(self) -> dict[str, str]:
        if self.machine.skip_secrets:
            return {}
        app = self.world.state.apps.get(self.machine.app)
        if app is None:
            return {}
        return {name: entry.digest for name, entry in app.secrets_at(self.machine.secrets_version).items()}

    def failing_channels(self) -> list[str]:
        return [name for name in self.channels() if name in self.state.channel_faults]

    # --- models status --------------------------------------------------------------------------------

    def unusable_profiles(self) -> list[dict[str, Any]]:
        out = []
        for provider, fault in sorted(self.state.credential_faults.items()):
            window = fault.window_at(self.now_wall)
            if window is None:
                continue
            until, _failures = window
            out.append(
                {
                    "profileId": f"inline-api-key:{provider}",
                    "kind": window_kind(fault.reason),
                    "reason": fault.reason,
                    "recoveryHint": RECOVERY_HINTS[fault.reason],
                    "until": _ms(until),
                    "remainingMs": _ms(until) - _ms(self.now_wall),
                }
            )
        return sorted(out, key=lambda p: int(p["remainingMs"]))

    def models_status(self) -> dict[str, Any]:
        primary, fallbacks = self.model_refs()
        up = self.gateway_up()
        digests = self.secret_digests()
        configured_blocks = (self.config.get("models") or {}).get("providers") or {}
        providers: list[dict[str, Any]] = []
        missing: list[str] = []
        for provider in self.providers():
            spec = PROVIDERS.get(provider)
            env_var = spec.env_var if spec else f"{provider.upper().replace('-', '_')}_API_KEY"
            digest = digests.get(env_var)
            if digest is None:
                missing.append(provider)
                continue
            entry: dict[str, Any] = {
                "provider": provider,
                "effective": {"kind": "env", "detail": mask(digest)},
                "profiles": {"count": 0, "oauth": 0, "token": 0, "apiKey": 0, "labels": []},
                "env": {"value": mask(digest), "source": f"env: {env_var}"},
            }
            if provider in configured_blocks:
                entry["modelsJson"] = {
                    "value": mask(env_var),
                    "source": f"models.json: {self.agent_dir}/models.json",
                }
            providers.append(entry)
        # A provider whose only credential is unusable counts as missing (captured: billing -> listed).
        unusable = self.unusable_profiles()
        missing = sorted({*missing, *(str(p["profileId"]).removeprefix("inline-api-key:") for p in unusable)})
        return {
            "configPath": self.config_path,
            "agentDir": self.agent_dir,
            "defaultModel": primary,
            "resolvedDefault": primary,
            "fallbacks": fallbacks,
            "imageModel": None,
            "imageFallbacks": [],
            "utilityModel": {"ref": primary, "source": "provider-default"},
            "aliases": {},
            "allowed": [ref for ref in [primary] if ref],
            "auth": {
                "storePath": f"{self.state_dir}/state/openclaw.sqlite"
                if up
                else f"{self.agent_dir}/openclaw-agent.sqlite",
                "shellEnvFallback": {"enabled": False, "appliedKeys": []},
                "providersWithOAuth": [],
                "missingProvidersInUse": missing,
                "modelRouteIssues": [],
                "runtimeAuthRoutes": [],
                "providers": providers,
                "unusableProfiles": unusable,
                "oauth": {"warnAfterMs": 86_400_000, "profiles": [], "providers": []},
            },
        }

    # --- channels and health --------------------------------------------------------------------------

    def _channel_mode(self, channel: str) -> str | None:
        block = (self.config.get("channels") or {}).get(channel) or {}
        if channel == "telegram":
            return "webhook" if block.get("webhookUrl") else "polling"
        mode = block.get("mode")
        return str(mode) if isinstance(mode, str) else None

    def _account(self, channel: str) -> dict[str, Any]:
        started = _ms(self.gateway_started_wall()) + 1_000
        fault = self.state.channel_faults.get(channel)
        connected_at = _ms(fault.since_wall) - 40 if fault else _ms(self.now_wall) - 500
        account: dict[str, Any] = {
            "accountId": "default",
            "enabled": True,
            "lastStartAt": started,
            "lastStopAt": _ms(fault.since_wall) if fault else None,
            "restartPending": False,
            "reconnectAttempts": 0,
            "lastConnectedAt": connected_at,
            "lastEventAt": connected_at,
            "lastTransportActivityAt": connected_at,
            "lifecycle": "blocked" if fault else "ready",
        }
        if fault:
            account["terminalDisconnect"] = True
        account.update(
            {
                "lastInboundAt": None,
                "lastOutboundAt": None,
                "tokenSource": "config",
                "tokenStatus": "available",
            }
        )
        mode = self._channel_mode(channel)
        if mode is not None:
            account["mode"] = mode
        account.update(
            {
                "allowUnmentionedGroups": False,
                "configured": True,
                "running": fault is None,
                "connected": fault is None,
                "lastError": fault.error if fault else None,
            }
        )
        if fault:
            account["healthState"] = "terminal-disconnect"
        return account

    def _labels(self, channel: str) -> tuple[str, str, str]:
        title = channel.replace("-", " ").title()
        return CHANNEL_LABELS.get(channel, (title, title, "message"))

    def event_loop(self) -> dict[str, Any]:
        cpus = int((self.machine.config.get("guest") or {}).get("cpus") or 1)
        return {
            "degraded": False,
            "degradedSinceMs": None,
            "reasons": [],
            "intervalMs": 1000.0,
            "delayP99Ms": 21.0,
            "delayMaxMs": 21.0,
            "utilization": 0.02,
            "cpuCoreRatio": 0.02,
            "cpuBreakdown": {
                "mainThreadCoreRatio": 0.015,
                "hostUtilization": 0.05,
                "hostCpuCount": cpus,
                "workerCoreRatio": 0.003,
                "otherThreadsCoreRatio": 0.002,
            },
        }

    def channels_status(self, timeout_ms: int) -> dict[str, Any]:
        channels = self.channels()
        if not self.gateway_up():
            return {
                "gatewayReachable": False,
                "error": f"Gateway not reachable after waiting {_seconds(timeout_ms)} s.\n"
                "waiting for managed service\nRun openclaw gateway status --deep to diagnose.",
                "gatewayAuthUnavailable": False,
                "configOnly": True,
                "config": {"path": self.config_path, "mode": "local"},
                "configuredChannels": channels,
            }
        summaries: dict[str, Any] = {}
        accounts: dict[str, Any] = {}
        issues: list[dict[str, Any]] = []
        for channel in channels:
            account = self._account(channel)
            summary: dict[str, Any] = {
                "configured": True,
                "running": account["running"],
                "lastStartAt": account["lastStartAt"],
                "lastStopAt": account["lastStopAt"],
                "lastError": account["lastError"],
                "tokenSource": "config",
                "lastProbeAt": None,
            }
            if "mode" in account:
                summary["mode"] = account["mode"]
            summaries[channel] = summary
            accounts[channel] = [account]
            fault = self.state.channel_faults.get(channel)
            if fault:
                issues.append(
                    {
                        "channel": channel,
                        "accountId": "default",
                        "kind": "runtime",
                        "message": fault.error,
                        "fix": CHANNEL_FIX,
                    }
                )
        return {
            "ts": _ms(self.now_wall),
            "channelOrder": channels,
            "channelLabels": {c: self._labels(c)[0] for c in channels},
            "channelDetailLabels": {c: self._labels(c)[1] for c in channels},
            "channelSystemImages": {c: self._labels(c)[2] for c in channels},
            "channelMeta": [
                {
                    "id": c,
                    "label": self._labels(c)[0],
                    "detailLabel": self._labels(c)[1],
                    "systemImage": self._labels(c)[2],
                }
                for c in channels
            ],
            "eventLoop": self.event_loop(),
            "channels": summaries,
            "channelAccounts": accounts,
            "channelDefaultAccountId": {c: "default" for c in channels},
            "statusIssues": issues,
        }

    def gateway_target(self) -> dict[str, Any]:
        gateway = self.config.get("gateway") or {}
        port = gateway.get("port") if isinstance(gateway.get("port"), int) else 18789
        return {
            "url": f"ws://127.0.0.1:{port}",
            "urlSource": "local loopback",
            "bindDetail": f"Bind: {gateway.get('bind') or 'loopback'}",
        }

    def unreachable(self, timeout_ms: int) -> dict[str, Any]:
        """What a gateway RPC command prints when nothing listens (``health``: captured)."""
        return {
            "ok": False,
            "error": {
                "type": "gateway_transport_error",
                "kind": "timeout",
                "message": f"Gateway not reachable after waiting {_seconds(timeout_ms)} s.",
                "timeoutMs": timeout_ms,
            },
            "gateway": self.gateway_target(),
        }

    def refused(self) -> dict[str, Any]:
        """What ``gateway usage-cost`` prints when the connection is refused (captured)."""
        target = self.gateway_target()
        address = target["url"].removeprefix("ws://")
        return {
            "ok": False,
            "error": {
                "type": "gateway_transport_error",
                "kind": "closed",
                "message": f"Gateway not reachable at {target['url']} (ECONNREFUSED).",
                "reason": f"connect ECONNREFUSED {address}",
            },
            "gateway": target,
        }

    def refused_secrets_warning(self) -> str:
        target = self.gateway_target()
        return (
            f"[secrets] models status: gateway secrets.resolve unavailable (Gateway not reachable at "
            f"{target['url']} (ECONNREFUSED).\nStart it with `openclaw gateway run` or check `openclaw "
            f"gateway status`.\nGateway target: {target['url']}\nSource: local loopback\nConfig: "
            f"{self.config_path}\n{target['bindDetail']}); resolved command secrets locally.\n"
        )

    def health(self) -> dict[str, Any]:
        channels = self.channels()
        sessions_path = f"{self.agent_dir}/openclaw-agent.sqlite"
        recent: list[dict[str, Any]] = []
        for (provider, model), group in self._sessions().items():
            last = _ms(max(e.last_wall for e in group))
            recent.append(
                {
                    "key": self._session_key(provider, model),
                    "updatedAt": last,
                    "age": _ms(self.now_wall) - last,
                }
            )
        recent.sort(key=lambda item: -int(item["updatedAt"]))
        entries: dict[str, Any] = {}
        for channel in channels:
            account = {**self._account(channel), "lastProbeAt": None}
            entries[channel] = {**account, "accounts": {"default": account}}
        plugins = sorted({*BASE_PLUGINS, *self.providers(), *channels})
        sessions = {"path": sessions_path, "count": len(recent), "recent": recent[:10]}
        return {
            "ok": True,
            "ts": _ms(self.now_wall),
            "durationMs": 30,
            "plugins": {"loaded": plugins, "errors": [], "unavailable": []},
            "configReload": {"hotReloadStatus": "active"},
            "channels": entries,
            "channelOrder": channels,
            "channelLabels": {c: self._labels(c)[0] for c in channels},
            "heartbeatSeconds": 0,
            "defaultAgentId": DEFAULT_AGENT,
            "agents": [
                {
                    "agentId": DEFAULT_AGENT,
                    "isDefault": True,
                    "heartbeat": {
                        "enabled": False,
                        "every": "disabled",
                        "everyMs": None,
                        "prompt": HEARTBEAT_PROMPT,
                        "target": "owner",
                        "ackMaxChars": 300,
                    },
                    "sessions": {**sessions, "recent": list(recent[:10])},
                }
            ],
            "sessions": sessions,
            "modelRuntime": {"degraded": False, "pendingAgents": []},
            "eventLoop": self.event_loop(),
        }

    def readiness(self) -> tuple[bool, list[str]]:
        """(/readyz ready, failing). Configured channels failing their checks make it 503."""
        failing = [*self.machine.health.failing, *self.failing_channels()]
        ready = self.machine.health.ready and not self.failing_channels()
        return ready, failing if not ready else []

    # --- usage ----------------------------------------------------------------------------------------

    def _sessions(self) -> dict[tuple[str, str], list[UsageEntry]]:
        sessions: dict[tuple[str, str], list[UsageEntry]] = {}
        for entry in self.state.usage:
            sessions.setdefault((entry.provider, entry.model), []).append(entry)
        return sessions

    def usage_cost(self, days: int) -> dict[str, Any]:
        dates = _date_range(day_of(self.now_wall), days)
        by_day: dict[str, list[UsageEntry]] = {d: [] for d in dates}
        for entry in self.state.usage:
            if entry.day in by_day:
                by_day[entry.day].append(entry)
        every = [e for d in dates for e in by_day[d]]
        return {
            "updatedAt": _ms(self.now_wall),
            "days": days,
            "daily": [{"date": d, **_totals(by_day[d])} for d in dates],
            "totals": _totals(every),
            "cacheStatus": self._cache_status(),
        }

    def _cache_status(self) -> dict[str, Any]:
        files = len(self._sessions())
        status: dict[str, Any] = {"status": "fresh", "cachedFiles": files, "pendingFiles": 0, "staleFiles": 0}
        if files:
            status["refreshedAt"] = _ms(self.now_wall)
        return status

    def sessions_usage(self, start: str, end: str) -> dict[str, Any]:
        sessions = []
        chosen: list[UsageEntry] = []
        for (provider, model), entries in sorted(self._sessions().items()):
            inside = [e for e in entries if start <= e.day <= end]
            if not inside:
                continue
            chosen += inside
            sessions.append(self._session(provider, model, inside))
        return {
            "updatedAt": _ms(self.now_wall),
            "startDate": start,
            "endDate": end,
            "sessions": sessions,
            "totals": _totals(chosen),
            "aggregates": _aggregates(chosen, len(sessions)),
            "creatorOptions": [{"key": '["unknown"]'}] if sessions else [],
            "cacheStatus": self._cache_status(),
        }

    @staticmethod
    def _session_key(provider: str, model: str) -> str:
        return f"agent:{DEFAULT_AGENT}:emulated:{provider}/{model}"

    def _session(self, provider: str, model: str, entries: list[UsageEntry]) -> dict[str, Any]:
        session_id = f"emulated-{self.machine.id}-{provider}-{model}".replace("/", "-")
        first = min(e.first_wall for e in entries)
        last = max(e.last_wall for e in entries)
        calls = sum(e.calls for e in entries)
        dates = sorted({e.day for e in entries})
        latency = _latency(calls)
        usage = {
            **_totals(entries),
            "sessionId": session_id,
            "sessionFile": f"sqlite:{DEFAULT_AGENT}:{session_id}:{self.agent_dir}/openclaw-agent.sqlite",
            "firstActivity": _ms(first),
            "lastActivity": _ms(last),
            "durationMs": _ms(last) - _ms(first),
            "messageCounts": _messages(calls),
            "modelUsage": [
                {"provider": provider, "model": model, "count": calls, "totals": _totals(entries)}
            ],
            "latency": latency,
            "activityDates": dates,
            "dailyBreakdown": [
                {"date": d, **_tokens_cost([e for e in entries if e.day == d]), **_totals_of_day(entries, d)}
                for d in dates
            ],
            "dailyMessageCounts": [
                {"date": d, **_messages(sum(e.calls for e in entries if e.day == d))} for d in dates
            ],
            "utcQuarterHourMessageCounts": [],
            "utcQuarterHourTokenUsage": [],
            "dailyLatency": [{"date": d, **latency} for d in dates],
            "dailyModelUsage": _model_daily(entries),
        }
        return {
            "key": self._session_key(provider, model),
            "sessionId": session_id,
            "scope": "instance",
            "updatedAt": _ms(last),
            "agentId": DEFAULT_AGENT,
            "creatorKey": '["unknown"]',
            "modelProvider": provider,
            "model": model,
            "usage": usage,
            "hasContextWeight": True,
        }


# --- helpers ---------------------------------------------------------------------------------------


def read_openclaw_config(machine_config: dict[str, Any], path: str = DEFAULT_CONFIG_PATH) -> dict[str, Any]:
    """The ``openclaw.json`` the machine boots with ({} when the config carries none). Shared and
    cached per content (every probe reads it): callers must not change it."""
    for item in machine_config.get("files") or []:
        if isinstance(item, dict) and item.get("guest_path") == path:
            raw = item.get("raw_value")
            return _decode_config(raw) if isinstance(raw, str) else {}
    return {}


@lru_cache(maxsize=4096)
def _decode_config(raw: str) -> dict[str, Any]:
    try:
        parsed = json.loads(base64.b64decode(raw, validate=True))
    except (binascii.Error, ValueError):
        return {}
    return parsed if isinstance(parsed, dict) else {}


def _seconds(timeout_ms: int) -> str:
    seconds = timeout_ms / 1000
    return str(int(seconds)) if seconds == int(seconds) else f"{seconds:g}"


def _date_range(last: str, days: int) -> list[str]:
    end = dt.date.fromisoformat(last)
    return [(end - dt.timedelta(days=n)).isoformat() for n in range(max(1, days) - 1, -1, -1)]


def _cost(entry: UsageEntry) -> float:
    return entry.input_cost + entry.output_cost


def _totals(entries: list[UsageEntry]) -> dict[str, Any]:
    totals: dict[str, Any] = {
        "input": sum(e.input for e in entries),
        "output": sum(e.output for e in entries),
        "cacheRead": sum(e.cache_read for e in entries),
        "cacheWrite": sum(e.cache_write for e in entries),
        "totalTokens": sum(e.input + e.output + e.cache_read + e.cache_write for e in entries),
        "totalCost": round(sum(_cost(e) for e in entries), 6),
        "inputCost": round(sum(e.input_cost for e in entries), 6),
        "outputCost": round(sum(e.output_cost for e in entries), 6),
        "cacheReadCost": 0,
        "cacheWriteCost": 0,
        "missingCostEntries": sum(e.unpriced_calls for e in entries),
    }
    missing: dict[str, int] = {}
    for entry in entries:
        if entry.unpriced_calls:
            ref = f"{entry.provider}/{entry.model}"
            missing[ref] = missing.get(ref, 0) + entry.unpriced_calls
    if missing:
        totals["missingCostByModel"] = missing
    return totals


def _totals_of_day(entries: list[UsageEntry], day: str) -> dict[str, Any]:
    return _totals([e for e in entries if e.day == day])


def _tokens_cost(entries: list[UsageEntry]) -> dict[str, Any]:
    totals = _totals(entries)
    return {"tokens": totals["totalTokens"], "cost": totals["totalCost"]}


def _messages(calls: int) -> dict[str, int]:
    # One user message and one assistant answer per model call (no tools in the emulation).
    return {
        "total": 2 * calls,
        "user": calls,
        "assistant": calls,
        "toolCalls": 0,
        "toolResults": 0,
        "errors": 0,
    }


def _latency(calls: int) -> dict[str, int]:
    return {"count": calls, "avgMs": 1500, "p95Ms": 1500, "minMs": 1500, "maxMs": 1500}


def _model_daily(entries: list[UsageEntry]) -> list[dict[str, Any]]:
    keyed: dict[tuple[str, str, str], list[UsageEntry]] = {}
    for entry in entries:
        keyed.setdefault((entry.day, entry.provider, entry.model), []).append(entry)
    return [
        {
            "date": day,
            "provider": provider,
            "model": model,
            **_tokens_cost(group),
            "count": sum(e.calls for e in group),
        }
        for (day, provider, model), group in sorted(keyed.items())
    ]


def _aggregates(entries: list[UsageEntry], session_count: int) -> dict[str, Any]:
    calls = sum(e.calls for e in entries)
    by_model: dict[tuple[str, str], list[UsageEntry]] = {}
    by_provider: dict[str, list[UsageEntry]] = {}
    for entry in entries:
        by_model.setdefault((entry.provider, entry.model), []).append(entry)
        by_provider.setdefault(entry.provider, []).append(entry)
    dates = sorted({e.day for e in entries})
    aggregates: dict[str, Any] = {"sessionCount": session_count}
    if session_count:
        first = min(e.first_wall for e in entries)
        last = max(e.last_wall for e in entries)
        aggregates["longestSessionDurationMs"] = _ms(last) - _ms(first)
    aggregates.update(
        {
            "messages": _messages(calls),
            "tools": {"totalCalls": 0, "uniqueTools": 0, "tools": []},
            "byModel": [
                {"provider": p, "model": m, "count": sum(e.calls for e in group), "totals": _totals(group)}
                for (p, m), group in sorted(by_model.items())
            ],
            "byProvider": [
                {"provider": p, "count": sum(e.calls for e in group), "totals": _totals(group)}
                for p, group in sorted(by_provider.items())
            ],
            "byAgent": [{"agentId": DEFAULT_AGENT, "totals": _totals(entries)}] if entries else [],
            "byChannel": [],
            "byCreator": [
                {
                    "key": '["unknown"]',
                    "totals": _totals(entries),
                    "sessionCount": session_count,
                    "daily": [{"date": d, **_totals_of_day(entries, d)} for d in dates],
                    "sessionActivity": [{"dates": dates, "sessionCount": session_count}],
                }
            ]
            if entries
            else [],
            "costDaily": [{"date": d, **_totals_of_day(entries, d)} for d in dates],
        }
    )
    if session_count:
        latency = _latency(calls)
        aggregates["latency"] = {k: latency[k] for k in ("count", "avgMs", "minMs", "maxMs", "p95Ms")}
    aggregates.update(
        {
            "dailyLatency": [{"date": d, **_latency(calls)} for d in dates],
            "modelDaily": _model_daily(entries),
            "daily": [
                {
                    "date": d,
                    **_tokens_cost([e for e in entries if e.day == d]),
                    "messages": 2 * sum(e.calls for e in entries if e.day == d),
                    "toolCalls": 0,
                    "errors": 0,
                }
                for d in dates
            ],
        }
    )
    return aggregates


__all__ = ["AgentView", "day_of", "mask", "read_openclaw_config"]
