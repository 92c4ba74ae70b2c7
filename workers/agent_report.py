"""What the agent says about itself, read from the JSON of OpenClaw 2026.9.6's CLI (exec'd in the
machine) and of its ``/readyz``: pure parsing, no I/O.

Shapes are the ones captured from the real CLI (``tests/support/openclaw_captures``):

* ``openclaw models status --json``: ``auth.unusableProfiles[{profileId: "inline-api-key:<provider>",
  kind, reason, ...}]`` — the reason in OpenClaw's words (``billing``, ``auth``, ``auth_permanent``,
  ``rate_limit`` ...) becomes a :class:`~controlplane.enums.KeyVerdict`, the one vocabulary the key
  validator uses too. The real output also prints 16 characters of every key (``effective.detail``,
  ``env.value``): only ``unusableProfiles`` is read, and the raw text is never stored or logged.
* ``openclaw channels status --json``: ``channelAccounts.<channel>[{enabled, configured, running,
  connected, lifecycle, healthState, lastError}]``.
* ``openclaw gateway call sessions.usage --params '{"range":"2d",...}' --json``: per-session daily
  token splits (``dailyBreakdown``) and per-day models (``dailyModelUsage``), and per-day cost per
  provider/model (``aggregates.modelDaily``).
* ``/readyz`` with the gateway token: ``{"ready": bool, "failing": [channel ids | "startup"]}``.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import date
from typing import Any

from controlplane.dashboard.usage import DailyUsage, usd_to_micro
from controlplane.enums import KeyVerdict

#: OpenClaw's failure reasons of a model credential, in the verdict vocabulary.
REASON_VERDICTS: dict[str, KeyVerdict] = {
    "billing": KeyVerdict.no_credit,
    "auth": KeyVerdict.invalid_key,
    "auth_permanent": KeyVerdict.revoked_or_blocked,
    "rate_limit": KeyVerdict.rate_limited,
    "overloaded": KeyVerdict.overloaded,
}
MODELS_STATUS = ("openclaw", "models", "status", "--json")
CHANNELS_STATUS = ("openclaw", "channels", "status", "--json")
SESSIONS_USAGE = (
    "openclaw",
    "gateway",
    "call",
    "sessions.usage",
    "--params",
    '{"range":"2d","agentScope":"all"}',
    "--json",
)


def parse_json(text: str) -> dict[str, Any] | None:
    """The JSON object in a command's stdout, or ``None`` (never raises, never echoes the text)."""
    try:
        value = json.loads(text)
    except (ValueError, TypeError):
        start = text.find("{") if isinstance(text, str) else -1
        if start < 0:
            return None
        try:
            value = json.loads(text[start:])
        except ValueError:
            return None
    return value if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class UnusableKey:
    provider: str
    verdict: KeyVerdict
    reason: str  # OpenClaw's own word


def unusable_keys(models_status: dict[str, Any]) -> list[UnusableKey]:
    """Providers whose credential the agent itself finds unusable, and why."""
    auth = models_status.get("auth")
    profiles = auth.get("unusableProfiles") if isinstance(auth, dict) else None
    found: dict[str, UnusableKey] = {}
    for profile in profiles if isinstance(profiles, list) else []:
        if not isinstance(profile, dict):
            continue
        profile_id = str(profile.get("profileId") or "")
        provider = str(profile.get("provider") or "") or _provider_of(profile_id)
        if not provider:
            continue
        reason = str(profile.get("reason") or "")
        verdict = REASON_VERDICTS.get(reason, KeyVerdict.unknown)
        if provider not in found or found[provider].verdict is KeyVerdict.unknown:
            found[provider] = UnusableKey(provider, verdict, reason)
    return list(found.values())


def _provider_of(profile_id: str) -> str:
    # "inline-api-key:anthropic" (keys from env), "anthropic:default" (auth profiles)
    head, sep, tail = profile_id.partition(":")
    if not sep:
        return ""
    return tail if head.startswith("inline") else head


@dataclass(frozen=True, slots=True)
class ChannelHealth:
    channel: str
    ok: bool
    state: str  # a short word for the channels table: connected, error, stopped
    detail: str | None = None


def channel_health(channels_status: dict[str, Any]) -> list[ChannelHealth]:
    """Each configured channel: is every enabled account running and not blocked?"""
    accounts = channels_status.get("channelAccounts")
    result = []
    for channel, rows in accounts.items() if isinstance(accounts, dict) else []:
        if not isinstance(rows, list):
            continue
        ok, detail = True, None
        for account in rows:
            if not isinstance(account, dict) or account.get("enabled") is False:
                continue
            if account.get("configured") is False:
                continue
            blocked = (
                account.get("running") is False
                or account.get("lifecycle") == "blocked"
                or account.get("terminalDisconnect") is True
                or account.get("healthState") == "terminal-disconnect"
            )
            if blocked:
                ok = False
                detail = str(account.get("lastError") or account.get("healthState") or "not running")[:200]
        result.append(ChannelHealth(str(channel), ok, "connected" if ok else "error", detail))
    return result


@dataclass(frozen=True, slots=True)
class Readiness:
    reachable: bool  # the gateway answered as a gateway (200, or 503 with its JSON)
    ready: bool
    failing_channels: tuple[str, ...] = ()
    booting: bool = False


def readiness(status: int | None, body: Any) -> Readiness:
    """``/readyz`` (with the gateway token): 200 ready; 503 ``failing`` names the channels that fail
    their checks (or ``startup`` while it boots); anything else: not reachable."""
    if status == 200:
        return Readiness(True, True)
    if status == 503 and isinstance(body, dict) and "ready" in body:
        failing = [str(x) for x in body.get("failing") or [] if isinstance(x, str)]
        if "startup" in failing or not failing:
            return Readiness(False, False, booting="startup" in failing)
        return Readiness(True, False, tuple(failing))
    return Readiness(False, False)


def daily_usage(sessions_usage: dict[str, Any]) -> dict[date, list[DailyUsage]]:
    """Per UTC day, provider and model: tokens (split from each session's daily breakdown over the
    models it used that day, in proportion to their tokens) and cost (``aggregates.modelDaily``;
    ``None`` where OpenClaw had no price for the model)."""
    tokens: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    unpriced: set[tuple[str, str, str]] = set()
    for session in sessions_usage.get("sessions") or []:
        usage = session.get("usage") if isinstance(session, dict) else None
        if not isinstance(usage, dict):
            continue
        models_by_day: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
        for entry in usage.get("dailyModelUsage") or []:
            if isinstance(entry, dict) and entry.get("provider") and entry.get("model"):
                models_by_day[str(entry.get("date"))].append(
                    (str(entry["provider"]), str(entry["model"]), int(entry.get("tokens") or 0))
                )
        for day in usage.get("dailyBreakdown") or []:
            if not isinstance(day, dict):
                continue
            when = str(day.get("date"))
            models = models_by_day.get(when) or []
            if not models:
                continue
            for ref in (day.get("missingCostByModel") or {}).keys():
                provider, _, model = str(ref).partition("/")
                unpriced.add((when, provider, model))
            parts = [int(day.get(k) or 0) for k in ("input", "output", "cacheRead", "cacheWrite")]
            weights = [max(0, t) for _, _, t in models]
            total_weight = sum(weights) or len(models)
            for i, (provider, model, _) in enumerate(models):
                share = (weights[i] if sum(weights) else 1) / total_weight
                counts = tokens[(when, provider, model)]
                for j, value in enumerate(parts):
                    counts[j] += round(value * share)
    costs: dict[tuple[str, str, str], int] = {}
    aggregates = sessions_usage.get("aggregates")
    for entry in (aggregates.get("modelDaily") if isinstance(aggregates, dict) else None) or []:
        if isinstance(entry, dict) and entry.get("provider") and entry.get("model"):
            key = (str(entry.get("date")), str(entry["provider"]), str(entry["model"]))
            costs[key] = costs.get(key, 0) + usd_to_micro(entry.get("cost") or 0)
            tokens.setdefault(key, [0, 0, 0, 0])
    result: dict[date, list[DailyUsage]] = defaultdict(list)
    for (when, provider, model), counts in sorted(tokens.items()):
        try:
            day = date.fromisoformat(when)
        except ValueError:
            continue
        cost: int | None = costs.get((when, provider, model), 0)
        if cost == 0 and (when, provider, model) in unpriced:
            cost = None
        try:
            row = DailyUsage(provider[:32], model[:128], counts[0], counts[1], counts[2], counts[3], cost)
        except ValueError:
            continue
        result[day].append(row)
    return dict(result)


__all__ = [
    "CHANNELS_STATUS",
    "MODELS_STATUS",
    "REASON_VERDICTS",
    "SESSIONS_USAGE",
    "ChannelHealth",
    "Readiness",
    "UnusableKey",
    "channel_health",
    "daily_usage",
    "parse_json",
    "readiness",
    "unusable_keys",
]
