"""Request and response bodies of the dashboard API (the published OpenAPI contract).

Request bodies refuse unknown fields; secrets (provider keys, bot tokens) are ``SecretStr`` so they
never show in a repr, and no response model has a field that could hold one.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from agents_config.spec import ChannelKind, DmPolicy
from controlplane.dashboard.caps import MAX_AMOUNT, REPORT_ID_PATTERN
from controlplane.dashboard.channels import MAX_ALLOW_FROM, ChannelRequest
from controlplane.dashboard.model_choice import KeyState
from controlplane.dashboard.status import ReconcileOutcome
from controlplane.enums import (
    BannerKind,
    BillingStatus,
    DesiredPower,
    KeyStatus,
    KeyVerdict,
    LifecycleState,
    RoutingStrategy,
    UsageService,
)

#: The provider ids of ``agents_config.providers`` (a test checks they agree).
ProviderId = Literal[
    "anthropic",
    "openai",
    "google",
    "groq",
    "openrouter",
    "mistral",
    "deepseek",
    "moonshot",
    "minimax",
    "cohere",
    "xai",
]

MAX_KEY_CHARS = 1024
MAX_TOKEN_CHARS = 512


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Response(BaseModel):
    """Built from the services' views (dataclasses) by attribute: ``Out.model_validate(view)``."""

    model_config = ConfigDict(from_attributes=True)


# --- keys ---------------------------------------------------------------------------------------
class KeyBody(_Request):
    key: SecretStr = Field(
        min_length=1, max_length=MAX_KEY_CHARS, description="The provider API key (only ever in a body)."
    )


class KeyStatusOut(_Response):
    provider: str
    display_name: str
    last4: str
    fingerprint: str
    verdict: KeyVerdict
    status: KeyStatus
    message: str | None
    region: str | None
    flags: list[str]
    last_checked_at: datetime | None
    next_check_at: datetime | None
    consecutive_failures: int


class KeysOut(_Response):
    keys: list[KeyStatusOut]


class VerdictOut(_Response):
    verdict: KeyVerdict
    message: str = Field(description="A sentence for a person.")
    retry_after: float | None
    http_status: int | None
    detail: str | None = Field(description="The provider's own words, redacted and shortened.")
    region: str | None
    flags: list[str]


WouldStore = Literal["usable", "warning", "unverified", "refused"]


class KeySaveOut(_Response):
    key: KeyStatusOut
    verdict: VerdictOut
    outcome: KeyStatus = Field(
        description="usable; warning (stored, e.g. no credit); unverified (re-checked later)"
    )
    replaced: bool = Field(description="A different key for this provider was replaced.")
    unchanged: bool = Field(description="The same key was saved again.")
    format_warnings: list[str]


class KeyTestOut(_Response):
    verdict: VerdictOut
    would_store: WouldStore
    format_warnings: list[str]
    last4: str


class KeyRecheckOut(_Response):
    key: KeyStatusOut
    verdict: VerdictOut
    recorded: bool = Field(description="False if the key was replaced or deleted during the check.")


class DeletedOut(_Response):
    deleted: bool = Field(description="False if there was nothing to delete.")


# --- channels -----------------------------------------------------------------------------------
class _ChannelBody(_Request):
    dm_policy: DmPolicy | None = Field(
        default=None,
        description="Direct messages: pairing (default without senders), allowlist (default with "
        'senders), open (everyone; allow_from empty or ["*"]) or disabled.',
    )

    def request(self, kind: ChannelKind) -> ChannelRequest:
        tokens = {
            name: value
            for name in ("bot_token", "app_token")
            if isinstance(value := getattr(self, name, None), SecretStr)
        }
        return ChannelRequest(kind, tuple(getattr(self, "allow_from", ())), self.dm_policy, tokens)


class _BotChannelBody(_ChannelBody):
    bot_token: SecretStr | None = Field(
        default=None,
        max_length=MAX_TOKEN_CHARS,
        description="The bot's token; required to connect, optional when changing (kept if omitted).",
    )


class TelegramBody(_BotChannelBody):
    allow_from: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOW_FROM,
        description="Who may message the agent directly: Telegram user ids.",
        examples=[["123456789"]],
    )


class DiscordBody(_BotChannelBody):
    allow_from: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOW_FROM,
        description="Who may message the agent directly: Discord user ids (snowflakes).",
        examples=[["112233445566778899"]],
    )


class SlackBody(_BotChannelBody):
    app_token: SecretStr | None = Field(
        default=None,
        max_length=MAX_TOKEN_CHARS,
        description="xapp- token (Socket Mode); required to connect.",
    )
    allow_from: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOW_FROM,
        description="Who may message the agent directly: Slack member ids.",
        examples=[["U012ABCDEF"]],
    )


class WhatsAppBody(_ChannelBody):
    allow_from: list[str] = Field(
        default_factory=list,
        max_length=MAX_ALLOW_FROM,
        description="Who may message the agent directly: phone numbers in E.164 (+ and up to 15 digits).",
        examples=[["+15555550123"]],
    )


class WhatsAppLinkOut(_Response):
    method: Literal["qr_code"]
    url: str | None = Field(description="The agent's Control UI, where the QR code is shown.")
    steps: str


class ChannelOut(_Response):
    kind: ChannelKind
    dm_policy: DmPolicy
    allow_from: list[str]
    token_last4: dict[str, str]
    active: bool = Field(description="In the agent's configuration on the current plan.")
    note: str | None = Field(description="Why the channel is not active, when it is not.")
    state: str = Field(description="What the agent last reported (linked, unlinked ...), or unknown.")
    state_detail: str | None
    state_at: datetime | None
    link: WhatsAppLinkOut | None = Field(description="WhatsApp only: where and how to link it.")
    connected_at: datetime
    updated_at: datetime


class ChannelConnectOut(_Response):
    channel: ChannelOut
    created: bool


class ChannelsOut(_Response):
    plan: str
    max_channels: int | None = Field(description="None = unlimited.")
    channels: list[ChannelOut]
    web_chat_url: str | None


class WebChatOut(_Response):
    url: str | None = Field(description="The agent's Control UI (its web chat).")
    available: bool = Field(description="The agent is provisioned and should be reachable.")
    how: str


# --- model choice -------------------------------------------------------------------------------
class ModelBody(_Request):
    model: str | None = Field(
        default=None, max_length=256, description="'<provider>/<model>', or null for the plan's default."
    )
    strategy: RoutingStrategy = RoutingStrategy.balanced


class ModelOptionOut(_Response):
    ref: str
    provider: str
    name: str
    quality: int
    cost_rank: int
    key: KeyState


class RoutingOut(_Response):
    primary: str
    fallbacks: list[str]
    notes: list[str]


class ModelOut(_Response):
    model: str | None
    strategy: RoutingStrategy
    plan: str
    plan_default: str | None
    options: list[ModelOptionOut]
    routing: RoutingOut | None = Field(description="Preview of the agent's model chain.")
    problem: str | None = Field(description="Why no model can be routed, when none can.")


class ModelSetOut(ModelOut):
    changed: bool


# --- status, banners, announcements -------------------------------------------------------------
class MachineOut(_Response):
    app_name: str | None
    machine_id: str | None
    state: str | None
    observed_at: datetime | None
    image: str | None


class ReconcileOut(_Response):
    due_at: datetime | None
    leased: bool
    attempts: int
    parked_reason: str | None
    last_error: str | None
    last_outcome: ReconcileOutcome | None
    last_run_at: datetime | None


class StatusOut(_Response):
    external_id: str
    plan: str
    lifecycle_state: LifecycleState
    desired_power: DesiredPower
    billing_status: BillingStatus
    region: str
    image: str
    desired_rev: int
    observed_rev: int
    drift: bool
    config_hash: str | None
    parked_reason: str | None
    machine: MachineOut
    reconcile: ReconcileOut


class BannerOut(_Response):
    kind: BannerKind
    subject: str | None
    message: str
    raised_at: datetime | None


class BannersOut(_Response):
    banners: list[BannerOut]


class AnnouncementOut(_Response):
    id: str
    kind: str
    title: str
    body: str
    created_at: datetime
    broadcast: bool


class AnnouncementsOut(_Response):
    announcements: list[AnnouncementOut]


class DismissedOut(_Response):
    dismissed: bool = Field(description="False if it was already dismissed.")


# --- usage --------------------------------------------------------------------------------------
class UsageRowOut(_Response):
    day: date
    provider: str
    model: str
    input_tokens: int
    output_tokens: int
    cache_read_tokens: int
    cache_write_tokens: int
    total_tokens: int
    cost_usd: str | None = Field(description="Decimal string in US dollars; null when unknown.")


class UsageTotalOut(_Response):
    provider: str
    model: str
    total_tokens: int
    cost_usd: str | None


class UsageOut(_Response):
    since: date
    until: date
    days: list[UsageRowOut]
    totals: list[UsageTotalOut] = Field(description="Per provider and model over the whole range.")


# --- caps ---------------------------------------------------------------------------------------
class CapOut(_Response):
    service: UsageService
    included: bool = Field(description="False: the plan does not include this service at all.")
    allowed: bool
    used: int | None
    limit: int | None
    remaining: int | None
    period: str = Field(description="The UTC month counted, YYYY-MM.")
    resets_at: datetime
    reason: str | None


class CapsOut(_Response):
    period: str
    caps: list[CapOut]


class CapReportBody(_Request):
    report_id: str = Field(
        pattern=REPORT_ID_PATTERN, description="The proxy's id of this usage; retries reuse it."
    )
    amount: int = Field(ge=1, le=MAX_AMOUNT)
    occurred_at: datetime | None = Field(
        default=None, description="When the usage happened (UTC month it counts in); default now."
    )


class CapReportOut(_Response):
    counted: bool = Field(description="False: this report id was counted before (a retry).")
    cap: CapOut


# --- open routes --------------------------------------------------------------------------------
class HealthOut(_Response):
    status: Literal["ok"]


class ReadyOut(_Response):
    status: Literal["ready"]
    database: Literal["ok"]
