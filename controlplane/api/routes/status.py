"""Is my agent up, and why not: status, banners, announcements."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from controlplane.api.context import Actor, Ctx, ExternalId
from controlplane.api.errors import error_responses
from controlplane.api.schemas import (
    AnnouncementOut,
    AnnouncementsOut,
    BannerOut,
    BannersOut,
    DismissedOut,
    StatusOut,
)
from controlplane.dashboard.notices import active_banners, announcements, dismiss_announcement
from controlplane.dashboard.status import tenant_status
from controlplane.dashboard.tenants import find_tenant

router = APIRouter(prefix="/v1/tenants/{external_id}", tags=["status"])
_READ = error_responses(401, 404, 422, 503)


@router.get(
    "/status", response_model=StatusOut, responses=_READ, summary="Lifecycle, machine, drift, reconcile"
)
async def get_status(ctx: Ctx, external_id: ExternalId) -> StatusOut:
    status = await tenant_status(
        ctx.db, external_id, default_image=ctx.settings.openclaw_image, now=ctx.clock()
    )
    return StatusOut.model_validate(status)


@router.get("/banners", response_model=BannersOut, responses=_READ, summary="Active banners, a sentence each")
async def get_banners(ctx: Ctx, external_id: ExternalId) -> BannersOut:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        rows = await active_banners(session, tenant.id)
    return BannersOut(banners=[BannerOut.model_validate(b) for b in rows])


@router.get(
    "/announcements", response_model=AnnouncementsOut, responses=_READ, summary="Announcements not dismissed"
)
async def get_announcements(ctx: Ctx, external_id: ExternalId) -> AnnouncementsOut:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        rows = await announcements(session, tenant.id)
    return AnnouncementsOut(announcements=[AnnouncementOut.model_validate(a) for a in rows])


AnnouncementId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The announcement's id.")]


@router.post(
    "/announcements/{announcement_id}/dismiss",
    response_model=DismissedOut,
    responses=error_responses(401, 404, 422, 503),
    summary="Dismiss an announcement for this tenant",
)
async def dismiss(
    ctx: Ctx, external_id: ExternalId, announcement_id: AnnouncementId, actor: Actor
) -> DismissedOut:
    async with ctx.db.transaction() as session:
        tenant = await find_tenant(session, external_id)
        done = await dismiss_announcement(session, tenant.id, announcement_id, actor=actor, now=ctx.clock())
    return DismissedOut(dismissed=done)
