"""Chat channels a tenant connects: Telegram, Discord, Slack and WhatsApp, within the plan's limit.

Rules (the plan's :class:`~agents_config.gates.FeatureGates` decide):

* A new channel is refused when the plan's channel limit is reached, naming the limit and the
  cheapest plan that would allow one more; a channel that needs an always-on machine (Discord, Slack
  socket mode, WhatsApp) is refused on plans that sleep when idle, naming a plan that is always on.
  The count is taken with the tenant's row locked (``FOR UPDATE`` on PostgreSQL; SQLite serialises
  writers with ``BEGIN IMMEDIATE``), so two concurrent connects cannot both pass.
* Sender allowlists and the DM policy are validated per channel by
  :class:`agents_config.spec.ChannelSpec` (the generator's own rules); operator-paid plans refuse
  open DMs (anyone could spend the operator's AI).
* Bot tokens are checked for their shape, then stored in the vault (``channel:<kind>:<field>``);
  only their last four characters are kept for display. WhatsApp has no token: the user links it by
  scanning a QR code in the agent's Control UI (:func:`whatsapp_link`).
* Connecting, changing and disconnecting are desired-state changes (rev bump + audit + reconcile
  mark, one transaction).

The agent's own view of a channel (linked / unlinked ...) is written by the health poller through
:func:`record_channel_state`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from pydantic import SecretStr, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import Plan, PlanCatalog
from agents_config.gates import FeatureGates
from agents_config.openclaw_config import NOT_ON_SLEEPING_PLANS, plan_channels
from agents_config.spec import CHANNEL_KINDS, ChannelKind, ChannelSpec, DmPolicy
from controlplane.dashboard.tenants import find_tenant, plan_of
from controlplane.db.models import Channel, FlyResources, Secret, utcnow
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed
from controlplane.errors import BadInput, NotFound, Refused
from controlplane.redaction import registered_secret
from controlplane.secrets_store import channel_env_secret_name, put_secret
from controlplane.vault import Vault

log = structlog.get_logger(__name__)

MAX_ALLOW_FROM = 100
_STATE = re.compile(r"^[a-z][a-z_]{0,31}$")


@dataclass(frozen=True, slots=True)
class TokenField:
    """One credential of a channel: the request field, the vault secret, the agent's variable."""

    name: str  # request field: bot_token, app_token
    secret: str  # vault secret name: channel:<kind>:<field>
    env_var: str  # what the agent reads (agents_config.openclaw_config.CHANNEL_TOKEN_ENV)
    pattern: re.Pattern[str]
    shape: str  # what a valid one looks like, for a person (never the value)


def _field(kind: str, name: str, env_var: str, pattern: str, shape: str) -> TokenField:
    # the vault name a worker reads for this variable (controlplane.secrets_store)
    return TokenField(name, channel_env_secret_name(kind, env_var), env_var, re.compile(pattern), shape)


#: Credentials per channel kind: the request field, the vault secret and the agent's variable.
TOKEN_FIELDS: dict[str, tuple[TokenField, ...]] = {
    "telegram": (
        _field(
            "telegram",
            "bot_token",
            "TELEGRAM_BOT_TOKEN",
            r"^[0-9]{6,12}:[A-Za-z0-9_-]{30,64}$",
            "the token @BotFather gave: digits, a colon, then about 35 letters, digits, - or _",
        ),
    ),
    "discord": (
        _field(
            "discord",
            "bot_token",
            "DISCORD_BOT_TOKEN",
            r"^[A-Za-z0-9_-]{18,40}\.[A-Za-z0-9_-]{4,12}\.[A-Za-z0-9_-]{20,80}$",
            "the bot token from the Discord developer portal: three dot-separated parts",
        ),
    ),
    "slack": (
        _field(
            "slack",
            "bot_token",
            "SLACK_BOT_TOKEN",
            r"^xoxb-[A-Za-z0-9-]{20,250}$",
            "the bot token of your Slack app, starting with xoxb-",
        ),
        _field(
            "slack",
            "app_token",
            "SLACK_APP_TOKEN",
            r"^xapp-[A-Za-z0-9-]{20,250}$",
            "the app-level token with connections:write, starting with xapp-",
        ),
    ),
    "whatsapp": (),
}

#: The vault secret holding each channel variable of the agent (for the worker's secret push).
CHANNEL_SECRET_BY_ENV: dict[str, str] = {
    f.env_var: f.secret for fields in TOKEN_FIELDS.values() for f in fields
}

WHATSAPP_LINK_STEPS = (
    "Open your agent's Control UI, go to Channels, choose WhatsApp and press Link: a QR code appears. "
    "On your phone open WhatsApp, then Settings, Linked devices, Link a device, and scan the code. "
    "The link lasts until you log the device out on your phone; link again if the channel shows "
    "as unlinked."
)


def control_ui_url(app_name: str | None) -> str | None:
    """The agent's Control UI (= its web chat): ``https://<app>.fly.dev/``; ``None`` before the
    tenant has a Fly app."""
    return f"https://{app_name}.fly.dev/" if app_name else None


@dataclass(frozen=True, slots=True)
class WhatsAppLink:
    """Where and how the user links WhatsApp (no token: a QR code in the agent's own Control UI)."""

    method: str
    url: str | None
    steps: str


def whatsapp_link(app_name: str | None) -> WhatsAppLink:
    url = control_ui_url(app_name)
    steps = WHATSAPP_LINK_STEPS if url else f"Once your agent is running: {WHATSAPP_LINK_STEPS}"
    return WhatsAppLink("qr_code", url, steps)


@dataclass(frozen=True, slots=True)
class ChannelRequest:
    """What the dashboard asks for: a channel with its senders, DM policy and tokens.

    ``tokens`` maps a :class:`TokenField` name to its value; on a channel already connected an
    omitted token keeps the stored one."""

    kind: str
    allow_from: tuple[str, ...] = ()
    dm_policy: str | None = None
    tokens: Mapping[str, SecretStr] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class ChannelView:
    kind: ChannelKind
    dm_policy: DmPolicy
    allow_from: tuple[str, ...]
    token_last4: Mapping[str, str]
    active: bool  # in the agent's configuration on the tenant's current plan
    note: str | None  # why not, when it is not
    state: str  # what the agent last said: linked, unlinked ... or "unknown"
    state_detail: str | None
    state_at: datetime | None
    link: WhatsAppLink | None
    connected_at: datetime
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ChannelsOverview:
    plan: str
    max_channels: int | None
    channels: tuple[ChannelView, ...]
    web_chat_url: str | None


class ChannelLimitReached(Refused):
    """The plan's channel limit (or its sleeping machine) does not allow this channel."""

    code = "channel_limit"

    def __init__(self, subject: str, reason: str, details: dict[str, Any]) -> None:
        super().__init__(subject, reason)
        self.details = details


def _plan_name(plan: Plan) -> str:
    return f"the {plan.display_name} plan"


def _channels_phrase(limit: int | None) -> str:
    if limit is None:
        return "unlimited channels"
    return f"{limit} channel" + ("" if limit == 1 else "s")


def plan_allowing(catalog: PlanCatalog, current: Plan, kind: str, count: int) -> Plan | None:
    """The cheapest plan (same key mode first) on which ``count`` channels including ``kind`` work."""
    fits = [
        p
        for p in catalog.plans.values()
        if p.id != current.id
        and FeatureGates.for_plan(p).supports_channel(kind)
        and FeatureGates.for_plan(p).allows_channels(count)
    ]
    fits.sort(key=lambda p: (p.key_mode != current.key_mode, p.monthly_price_cents, p.id))
    return fits[0] if fits else None


def _spec_of(request: ChannelRequest) -> ChannelSpec:
    if len(request.allow_from) > MAX_ALLOW_FROM:
        raise BadInput("allow_from", f"at most {MAX_ALLOW_FROM} senders")
    try:
        return ChannelSpec.model_validate(
            {"kind": request.kind, "allow_from": request.allow_from, "dm_policy": request.dm_policy}
        )
    except ValidationError as exc:
        first = exc.errors(include_input=False, include_url=False)[0]
        message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
        subject, sep, reason = message.partition(": ")
        if sep and re.match(r"^[a-z_]+(\[\d+\])?$", subject):
            raise BadInput(subject, reason) from None
        loc = ".".join(str(part) for part in first.get("loc", ())) or "channel"
        raise BadInput(loc, message) from None


def _check_tokens(request: ChannelRequest) -> None:
    known = {f.name: f for f in TOKEN_FIELDS[request.kind]}
    for name, value in request.tokens.items():
        spec = known.get(name)
        if spec is None:
            raise BadInput(name, f"{request.kind} takes no {name}")
        if not spec.pattern.match(value.get_secret_value()):
            raise BadInput(name, f"not a {request.kind} {name.replace('_', ' ')}: expected {spec.shape}")


class ChannelService:
    """Connect, change, disconnect and list a tenant's chat channels."""

    def __init__(self, db: Database, vault: Vault, catalog: PlanCatalog) -> None:
        self._db = db
        self._vault = vault
        self._catalog = catalog

    async def overview(self, external_id: str) -> ChannelsOverview:
        async with self._db.read() as session:
            tenant = await find_tenant(session, external_id)
            plan = plan_of(self._catalog, tenant.plan)
            app_name = await session.scalar(
                select(FlyResources.app_name).where(FlyResources.tenant_id == tenant.id)
            )
            rows = await _channels(session, tenant.id)
            return ChannelsOverview(
                plan=plan.id,
                max_channels=plan.max_channels,
                channels=_views(rows, FeatureGates.for_plan(plan), app_name),
                web_chat_url=control_ui_url(app_name),
            )

    async def connect(
        self, external_id: str, request: ChannelRequest, *, actor: str
    ) -> tuple[ChannelView, bool]:
        """Connect ``request.kind`` (or change it if connected); ``(view, created)``."""
        if request.kind not in CHANNEL_KINDS:
            raise BadInput("kind", f"must be one of {', '.join(CHANNEL_KINDS)}")
        spec = _spec_of(request)
        _check_tokens(request)
        with ExitStack() as redacted:  # the tokens are redacted from every log line meanwhile
            for value in request.tokens.values():
                redacted.enter_context(registered_secret(value.get_secret_value()))
            return await self._connect(external_id, request, spec, actor=actor)

    async def _connect(
        self, external_id: str, request: ChannelRequest, spec: ChannelSpec, *, actor: str
    ) -> tuple[ChannelView, bool]:
        async with self._db.transaction() as session:
            tenant = await find_tenant(session, external_id, lock=True)
            plan = plan_of(self._catalog, tenant.plan)
            gates = FeatureGates.for_plan(plan)
            if gates.platform_key and spec.effective_dm_policy == "open":
                raise BadInput(
                    "dm_policy",
                    f'"open" is not allowed on {_plan_name(plan)}: the operator pays for the AI, so '
                    'anyone could spend it; use "pairing" or "allowlist"',
                )
            rows = await _channels(session, tenant.id)
            row = next((r for r in rows if r.kind == spec.kind), None)
            if row is None:
                self._check_room(plan, gates, spec.kind, sum(1 for r in rows if r.enabled))
                missing = [f.name for f in TOKEN_FIELDS[spec.kind] if f.name not in request.tokens]
                if missing:
                    raise BadInput(missing[0], f"required to connect {spec.kind}")
            before = _audit_view(row) if row is not None else None
            changed = sorted(request.tokens)
            last4 = dict(row.settings.get("token_last4", {})) if row is not None else {}
            secret_id = row.secret_id if row is not None else None
            for token_field in TOKEN_FIELDS[spec.kind]:
                value = request.tokens.get(token_field.name)
                if value is None:
                    continue
                plaintext = value.get_secret_value()
                secret = await put_secret(
                    session, self._vault, tenant_id=tenant.id, name=token_field.secret, plaintext=plaintext
                )
                last4[token_field.name] = self._vault.last4(plaintext)
                if token_field is TOKEN_FIELDS[spec.kind][0]:
                    secret_id = secret.id
            settings: dict[str, Any] = {
                "allow_from": list(spec.allow_from),
                "dm_policy": spec.effective_dm_policy,
                "token_last4": last4,
            }
            now = utcnow()
            created = row is None
            if row is None:
                row = Channel(tenant_id=tenant.id, kind=spec.kind, created_at=now)
                session.add(row)
                rows.append(row)
            row.enabled = True
            row.settings = settings
            row.secret_id = secret_id
            row.updated_at = now
            await session.flush()
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="channel.connected" if created else "channel.changed",
                reason=f"{spec.kind} channel {'connected' if created else 'changed'}",
                before=before,
                after={**_audit_view(row), "replaced": changed},
            )
            app_name = await session.scalar(
                select(FlyResources.app_name).where(FlyResources.tenant_id == tenant.id)
            )
            view = next(v for v in _views(rows, gates, app_name) if v.kind == spec.kind)
        log.info("channel.connected", tenant_id=tenant.id, kind=spec.kind, created=created, actor=actor)
        return view, created

    def _check_room(self, plan: Plan, gates: FeatureGates, kind: str, connected: int) -> None:
        if not gates.supports_channel(kind):
            better = plan_allowing(self._catalog, plan, kind, connected + 1)
            reason = f"{kind} {NOT_ON_SLEEPING_PLANS}; {_plan_name(plan)} sleeps when idle"
            if better is not None:
                reason += f"; {_plan_name(better)} is always on"
            raise ChannelLimitReached(
                "kind",
                reason,
                {"plan": plan.id, "limit": plan.max_channels, "upgrade_plan": better.id if better else None},
            )
        if not gates.allows_channels(connected + 1):
            better = plan_allowing(self._catalog, plan, kind, connected + 1)
            reason = (
                f"{_plan_name(plan)} allows {_channels_phrase(plan.max_channels)} and "
                f"{connected} {'is' if connected == 1 else 'are'} connected"
            )
            reason += (
                f"; {_plan_name(better)} allows {_channels_phrase(better.max_channels)}"
                if better is not None
                else "; no plan allows more"
            )
            raise ChannelLimitReached(
                "channels",
                reason,
                {"plan": plan.id, "limit": plan.max_channels, "upgrade_plan": better.id if better else None},
            )

    async def disconnect(self, external_id: str, kind: str, *, actor: str) -> bool:
        """Remove the channel and its credentials; the agent loses it at the next reconcile.
        ``False`` (no change) if it was not connected."""
        if kind not in CHANNEL_KINDS:
            raise BadInput("kind", f"must be one of {', '.join(CHANNEL_KINDS)}")
        async with self._db.transaction() as session:
            tenant = await find_tenant(session, external_id, lock=True)
            row = await session.scalar(
                select(Channel).where(Channel.tenant_id == tenant.id, Channel.kind == kind)
            )
            if row is None:
                return False
            before = _audit_view(row)
            await session.delete(row)
            await session.flush()
            # every credential of the channel, including secrets a worker generated for it
            await session.execute(
                delete(Secret).where(
                    Secret.tenant_id == tenant.id, Secret.name.startswith(f"channel:{kind}:", autoescape=True)
                )
            )
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="channel.disconnected",
                reason=f"{kind} channel disconnected",
                before=before,
                after={"kind": kind, "connected": False},
            )
        log.info("channel.disconnected", tenant_id=tenant.id, kind=kind, actor=actor)
        return True


async def record_channel_state(
    session: AsyncSession,
    tenant_id: str,
    kind: str,
    state: str,
    *,
    detail: str | None = None,
    at: datetime | None = None,
) -> bool:
    """Store what the agent reported about a channel (health poller). ``False`` if the tenant has
    no such channel. ``state`` is a short word (``linked``, ``unlinked``, ``error`` ...)."""
    if not _STATE.match(state):
        raise ValueError("state must be a short lower-case word (a-z and _)")
    row = await session.scalar(select(Channel).where(Channel.tenant_id == tenant_id, Channel.kind == kind))
    if row is None:
        return False
    row.observed_state = state
    row.observed_detail = detail[:500] if detail else None
    row.observed_at = at or utcnow()
    return True


async def channel_view(db: Database, catalog: PlanCatalog, external_id: str, kind: str) -> ChannelView:
    """One connected channel, or :class:`NotFound`."""
    async with db.read() as session:
        tenant = await find_tenant(session, external_id)
        gates = FeatureGates.for_plan(plan_of(catalog, tenant.plan))
        app_name = await session.scalar(
            select(FlyResources.app_name).where(FlyResources.tenant_id == tenant.id)
        )
        for view in _views(await _channels(session, tenant.id), gates, app_name):
            if view.kind == kind:
                return view
    raise NotFound("kind", f"no {kind} channel is connected")


async def _channels(session: AsyncSession, tenant_id: str) -> list[Channel]:
    rows = await session.scalars(
        select(Channel).where(Channel.tenant_id == tenant_id).order_by(Channel.created_at, Channel.kind)
    )
    return list(rows)


def _views(rows: Sequence[Channel], gates: FeatureGates, app_name: str | None) -> tuple[ChannelView, ...]:
    specs = {r.kind: _stored_spec(r) for r in rows}
    active, _dropped, notes = plan_channels(tuple(specs[r.kind] for r in rows if r.enabled), gates)
    active_kinds = {c.kind for c in active}
    why = {note.split(": ", 1)[0]: note.split(": ", 1)[1] for note in notes}
    views = []
    for row in rows:
        spec = specs[row.kind]
        views.append(
            ChannelView(
                kind=spec.kind,
                dm_policy=spec.effective_dm_policy,
                allow_from=spec.allow_from,
                token_last4=dict(row.settings.get("token_last4", {})),
                active=row.kind in active_kinds,
                note=why.get(row.kind) if row.enabled else "disabled",
                state=row.observed_state or "unknown",
                state_detail=row.observed_detail,
                state_at=row.observed_at,
                link=whatsapp_link(app_name) if row.kind == "whatsapp" else None,
                connected_at=row.created_at,
                updated_at=row.updated_at,
            )
        )
    return tuple(views)


def _stored_spec(row: Channel) -> ChannelSpec:
    return ChannelSpec.model_validate(
        {
            "kind": row.kind,
            "allow_from": tuple(row.settings.get("allow_from", ())),
            "dm_policy": row.settings.get("dm_policy"),
        }
    )


def _audit_view(row: Channel) -> dict[str, Any]:
    # sender ids are personal data (phone numbers): the audit row counts them
    return {
        "kind": row.kind,
        "dm_policy": row.settings.get("dm_policy"),
        "senders": len(row.settings.get("allow_from", ())),
    }


__all__ = [
    "TOKEN_FIELDS",
    "ChannelLimitReached",
    "ChannelRequest",
    "ChannelService",
    "ChannelView",
    "ChannelsOverview",
    "TokenField",
    "WhatsAppLink",
    "channel_view",
    "control_ui_url",
    "plan_allowing",
    "record_channel_state",
    "whatsapp_link",
]
