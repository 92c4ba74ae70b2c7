"""Feature gates: the ONE place where a plan turns into "may this tenant have X?".

The HTTP API, the OpenClaw config and the Fly machine config all ask :class:`FeatureGates`; nothing
compares plan ids. Gates come from the plan's data only.

``file_browser`` has no OpenClaw config key: the gateway's Control UI has a Files view, and whether
the tenant reaches it is decided by the operator's dashboard (whether it exposes or proxies the
Control UI for this plan), not by ``openclaw.json``. Nothing in this package enforces it.

Sleeping plans (``sleep_when_idle``: Fly autostop "stop", no machine kept running) only wake on
traffic through Fly's proxy. Telegram then runs as a webhook (an inbound HTTPS request wakes the
machine); Discord (gateway websocket) and Slack Socket Mode are outbound connections that never go
through the proxy, so :meth:`FeatureGates.supports_channel` refuses them on those plans. WhatsApp
(Baileys, a WhatsApp Web session) keeps an outbound socket open too, so it is always-on only.
"""

from __future__ import annotations

from dataclasses import dataclass

from agents_config.catalog import Plan

#: Channels whose inbound messages arrive over a connection the machine opens (never via Fly's proxy).
ALWAYS_ON_CHANNELS: tuple[str, ...] = ("discord", "slack", "whatsapp")


@dataclass(frozen=True, slots=True)
class FeatureGates:
    plan_id: str
    phone: bool
    cron: bool
    api_access: bool
    custom_skills: bool
    file_browser: bool
    max_channels: int | None  # None = unlimited
    sleep_when_idle: bool
    platform_key: bool  # AI runs on the operator's key (platform-key plan)
    platform_fallback: bool  # a BYOK plan that may fall back to a platform model

    @classmethod
    def for_plan(cls, plan: Plan) -> FeatureGates:
        return cls(
            plan_id=plan.id,
            phone=plan.caps.phone_minutes_per_month > 0,
            cron=plan.cron,
            api_access=plan.api_access,
            custom_skills=plan.custom_skills,
            file_browser=plan.file_browser,
            max_channels=plan.max_channels,
            sleep_when_idle=plan.sleep_when_idle,
            platform_key=plan.key_mode == "platform",
            platform_fallback=plan.key_mode == "byok" and plan.models.platform_fallback is not None,
        )

    def supports_channel(self, kind: str) -> bool:
        """Whether a channel of this kind can receive messages on the plan's machine."""
        return not (self.sleep_when_idle and kind in ALWAYS_ON_CHANNELS)

    def allows_channels(self, count: int) -> bool:
        return self.max_channels is None or count <= self.max_channels

    def channel_slots(self, wanted: int) -> int:
        """How many of ``wanted`` channels the plan lets the tenant connect."""
        return wanted if self.max_channels is None else min(wanted, self.max_channels)


__all__ = ["ALWAYS_ON_CHANNELS", "FeatureGates"]
