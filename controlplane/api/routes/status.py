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
    MachineOut,
    ReconcileOut,
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
    s = await tenant_status(ctx.db, external_id, default_image=ctx.settings.openclaw_image, now=ctx.clock())
    m, r = s.machine, s.reconcile
    return StatusOut(
        external_id=s.external_id,
        plan=s.plan,
        lifecycle_state=s.lifecycle_state,
        desired_power=s.desired_power,
        billing_status=s.billing_status,
        region=s.region,
        image=s.image,
        desired_rev=s.desired_rev,
        observed_rev=s.observed_rev,
        drift=s.drift,
        config_hash=s.config_hash,
        parked_reason=s.parked_reason,
        machine=MachineOut(
            app_name=m.app_name,
            machine_id=m.machine_id,
            state=m.state,
            observed_at=m.observed_at,
            image=m.image,
        ),
        reconcile=ReconcileOut(
            due_at=r.due_at,
            leased=r.leased,
            attempts=r.attempts,
            parked_reason=r.parked_reason,
            last_error=r.last_error,
            last_outcome=r.last_outcome,
            last_run_at=r.last_run_at,
        ),
    )


@router.get("/banners", response_model=BannersOut, responses=_READ, summary="Active banners, a sentence each")
async def get_banners(ctx: Ctx, external_id: ExternalId) -> BannersOut:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        rows = await active_banners(session, tenant.id)
    return BannersOut(
        banners=[
            BannerOut(kind=b.kind, subject=b.subject, message=b.message, raised_at=b.raised_at) for b in rows
        ]
    )


@router.get(
    "/announcements", response_model=AnnouncementsOut, responses=_READ, summary="Announcements not dismissed"
)
async def get_announcements(ctx: Ctx, external_id: ExternalId) -> AnnouncementsOut:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        rows = await announcements(session, tenant.id)
    return AnnouncementsOut(
        announcements=[
            AnnouncementOut(
                id=a.id,
                kind=a.kind,
                title=a.title,
                body=a.body,
                created_at=a.created_at,
                broadcast=a.broadcast,
            )
            for a in rows
        ]
    )


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
