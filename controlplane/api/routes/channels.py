"""Chat channels (Telegram, Discord, Slack, WhatsApp) and web chat.

``PUT /channels/<kind>`` connects a channel or changes it (tokens may be left out to keep the stored
ones); the plan's channel limit and always-on rule answer 409 ``channel_limit`` with the limit and
the plan that allows more. WhatsApp takes no token: the answer says where and how to link it (a QR
code in the agent's Control UI). Web chat is the Control UI itself.
"""

from __future__ import annotations

from fastapi import APIRouter, Response

from agents_config.spec import ChannelKind
from controlplane.api.context import Actor, Ctx, ExternalId
from controlplane.api.errors import error_responses
from controlplane.api.schemas import (
    ChannelConnectOut,
    ChannelOut,
    ChannelsOut,
    DeletedOut,
    DiscordBody,
    SlackBody,
    TelegramBody,
    WebChatOut,
    WhatsAppBody,
)
from controlplane.dashboard.channels import ChannelRequest, channel_view, control_ui_url
from controlplane.dashboard.status import tenant_status
from controlplane.enums import LifecycleState

router = APIRouter(prefix="/v1/tenants/{external_id}", tags=["channels"])
_READ = error_responses(401, 404, 422, 503)
_WRITE = error_responses(401, 404, 409, 413, 422, 503)

WEB_CHAT_HOW = (
    "The web chat is the agent's Control UI. A browser that has not used it before is paired once "
    "(or asked for the agent's gateway token) before it can chat."
)


async def _connect(
    ctx: Ctx, external_id: str, request: ChannelRequest, actor: str, response: Response
) -> ChannelConnectOut:
    view, created = await ctx.channels.connect(external_id, request, actor=actor)
    response.status_code = 201 if created else 200
    return ChannelConnectOut(channel=ChannelOut.model_validate(view), created=created)


_CONNECTED = {**_WRITE, 201: {"model": ChannelConnectOut, "description": "Connected (a new channel)"}}


@router.get("/channels", response_model=ChannelsOut, responses=_READ, summary="Connected channels")
async def list_channels(ctx: Ctx, external_id: ExternalId) -> ChannelsOut:
    return ChannelsOut.model_validate(await ctx.channels.overview(external_id))


@router.get("/channels/{kind}", response_model=ChannelOut, responses=_READ, summary="One channel")
async def get_channel(ctx: Ctx, external_id: ExternalId, kind: ChannelKind) -> ChannelOut:
    return ChannelOut.model_validate(await channel_view(ctx.db, ctx.catalog, external_id, kind))


@router.put(
    "/channels/telegram",
    response_model=ChannelConnectOut,
    responses=_CONNECTED,
    summary="Connect or change Telegram",
)
async def connect_telegram(
    ctx: Ctx, external_id: ExternalId, body: TelegramBody, actor: Actor, response: Response
) -> ChannelConnectOut:
    return await _connect(ctx, external_id, body.request("telegram"), actor, response)


@router.put(
    "/channels/discord",
    response_model=ChannelConnectOut,
    responses=_CONNECTED,
    summary="Connect or change Discord",
)
async def connect_discord(
    ctx: Ctx, external_id: ExternalId, body: DiscordBody, actor: Actor, response: Response
) -> ChannelConnectOut:
    return await _connect(ctx, external_id, body.request("discord"), actor, response)


@router.put(
    "/channels/slack",
    response_model=ChannelConnectOut,
    responses=_CONNECTED,
    summary="Connect or change Slack (Socket Mode)",
)
async def connect_slack(
    ctx: Ctx, external_id: ExternalId, body: SlackBody, actor: Actor, response: Response
) -> ChannelConnectOut:
    return await _connect(ctx, external_id, body.request("slack"), actor, response)


@router.put(
    "/channels/whatsapp",
    response_model=ChannelConnectOut,
    responses=_CONNECTED,
    summary="Connect or change WhatsApp (no token: linked by a QR code in the Control UI)",
)
async def connect_whatsapp(
    ctx: Ctx, external_id: ExternalId, body: WhatsAppBody, actor: Actor, response: Response
) -> ChannelConnectOut:
    return await _connect(ctx, external_id, body.request("whatsapp"), actor, response)


@router.delete(
    "/channels/{kind}",
    response_model=DeletedOut,
    responses=_WRITE,
    summary="Disconnect a channel (its tokens are deleted)",
)
async def disconnect_channel(
    ctx: Ctx, external_id: ExternalId, kind: ChannelKind, actor: Actor
) -> DeletedOut:
    return DeletedOut(deleted=await ctx.channels.disconnect(external_id, kind, actor=actor))


@router.get(
    "/webchat", response_model=WebChatOut, responses=_READ, summary="The agent's web chat (Control UI)"
)
async def web_chat(ctx: Ctx, external_id: ExternalId) -> WebChatOut:
    status = await tenant_status(
        ctx.db, external_id, default_image=ctx.settings.openclaw_image, now=ctx.clock()
    )
    app_name = status.machine.app_name
    up = status.lifecycle_state in (LifecycleState.running, LifecycleState.sleeping)
    return WebChatOut(
        url=control_ui_url(app_name),
        available=bool(app_name) and up,
        how=WEB_CHAT_HOW,
    )
