"""What the generators need to know about one tenant: :class:`TenantSpec` (pure input, no secrets).

It never carries a key or token, only which providers hold usable keys. Every field that flows into
the generated configs is validated tightly (ids, app name, region, image, known model refs), so
free text cannot reach ``openclaw.json`` or the machine config.
"""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from agents_config.inputs import name_or_given
from agents_config.models import MODELS
from agents_config.providers import PROVIDER_IDS

Strategy = Literal["aggressive", "balanced", "quality_first"]
ChannelKind = Literal["telegram", "discord", "slack", "whatsapp"]
DmPolicy = Literal["pairing", "allowlist", "open", "disabled"]

CHANNEL_KINDS: tuple[ChannelKind, ...] = ("telegram", "discord", "slack", "whatsapp")

# Sender ids per channel: Telegram numeric user ids, Discord snowflakes, Slack member ids, WhatsApp
# phone numbers in E.164 (a "+", a country code that never starts with 0, at most 15 digits in all).
SENDER_ID_PATTERNS: dict[str, re.Pattern[str]] = {
    "telegram": re.compile(r"^-?[0-9]{1,20}$"),
    "discord": re.compile(r"^[0-9]{5,25}$"),
    "slack": re.compile(r"^[UW][A-Z0-9]{2,20}$"),
    "whatsapp": re.compile(r"^\+[1-9][0-9]{6,14}$"),
}
_IMAGE = re.compile(
    r"^[a-z0-9][a-z0-9.-]*(?::[0-9]+)?(?:/[a-z0-9][a-z0-9._-]*)+"
    r"(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9._-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?$"
)


#: The operator's metering proxy: https, a DNS host, optional port and path; no credentials, query
#: or fragment (it is written into openclaw.json as a base URL).
_PROXY_URL = re.compile(
    r"^https://(?P<host>[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)+)"
    r"(?::[0-9]{1,5})?(?P<path>(?:/[A-Za-z0-9._~-]+)*)/?$"
)

#: An exact release tag: dotted numbers, optionally a "v" prefix and a variant suffix (-slim ...).
_VERSION_TAG = re.compile(r"^v?\d+(?:\.\d+)+(?:[-+][A-Za-z0-9._-]+)?$")


def pinned_image_problem(value: str) -> str | None:
    """Why ``value`` is not a pinned image reference (exact version tag or digest), or ``None``."""
    match = _IMAGE.match(value)
    if not match:
        return "not an image reference (registry/repository[:tag][@sha256:digest])"
    tag, digest = match.group("tag"), match.group("digest")
    if digest is None and (tag is None or not _VERSION_TAG.match(tag)):
        return (
            "image must be pinned: an exact version tag (e.g. 2026.9.6 or 2026.9.6-slim) or an "
            "@sha256 digest; moving tags such as latest, main or stable are refused"
        )
    return None


class ChannelSpec(BaseModel):
    """A chat channel the tenant wants connected (its token lives in a Fly app secret).

    WhatsApp has no token: the account is linked by scanning a QR code in the agent's Control UI,
    and its credentials stay in the agent's state directory on the volume."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ChannelKind
    allow_from: tuple[str, ...] = ()
    dm_policy: DmPolicy | None = None  # None: "allowlist" when allow_from is given, else "pairing"

    @model_validator(mode="after")
    def _consistent(self) -> ChannelSpec:
        pattern = SENDER_ID_PATTERNS[self.kind]
        for position, sender in enumerate(self.allow_from):
            if sender == "*":
                continue
            if not pattern.match(sender):
                raise ValueError(
                    f"allow_from[{position}]: not a {self.kind} sender id (expected {pattern.pattern})"
                )
        if len(set(self.allow_from)) != len(self.allow_from):
            raise ValueError("allow_from: lists a sender twice")
        policy = self.effective_dm_policy
        if "*" in self.allow_from and policy != "open":
            raise ValueError('allow_from: "*" is only allowed with dm_policy "open"')
        if policy == "allowlist" and not self.allow_from:
            raise ValueError('dm_policy: "allowlist" needs at least one id in allow_from')
        if policy == "open" and [s for s in self.allow_from if s != "*"]:
            raise ValueError('allow_from: dm_policy "open" accepts everyone; list no ids (or "*")')
        return self

    @property
    def effective_dm_policy(self) -> DmPolicy:
        if self.dm_policy is not None:
            return self.dm_policy
        return "allowlist" if self.allow_from else "pairing"


def _sorted_unique_providers(value: tuple[str, ...], field: str) -> tuple[str, ...]:
    for p in value:
        if p not in PROVIDER_IDS:
            # the offending value is not echoed: a pasted key must not reach logs through an error
            raise ValueError(f"unknown provider in {field}; known: {', '.join(PROVIDER_IDS)}")
    return tuple(sorted(set(value)))


class TenantSpec(BaseModel):
    """The tenant's desired state as far as the agent's configuration is concerned."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant_id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
    app_name: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,61}[a-z0-9]$")
    plan: str = Field(pattern=r"^[a-z][a-z0-9_-]{0,31}$")
    byok_providers: tuple[str, ...] = ()  # providers whose BYOK key is usable right now
    platform_keys: tuple[str, ...] = ()  # providers whose platform (operator) key this tenant may use
    channels: tuple[ChannelSpec, ...] = ()  # in the tenant's priority order
    chosen_model: str | None = None  # "provider/model"
    strategy: Strategy = "balanced"
    region: str = Field(pattern=r"^[a-z]{3}$")
    image: str
    desired_rev: int = Field(ge=0)
    # The operator's metering proxy for platform (operator-paid) keys; see agents_config.openclaw_config.
    platform_proxy_url: str | None = None

    @field_validator("platform_proxy_url")
    @classmethod
    def _proxy_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if not _PROXY_URL.match(value):
            # not echoed: a URL with embedded credentials must not reach logs through an error
            raise ValueError(
                "not an https URL of the metering proxy (https://host[:port][/path], lower-case "
                "host, no credentials, query or fragment)"
            )
        return value.rstrip("/")

    @field_validator("byok_providers")
    @classmethod
    def _byok(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique_providers(value, "byok_providers")

    @field_validator("platform_keys")
    @classmethod
    def _platform(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        return _sorted_unique_providers(value, "platform_keys")

    @field_validator("chosen_model")
    @classmethod
    def _model(cls, value: str | None) -> str | None:
        if value is not None and value not in MODELS:
            raise ValueError("unknown model; expected a 'provider/model' ref from agents_config.models")
        return value

    @field_validator("image")
    @classmethod
    def _pinned_image(cls, value: str) -> str:
        problem = pinned_image_problem(value)
        if problem is not None:
            raise ValueError(problem)
        return value

    @field_validator("channels")
    @classmethod
    def _one_per_kind(cls, value: tuple[ChannelSpec, ...]) -> tuple[ChannelSpec, ...]:
        kinds = [c.kind for c in value]
        for kind in CHANNEL_KINDS:
            if kinds.count(kind) > 1:
                raise ValueError(f"channel {name_or_given(kind)} listed twice (one account per kind)")
        return value


__all__ = [
    "CHANNEL_KINDS",
    "pinned_image_problem",
    "SENDER_ID_PATTERNS",
    "ChannelKind",
    "ChannelSpec",
    "DmPolicy",
    "Strategy",
    "TenantSpec",
]
