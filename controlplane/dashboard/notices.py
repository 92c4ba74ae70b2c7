"""What the dashboard tells a user: active banners (each with a sentence) and announcements.

Banners are raised and cleared by the workers (health poller, billing); this module only reads the
active ones. A banner without its own message gets the default sentence of its kind, naming its
subject (a provider or channel) when it has one.

Announcements are either the tenant's own (``announcements.tenant_id``) or for everyone (NULL).
Dismissing one is per tenant: an own announcement is marked on its row, a broadcast gets a row in
``announcement_dismissals``. A dismissal is recorded in the audit log; it changes nothing the agent
runs, so it is not a desired-state change.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.providers import PROVIDER_IDS, get_provider
from controlplane import audit
from controlplane.db.models import Announcement, AnnouncementDismissal, Banner, utcnow
from controlplane.db.upsert import upsert
from controlplane.enums import BannerKind
from controlplane.errors import NotFound

MAX_ANNOUNCEMENTS = 100

DEFAULT_SENTENCES: dict[BannerKind, str] = {
    BannerKind.key_invalid: "Your {subject} key no longer works. Add a new key to keep your agent answering.",
    BannerKind.key_no_credit: (
        "Your {subject} account is out of credit or at its spending limit. Top it up or raise the limit."
    ),
    BannerKind.key_missing: "Your agent has no usable AI key. Add a key to start it again.",
    BannerKind.agent_down: "Your agent is not responding. We are bringing it back.",
    BannerKind.agent_crashlooping: "Your agent keeps restarting. We are looking into it.",
    BannerKind.channel_down: (
        "Your {subject} connection stopped working. Check its token or reconnect it in your settings."
    ),
    BannerKind.grace_period_ending: (
        "Your agent runs on our AI key for a limited time. Add your own key to keep it running."
    ),
    BannerKind.payment_failed: "Your last payment failed. Update your payment method to keep your agent running.",
}


def _subject_name(subject: str | None) -> str:
    if subject is None:
        return "AI provider"
    if subject in PROVIDER_IDS:
        return get_provider(subject).display_name
    return subject.capitalize()


def banner_sentence(kind: BannerKind, subject: str | None, message: str | None = None) -> str:
    """The banner's own message, or the default sentence of its kind."""
    if message:
        return message
    return DEFAULT_SENTENCES[kind].format(subject=_subject_name(subject))


@dataclass(frozen=True, slots=True)
class BannerView:
    kind: BannerKind
    subject: str | None
    message: str
    raised_at: datetime | None


@dataclass(frozen=True, slots=True)
class AnnouncementView:
    id: str
    kind: str
    title: str
    body: str
    created_at: datetime
    broadcast: bool  # for every tenant, not only this one


async def active_banners(session: AsyncSession, tenant_id: str) -> list[BannerView]:
    rows = await session.scalars(
        select(Banner)
        .where(Banner.tenant_id == tenant_id, Banner.active.is_(True))
        .order_by(Banner.raised_at, Banner.kind)
    )
    return [
        BannerView(
            r.kind, r.subject or None, banner_sentence(r.kind, r.subject or None, r.message), r.raised_at
        )
        for r in rows
    ]


def _visible_to(tenant_id: str) -> ColumnElement[bool]:
    dismissed = exists().where(
        AnnouncementDismissal.announcement_id == Announcement.id,
        AnnouncementDismissal.tenant_id == tenant_id,
    )
    return or_(
        and_(Announcement.tenant_id == tenant_id, Announcement.dismissed_at.is_(None)),
        and_(Announcement.tenant_id.is_(None), ~dismissed),
    )


async def announcements(session: AsyncSession, tenant_id: str) -> list[AnnouncementView]:
    """Undismissed announcements for the tenant, newest first (at most :data:`MAX_ANNOUNCEMENTS`)."""
    rows = await session.scalars(
        select(Announcement)
        .where(_visible_to(tenant_id))
        .order_by(Announcement.created_at.desc(), Announcement.id)
        .limit(MAX_ANNOUNCEMENTS)
    )
    return [AnnouncementView(r.id, r.kind, r.title, r.body, r.created_at, r.tenant_id is None) for r in rows]


async def dismiss_announcement(
    session: AsyncSession, tenant_id: str, announcement_id: str, *, actor: str, now: datetime | None = None
) -> bool:
    """Dismiss for this tenant; ``False`` if it was already dismissed. :class:`NotFound` if the
    tenant cannot see such an announcement."""
    row = await session.get(Announcement, announcement_id)
    if row is None or row.tenant_id not in (None, tenant_id):
        raise NotFound("announcement_id", "no such announcement for this tenant")
    now = now or utcnow()
    if row.tenant_id is not None:
        if row.dismissed_at is not None:
            return False
        row.dismissed_at = now
    else:
        stmt = (
            upsert(session, AnnouncementDismissal)
            .values(announcement_id=announcement_id, tenant_id=tenant_id, dismissed_at=now)
            .on_conflict_do_nothing(index_elements=["announcement_id", "tenant_id"])
            .returning(AnnouncementDismissal.tenant_id)
        )
        if (await session.execute(stmt)).first() is None:
            return False
    audit.record(
        session,
        actor=actor,
        action="announcement.dismissed",
        tenant_id=tenant_id,
        after={"announcement_id": announcement_id, "kind": row.kind},
    )
    return True


__all__ = [
    "DEFAULT_SENTENCES",
    "AnnouncementView",
    "BannerView",
    "active_banners",
    "announcements",
    "banner_sentence",
    "dismiss_announcement",
]
