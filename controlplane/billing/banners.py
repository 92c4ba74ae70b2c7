"""Billing's dashboard banners: ``payment_failed``, ``grace_period_ending`` and ``key_missing``.

Every banner write of billing goes through :func:`set_banner`, which hands it to the generic
:mod:`controlplane.banners` (one row per tenant and kind, reused; an audit row for each raise and
each clear).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane import banners
from controlplane.billing import entitlement
from controlplane.db.models import Banner, Tenant
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
    """Raise (``active``) or clear the tenant's ``kind`` banner. ``True`` if it changed (the generic
    :func:`controlplane.banners.set_banner`, with billing's sentences)."""
    return await banners.set_banner(
        session,
        tenant_id,
        kind,
        active=active,
        now=now,
        actor=actor,
        reason=reason,
        message=message or MESSAGES.get(kind),
    )


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


__all__ = ["BILLING_GRACE_ENDING", "KEY_GRACE_ENDING", "MESSAGES", "set_banner", "sync_billing_banners"]
