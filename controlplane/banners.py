"""Banners: the one place a tenant's dashboard banners are raised and cleared.

Two ways in, both inside the caller's transaction:

* :func:`observe` — for signals that flap (a probe, the agent's own report, a machine's exits). Each
  observation says which kinds it speaks for (``scope``) and which of them it found bad (with the
  subject: a provider id, a channel id, or ``""`` for the tenant as a whole). A bad observation
  adds one to the banner row's ``consecutive_bad``; the banner rises once that reaches the kind's
  threshold (:data:`DEFAULT_THRESHOLDS`, overridden by ``CP_BANNER_THRESHOLDS``). A good one
  resets the count and clears a raised banner: the cause is gone. So bad, good, bad raises nothing.
* :func:`set_banner` — for facts that do not flap (billing: a failed payment, a grace period
  ending, a missing key): raise or clear at once.

Every raise and every clear writes an audit row (``banner.raised`` / ``banner.cleared``: kind,
subject, why) and the banner carries a sentence a person understands, naming its provider or
channel. One row per (tenant, kind, subject), reused across raises; rows are only read for the
tenants observed, and written only when something changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane import audit
from controlplane.dashboard.notices import banner_sentence
from controlplane.db.models import Banner, new_id
from controlplane.db.upsert import upsert
from controlplane.enums import BannerKind

#: Consecutive bad observations before a banner rises. Kinds set by facts, not observations
#: (billing's), and ``key_invalid`` (the key service already wants ``BROKEN_AFTER`` refusals in a
#: row before it calls a key broken) rise at the first.
DEFAULT_THRESHOLDS: dict[BannerKind, int] = {
    BannerKind.key_invalid: 1,
    BannerKind.key_no_credit: 3,
    BannerKind.key_missing: 1,
    BannerKind.agent_down: 3,
    BannerKind.agent_crashlooping: 2,
    BannerKind.channel_down: 3,
    BannerKind.grace_period_ending: 1,
    BannerKind.payment_failed: 1,
}

_CHUNK = 500  # tenant ids per IN (...) when reading rows


def thresholds(overrides: Mapping[str, int] | None = None) -> dict[BannerKind, int]:
    """The defaults with ``CP_BANNER_THRESHOLDS`` applied (keys are kind names)."""
    merged = dict(DEFAULT_THRESHOLDS)
    for kind, count in (overrides or {}).items():
        merged[BannerKind(kind)] = int(count)
    return merged


@dataclass(frozen=True, slots=True)
class Finding:
    """One bad observation: ``kind`` about ``subject`` ("" = the tenant), with an optional sentence."""

    kind: BannerKind
    subject: str = ""
    message: str | None = None
    reason: str = ""  # for the audit row (never shown to the user)


@dataclass(frozen=True, slots=True)
class Observation:
    """What one look at a tenant found: bad ``findings`` among the kinds in ``scope``. A banner of
    a kind in scope that is not among the findings was observed good."""

    tenant_id: str
    scope: frozenset[BannerKind]
    findings: tuple[Finding, ...] = ()


@dataclass(frozen=True, slots=True)
class Change:
    tenant_id: str
    kind: BannerKind
    subject: str
    raised: bool  # False: cleared


@dataclass(slots=True)
class _Index:
    rows: dict[tuple[str, BannerKind, str], Banner] = field(default_factory=dict)
    by_tenant: dict[str, list[Banner]] = field(default_factory=dict)

    def add(self, row: Banner) -> None:
        self.rows[(row.tenant_id, row.kind, row.subject)] = row
        self.by_tenant.setdefault(row.tenant_id, []).append(row)


async def _load(session: AsyncSession, tenant_ids: Sequence[str], kinds: Iterable[BannerKind]) -> _Index:
    index = _Index()
    kinds = list(kinds)
    for start in range(0, len(tenant_ids), _CHUNK):
        chunk = list(tenant_ids[start : start + _CHUNK])
        for row in await session.scalars(
            select(Banner).where(Banner.tenant_id.in_(chunk), Banner.kind.in_(kinds))
        ):
            index.add(row)
    return index


async def _row_for(
    session: AsyncSession, tenant_id: str, kind: BannerKind, subject: str, now: datetime
) -> Banner:
    """The (tenant, kind, subject) row, created if missing. Two processes may create it at once:
    the unique key decides and both use the one row."""
    await session.execute(
        upsert(session, Banner)
        .values(
            id=new_id(),
            tenant_id=tenant_id,
            kind=kind.value,
            subject=subject,
            message="",
            consecutive_bad=0,
            active=False,
            updated_at=now,
        )
        .on_conflict_do_nothing()
    )
    row = await session.scalar(
        select(Banner).where(Banner.tenant_id == tenant_id, Banner.kind == kind, Banner.subject == subject)
    )
    assert row is not None
    return row


def _raise(
    session: AsyncSession, row: Banner, message: str | None, now: datetime, *, actor: str, reason: str
) -> None:
    row.active = True
    row.message = banner_sentence(row.kind, row.subject or None, message)
    row.raised_at = now
    row.cleared_at = None
    row.updated_at = now
    audit.record(
        session,
        actor=actor,
        action="banner.raised",
        tenant_id=row.tenant_id,
        reason=reason,
        before={"banner": row.kind.value, "subject": row.subject, "active": False},
        after={"banner": row.kind.value, "subject": row.subject, "active": True},
    )


def _clear(session: AsyncSession, row: Banner, now: datetime, *, actor: str, reason: str) -> None:
    row.active = False
    row.consecutive_bad = 0
    row.cleared_at = now
    row.updated_at = now
    audit.record(
        session,
        actor=actor,
        action="banner.cleared",
        tenant_id=row.tenant_id,
        reason=reason,
        before={"banner": row.kind.value, "subject": row.subject, "active": True},
        after={"banner": row.kind.value, "subject": row.subject, "active": False},
    )


async def observe(
    session: AsyncSession,
    observations: Sequence[Observation],
    *,
    now: datetime,
    actor: str,
    limits: Mapping[BannerKind, int] | None = None,
) -> list[Change]:
    """Count each observation toward its banners; raise at the threshold, clear when good."""
    limits = limits or DEFAULT_THRESHOLDS
    if not observations:
        return []
    kinds = set().union(*(o.scope for o in observations))
    index = await _load(session, sorted({o.tenant_id for o in observations}), kinds)
    changes: list[Change] = []
    for obs in observations:
        bad = {(f.kind, f.subject): f for f in obs.findings if f.kind in obs.scope}
        for (kind, subject), finding in bad.items():
            row = index.rows.get((obs.tenant_id, kind, subject))
            if row is None:
                row = await _row_for(session, obs.tenant_id, kind, subject, now)
                index.add(row)
            row.consecutive_bad += 1
            row.updated_at = now
            if row.active:
                sentence = banner_sentence(kind, subject or None, finding.message)
                if row.message != sentence:
                    row.message = sentence
            elif row.consecutive_bad >= limits.get(kind, DEFAULT_THRESHOLDS[kind]):
                why = finding.reason or f"{row.consecutive_bad} bad observations in a row"
                _raise(session, row, finding.message, now, actor=actor, reason=why)
                changes.append(Change(obs.tenant_id, kind, subject, True))
        for row in index.by_tenant.get(obs.tenant_id, []):
            if row.kind not in obs.scope or (row.kind, row.subject) in bad:
                continue
            if row.active:
                _clear(session, row, now, actor=actor, reason="the cause is gone")
                changes.append(Change(obs.tenant_id, row.kind, row.subject, False))
            elif row.consecutive_bad:
                row.consecutive_bad = 0
                row.updated_at = now
    return changes


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
    subject: str = "",
) -> bool:
    """Raise (``active``) or clear one banner at once. ``True`` if it changed."""
    row = await session.scalar(
        select(Banner).where(Banner.tenant_id == tenant_id, Banner.kind == kind, Banner.subject == subject)
    )
    if row is None:
        if not active:
            return False
        row = await _row_for(session, tenant_id, kind, subject, now)
    if active == row.active:
        if active:
            sentence = banner_sentence(kind, subject or None, message)
            if row.message != sentence:
                row.message = sentence
                row.updated_at = now
        return False
    if active:
        _raise(session, row, message, now, actor=actor, reason=reason)
    else:
        _clear(session, row, now, actor=actor, reason=reason)
    return True


async def clear_banners(
    session: AsyncSession,
    tenant_id: str,
    kinds: Iterable[BannerKind],
    *,
    subject: str | None = None,
    now: datetime,
    actor: str,
    reason: str,
) -> list[Change]:
    """Clear the tenant's raised banners of ``kinds`` (one ``subject`` or all) and forget any bad
    observations counted toward them (e.g. a key was replaced: start again from zero)."""
    query = select(Banner).where(Banner.tenant_id == tenant_id, Banner.kind.in_(list(kinds)))
    if subject is not None:
        query = query.where(Banner.subject == subject)
    changes = []
    for row in await session.scalars(query):
        if row.active:
            _clear(session, row, now, actor=actor, reason=reason)
            changes.append(Change(tenant_id, row.kind, row.subject, False))
        elif row.consecutive_bad:
            row.consecutive_bad = 0
            row.updated_at = now
    return changes


__all__ = [
    "DEFAULT_THRESHOLDS",
    "Change",
    "Finding",
    "Observation",
    "clear_banners",
    "observe",
    "set_banner",
    "thresholds",
]
