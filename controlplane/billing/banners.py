"""Billing's dashboard banners: ``payment_failed``, ``grace_period_ending`` and ``key_missing``.

Every banner write of billing goes through :func:`set_banner` (one row per tenant and kind, reused;
an audit row for each raise and each clear), so it can be redirected to a generic banner module
later without touching the callers.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane import audit
from controlplane.billing import entitlement
from controlplane.billing._sql import insert_for, table_of
from controlplane.db.models import Banner, Tenant, new_id
from controlplane.enums import BannerKind

MESSAGES = {
    BannerKind.payment_failed: "Your last payment failed. Update your payment method to keep your agent running.",
    BannerKind.key_missing: "Your agent is stopped: add your own AI provider key to start it again.",
}
BILLING_GRACE_ENDING = "Your agent stops soon because of the failed payment. Update your payment method."
KEY_GRACE_ENDING = (
    "Your free period on our AI key ends soon. Add your own AI provider key to keep your agent running."
)


async def set_banner(
    session: AsyncSession,
    tenant_id: str,
    kind: BannerKind,
    *,
    active: bool,
    now: datetime,
    actor: str,
    reason: str,
    message: str | None = None,
) -> bool:
    """Raise (``active``) or clear the tenant's ``kind`` banner. ``True`` if it changed."""
    row = await _row(session, tenant_id, kind)
    if row is None:
        if not active:
            return False
        # Two processes may raise the same banner at once: the unique (tenant, kind) row decides.
        insert = insert_for(session, table_of(Banner)).values(
            id=new_id(),
            tenant_id=tenant_id,
            kind=kind.value,
            message="",
            consecutive_bad=0,
            active=False,
            updated_at=now,
        )
        await session.execute(insert.on_conflict_do_nothing())
        row = await _row(session, tenant_id, kind)
        assert row is not None
    text = message or MESSAGES.get(kind, "")
    if active == row.active:
        if active and row.message != text:
            row.message = text
            row.updated_at = now
        return False
    row.active = active
    row.updated_at = now
    if active:
        row.message = text
        row.raised_at = now
        row.cleared_at = None
    else:
        row.cleared_at = now
    audit.record(
        session,
        actor=actor,
        action="banner.raised" if active else "banner.cleared",
        tenant_id=tenant_id,
        reason=reason,
        before={"banner": kind.value, "active": not active},
        after={"banner": kind.value, "active": active},
    )
    return True


async def sync_billing_banners(
    session: AsyncSession, tenant: Tenant, now: datetime, *, actor: str, reason: str
) -> None:
    """``payment_failed`` and ``grace_period_ending`` as the tenant's billing fields say now."""
    ending = entitlement.grace_ending(tenant, now)
    key_ending = tenant.key_grace_until is not None and tenant.billing_status not in entitlement.IN_GRACE
    wanted = {
        BannerKind.payment_failed: (entitlement.payment_failed(tenant), None),
        BannerKind.grace_period_ending: (ending, KEY_GRACE_ENDING if key_ending else BILLING_GRACE_ENDING),
    }
    rows = await session.execute(
        select(Banner.kind, Banner.active).where(Banner.tenant_id == tenant.id, Banner.kind.in_(list(wanted)))
    )
    shown = {kind: active for kind, active in rows}
    for kind, (active, message) in wanted.items():
        if active or shown.get(kind, False):  # (one read when nothing is up and nothing should be)
            await set_banner(
                session, tenant.id, kind, active=active, now=now, actor=actor, reason=reason, message=message
            )


async def _row(session: AsyncSession, tenant_id: str, kind: BannerKind) -> Banner | None:
    return await session.scalar(select(Banner).where(Banner.tenant_id == tenant_id, Banner.kind == kind))


__all__ = ["BILLING_GRACE_ENDING", "KEY_GRACE_ENDING", "MESSAGES", "set_banner", "sync_billing_banners"]
