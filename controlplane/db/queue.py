"""The reconcile queue: every statement on ``reconcile_queue`` lives here (procrastinate keeps each
table's SQL behind one manager the same way).

The queue holds tenant keys, not events: one row per tenant, kept for the tenant's whole life.

* **mark** (:func:`mark_for_reconcile`, in the caller's transaction): a waiting tenant stays one
  entry; an *explicit* mark (user, operator, billing) makes it due now with priority, even if it was
  backing off or parked (invariant 6); a *background* mark (resync) makes an idle tenant due, but
  never shortens a backoff and never un-parks. An explicit mark that lands while the tenant is being
  reconciled sets ``requeue``: it runs once more after the current run (a background one does not:
  the run in progress reads the world afresh anyway).
* **claim** (:meth:`ReconcileQueue.claim`): due, unparked rows whose lease is free or expired,
  explicit ones first. PostgreSQL: ``SELECT ... FOR UPDATE SKIP LOCKED`` feeding one ``UPDATE``;
  SQLite: one conditional ``UPDATE ... RETURNING`` (writers are serialised by ``BEGIN IMMEDIATE``).
  A claim takes a lease (owner + expiry) and bumps ``lease_generation``, the fencing token.
* **heartbeat / finish / requeue_after / retry / park / release**: each is one ``UPDATE`` conditional
  on the claim's generation, so the write of a worker that lost its lease (and whose tenant was
  claimed again by someone else) changes nothing and says so (returns ``False``).
* **backoff**: per tenant, ``attempts`` consecutive failures, delays from
  :class:`controlplane.retry.Backoff` (jittered, capped).

On PostgreSQL every mark also sends ``NOTIFY`` on :data:`WAKE_CHANNEL` (delivered at commit), which
wakes idle workers at once; polling stays the fallback.

Times come from the injected :class:`~controlplane.clock.Clock` (``now()``), not the database's
clock, so tests run on virtual time; hosts sharing a database must keep their clocks in sync (NTP:
lease lengths are tens of seconds, skew is milliseconds).
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal

from sqlalchemy import (
    Table,
    and_,
    case,
    func,
    literal,
    not_,
    or_,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncSession

from controlplane.clock import Clock, SystemClock
from controlplane.db.models import ReconcileItem, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.db.types import UTCDateTime
from controlplane.retry import Backoff

QUEUE: Table = ReconcileItem.__table__  # type: ignore[assignment]
TENANTS: Table = Tenant.__table__  # type: ignore[assignment]

#: PostgreSQL NOTIFY channel a mark signals on (the payload is empty: it only wakes).
WAKE_CHANNEL = "cp_reconcile"
EXPLICIT, BACKGROUND = 1, 0
MAX_ERROR_CHARS = 2000
MAX_REASON_CHARS = 255

Outcome = Literal["done", "requeue", "retry", "park", "released"]

CLAIM_COLUMNS = (QUEUE.c.tenant_id, QUEUE.c.lease_generation, QUEUE.c.attempts, QUEUE.c.reason)

#: The per-tenant backoff of failed reconciles: 2 s doubling to 5 minutes, jittered.
DEFAULT_BACKOFF = Backoff(initial=2.0, factor=2.0, cap=300.0)


@dataclass(frozen=True, slots=True)
class Claim:
    """A tenant this worker holds the lease of. ``generation`` is the fencing token."""

    tenant_id: str
    owner: str
    generation: int
    attempts: int  # consecutive failed runs before this one
    reason: str | None  # why it was last marked

    @classmethod
    def of(cls, row: Any, owner: str) -> Claim:
        """From a ``RETURNING tenant_id, lease_generation, attempts, reason`` row."""
        return cls(
            tenant_id=row.tenant_id,
            owner=owner,
            generation=row.lease_generation,
            attempts=row.attempts,
            reason=row.reason,
        )


@dataclass(frozen=True, slots=True)
class ReconcileStatus:
    """What the queue knows of one tenant (for ``tenant show`` and the dashboard's status)."""

    tenant_id: str
    due_at: datetime | None  # None: nothing to do
    leased: bool  # being reconciled right now (an unexpired lease)
    attempts: int
    parked_reason: str | None
    last_error: str | None
    last_outcome: str | None
    last_run_at: datetime | None
    reason: str | None


@dataclass(frozen=True, slots=True)
class QueueStats:
    """Counts for metrics and ``fleet``: due now, backing off, leased, parked, idle."""

    due: int
    backing_off: int
    leased: int
    parked: int
    idle: int


def _utc(value: datetime) -> Any:
    return literal(value, type_=UTCDateTime())


def _live_lease(now: datetime) -> Any:
    return and_(QUEUE.c.lease_owner.isnot(None), QUEUE.c.lease_expires_at > _utc(now))


def _insert(session: AsyncSession) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(QUEUE)
    if dialect == "sqlite":
        return sqlite.insert(QUEUE)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


async def _notify(session: AsyncSession) -> None:
    if session.get_bind().dialect.name == "postgresql":
        await session.execute(text(f"NOTIFY {WAKE_CHANNEL}"))


async def mark_for_reconcile(
    session: AsyncSession,
    tenant_id: str,
    reason: str,
    *,
    explicit: bool = True,
    now: datetime | None = None,
) -> None:
    """Ask for ``tenant_id`` to be reconciled, in the caller's transaction (see the module docstring
    for what a mark does to a waiting, backing-off, parked or leased tenant)."""
    now = now or utcnow()
    live = _live_lease(now)
    stmt = _insert(session).values(
        tenant_id=tenant_id,
        due_at=now,
        priority=EXPLICIT if explicit else BACKGROUND,
        reason=reason[:MAX_REASON_CHARS],
        marked_at=now,
        requeue=False,
        attempts=0,
        lease_generation=0,
    )
    c = QUEUE.c
    if explicit:
        changes: dict[str, Any] = {
            "reason": stmt.excluded.reason,
            "marked_at": stmt.excluded.marked_at,
            "priority": literal(EXPLICIT),
            # a run in progress keeps its due time; anything else is due now, backoff or not
            "due_at": case((live, c.due_at), else_=_utc(now)),
            "requeue": case((live, literal(True)), else_=c.requeue),
            "parked_reason": None,
            "parked_at": None,
        }
    else:
        idle = and_(not_(live), c.parked_reason.is_(None), c.due_at.is_(None))
        changes = {
            "reason": case((idle, stmt.excluded.reason), else_=c.reason),
            "marked_at": case((idle, stmt.excluded.marked_at), else_=c.marked_at),
            "due_at": case((idle, _utc(now)), else_=c.due_at),
        }
    await session.execute(stmt.on_conflict_do_update(index_elements=[c.tenant_id], set_=changes))
    await _notify(session)


async def mark_many(
    session: AsyncSession,
    tenant_ids: Sequence[str],
    reason: str,
    *,
    now: datetime,
    spread_seconds: float = 0.0,
    rng: random.Random | None = None,
) -> None:
    """Background marks for many tenants (the resync), each due at ``now`` plus a jitter in
    ``[0, spread_seconds)`` so a fleet-wide resync does not arrive as one burst."""
    if not tenant_ids:
        return
    pick = rng or random.Random()
    rows = [
        {
            "tenant_id": tenant_id,
            "due_at": now + timedelta(seconds=pick.uniform(0, spread_seconds) if spread_seconds else 0),
            "priority": BACKGROUND,
            "reason": reason[:MAX_REASON_CHARS],
            "marked_at": now,
            "requeue": False,
            "attempts": 0,
            "lease_generation": 0,
        }
        for tenant_id in tenant_ids
    ]
    stmt = _insert(session)
    c = QUEUE.c
    live = _live_lease(now)
    idle = and_(not_(live), c.parked_reason.is_(None), c.due_at.is_(None))
    stmt = stmt.on_conflict_do_update(
        index_elements=[c.tenant_id],
        set_={
            "reason": case((idle, stmt.excluded.reason), else_=c.reason),
            "marked_at": case((idle, stmt.excluded.marked_at), else_=c.marked_at),
            "due_at": case((idle, stmt.excluded.due_at), else_=c.due_at),
        },
    )
    for start in range(0, len(rows), 500):
        await session.execute(stmt, rows[start : start + 500])
    await _notify(session)


async def reconcile_status(
    session: AsyncSession | AsyncConnection, tenant_id: str, *, now: datetime
) -> ReconcileStatus | None:
    """The queue's view of one tenant, or ``None`` if it was never marked (in a session, or on a
    bare connection: the dashboard API's status read)."""
    row = (await session.execute(select(QUEUE).where(QUEUE.c.tenant_id == tenant_id))).one_or_none()
    if row is None:
        return None
    leased = row.lease_owner is not None and row.lease_expires_at is not None and row.lease_expires_at > now
    return ReconcileStatus(
        tenant_id=row.tenant_id,
        due_at=row.due_at,
        leased=leased,
        attempts=row.attempts,
        parked_reason=row.parked_reason,
        last_error=row.last_error,
        last_outcome=row.last_outcome,
        last_run_at=row.last_run_at,
        reason=row.reason,
    )


class ReconcileQueue:
    """Claims and leases of the reconcile queue (marks are :func:`mark_for_reconcile`)."""

    def __init__(
        self,
        db: Database,
        *,
        clock: Clock | None = None,
        lease_seconds: float = 60.0,
        backoff: Backoff = DEFAULT_BACKOFF,
        rng: random.Random | None = None,
    ) -> None:
        if lease_seconds <= 0:
            raise ValueError("lease_seconds must be positive")
        self.db = db
        self.clock: Clock = clock or SystemClock()
        self.lease_seconds = lease_seconds
        self.backoff = backoff
        self._rng = rng or random.Random()

    # -- marking ------------------------------------------------------------------------------
    async def mark(self, tenant_id: str, reason: str, *, explicit: bool = True) -> None:
        """A mark in its own transaction (entry points mark inside theirs instead)."""
        async with self.db.transaction() as session:
            await mark_for_reconcile(session, tenant_id, reason, explicit=explicit, now=self.clock.now())

    async def mark_all(self, reason: str, *, explicit: bool, spread_seconds: float = 0.0) -> int:
        """Mark every tenant that is not gone; returns how many were marked."""
        from controlplane.enums import LifecycleState

        async with self.db.transaction() as session:
            ids = list(
                (
                    await session.execute(
                        select(TENANTS.c.id).where(TENANTS.c.lifecycle_state != LifecycleState.gone.value)
                    )
                ).scalars()
            )
            now = self.clock.now()
            if explicit:
                for tenant_id in ids:
                    await mark_for_reconcile(session, tenant_id, reason, explicit=True, now=now)
            else:
                await mark_many(session, ids, reason, now=now, spread_seconds=spread_seconds, rng=self._rng)
        return len(ids)

    # -- claiming -----------------------------------------------------------------------------
    def _claimable(self, now: datetime) -> Any:
        """Due, not parked, and no live lease (a lease that expired is up for takeover)."""
        c = QUEUE.c
        return and_(
            c.due_at <= _utc(now),
            c.parked_reason.is_(None),
            or_(c.lease_expires_at.is_(None), c.lease_expires_at <= _utc(now)),
        )

    def _lease(self, owner: str, now: datetime) -> dict[str, Any]:
        """A new lease: owner, expiry, the next fencing generation; the claim consumes the marks."""
        return {
            "lease_owner": owner,
            "lease_expires_at": now + timedelta(seconds=self.lease_seconds),
            "lease_generation": QUEUE.c.lease_generation + 1,
            "requeue": False,
            "priority": BACKGROUND,
        }

    async def claim(self, owner: str, limit: int = 1) -> list[Claim]:
        """Lease up to ``limit`` due tenants for ``owner`` (explicit marks first, then oldest due)."""
        if limit < 1:
            return []
        now = self.clock.now()
        c = QUEUE.c
        pick = (
            select(c.tenant_id).where(self._claimable(now)).order_by(c.priority.desc(), c.due_at).limit(limit)
        )
        async with self.db.connection() as conn:
            if conn.dialect.name == "postgresql":
                locked = pick.with_for_update(skip_locked=True).cte("claimable")
                stmt = update(QUEUE).where(c.tenant_id == locked.c.tenant_id)
            else:
                stmt = update(QUEUE).where(c.tenant_id.in_(pick.scalar_subquery()))
            returning = stmt.values(**self._lease(owner, now)).returning(*CLAIM_COLUMNS)
            rows = (await conn.execute(returning)).all()
        return [Claim.of(r, owner) for r in sorted(rows, key=lambda r: r.tenant_id)]

    async def claim_tenant(self, owner: str, tenant_id: str) -> Claim | None:
        """Lease ``tenant_id`` if it is due and free (``reconcile --wait`` runs one tenant now)."""
        now = self.clock.now()
        stmt = (
            update(QUEUE)
            .where(QUEUE.c.tenant_id == tenant_id, self._claimable(now))
            .values(**self._lease(owner, now))
            .returning(*CLAIM_COLUMNS)
        )
        async with self.db.connection() as conn:
            row = (await conn.execute(stmt)).first()
        return None if row is None else Claim.of(row, owner)

    def _held(self, claim: Claim) -> Any:
        c = QUEUE.c
        return and_(
            c.tenant_id == claim.tenant_id,
            c.lease_generation == claim.generation,
            c.lease_owner == claim.owner,
        )

    async def _write(self, claim: Claim, values: dict[str, Any]) -> bool:
        async with self.db.connection() as conn:
            result = await conn.execute(update(QUEUE).where(self._held(claim)).values(**values))
        return bool(result.rowcount == 1)

    async def heartbeat(self, claim: Claim) -> bool:
        """Extend the lease; ``False`` if it is no longer ours (another worker took the tenant)."""
        expires = self.clock.now() + timedelta(seconds=self.lease_seconds)
        return await self._write(claim, {"lease_expires_at": expires})

    def _ended(self, outcome: Outcome, now: datetime, duration_ms: int | None) -> dict[str, Any]:
        return {
            "lease_owner": None,
            "lease_expires_at": None,
            "requeue": False,
            "last_outcome": outcome,
            "last_run_at": now,
            "last_duration_ms": duration_ms,
        }

    async def finish(self, claim: Claim, *, duration_ms: int | None = None) -> bool:
        """The tenant converged: nothing to do until the next mark (a mark during the run: due now)."""
        now = self.clock.now()
        c = QUEUE.c
        return await self._write(
            claim,
            {
                **self._ended("done", now, duration_ms),
                "due_at": case((c.requeue, _utc(now)), else_=None),
                "attempts": 0,
                "last_error": None,
            },
        )

    async def requeue_after(self, claim: Claim, seconds: float, *, duration_ms: int | None = None) -> bool:
        """Not done yet, nothing failed (a machine is booting): look again after ``seconds``; a mark
        that arrived during the run makes it due now instead."""
        now = self.clock.now()
        c = QUEUE.c
        later = now + timedelta(seconds=max(0.0, seconds))
        return await self._write(
            claim,
            {
                **self._ended("requeue", now, duration_ms),
                "due_at": case((c.requeue, _utc(now)), else_=_utc(later)),
                "attempts": 0,
                "last_error": None,
            },
        )

    async def retry(
        self, claim: Claim, error: str, *, retry_after: float | None = None, duration_ms: int | None = None
    ) -> float | None:
        """A transient failure: due again after the tenant's backoff (``attempts`` grows; a server's
        ``retry_after`` is honoured when longer). An explicit mark during the run makes it due now.
        Returns the delay chosen, or ``None`` if the lease was no longer ours."""
        now = self.clock.now()
        delay = max(self.backoff.delay(claim.attempts, self._rng), retry_after or 0.0)
        c = QUEUE.c
        explicit_during_run = and_(c.requeue, c.priority == EXPLICIT)
        written = await self._write(
            claim,
            {
                **self._ended("retry", now, duration_ms),
                "due_at": case((explicit_during_run, _utc(now)), else_=_utc(now + timedelta(seconds=delay))),
                "attempts": c.attempts + 1,
                "last_error": error[:MAX_ERROR_CHARS],
            },
        )
        return delay if written else None

    async def park(self, claim: Claim, reason: str, *, duration_ms: int | None = None) -> bool:
        """A terminal failure: the tenant waits, with ``reason`` visible, until an explicit mark.
        An explicit mark that arrived during the run wins: the tenant is due now instead."""
        now = self.clock.now()
        c = QUEUE.c
        explicit_during_run = and_(c.requeue, c.priority == EXPLICIT)
        return await self._write(
            claim,
            {
                **self._ended("park", now, duration_ms),
                "due_at": case((explicit_during_run, _utc(now)), else_=None),
                "parked_reason": case((explicit_during_run, None), else_=literal(reason[:MAX_ERROR_CHARS])),
                "parked_at": case((explicit_during_run, None), else_=_utc(now)),
                "attempts": c.attempts + 1,
                "last_error": reason[:MAX_ERROR_CHARS],
            },
        )

    async def release(self, claim: Claim) -> bool:
        """Give the lease back unfinished (shutdown): due again at once, for any worker."""
        now = self.clock.now()
        c = QUEUE.c
        return await self._write(
            claim,
            {
                "lease_owner": None,
                "lease_expires_at": None,
                "due_at": func.coalesce(c.due_at, _utc(now)),
                "last_outcome": "released",
            },
        )

    # -- reading ------------------------------------------------------------------------------
    async def status(self, session: AsyncSession, tenant_id: str) -> ReconcileStatus | None:
        return await reconcile_status(session, tenant_id, now=self.clock.now())

    async def stats(self) -> QueueStats:
        now = self.clock.now()
        c = QUEUE.c
        live = _live_lease(now)
        parked = c.parked_reason.isnot(None)
        due = and_(not_(parked), not_(live), c.due_at <= _utc(now))
        backing_off = and_(not_(parked), not_(live), c.due_at > _utc(now))
        count = func.count()
        async with self.db.read() as session:
            row = (
                await session.execute(
                    select(
                        count.filter(due).label("due"),
                        count.filter(backing_off).label("backing_off"),
                        count.filter(live).label("leased"),
                        count.filter(parked).label("parked"),
                        count.label("total"),
                    ).select_from(QUEUE)
                )
            ).one()
        idle = row.total - row.due - row.backing_off - row.leased - row.parked
        return QueueStats(
            due=row.due, backing_off=row.backing_off, leased=row.leased, parked=row.parked, idle=idle
        )

    async def seconds_until_due(self) -> float | None:
        """Seconds until the next unparked, unleased tenant falls due (0 if one is due now), or
        ``None`` when nothing is scheduled: how long an idle worker may sleep."""
        now = self.clock.now()
        c = QUEUE.c
        async with self.db.read() as session:
            nearest = await session.scalar(
                select(func.min(c.due_at)).where(c.parked_reason.is_(None), not_(_live_lease(now)))
            )
            expiring = await session.scalar(select(func.min(c.lease_expires_at)).where(_live_lease(now)))
        candidates: list[datetime] = [t for t in (nearest, expiring) if t is not None]
        if not candidates:
            return None
        return max(0.0, (min(candidates) - now).total_seconds())

    async def holders(self) -> dict[str, str]:
        """tenant id -> owner of every live lease (drills and tests check no tenant has two)."""
        now = self.clock.now()
        async with self.db.read() as session:
            rows = (
                await session.execute(select(QUEUE.c.tenant_id, QUEUE.c.lease_owner).where(_live_lease(now)))
            ).all()
        return {r.tenant_id: r.lease_owner for r in rows}

    async def release_all(self, owner: str) -> int:
        """Release every lease ``owner`` still holds (the last step of a graceful shutdown)."""
        now = self.clock.now()
        c = QUEUE.c
        async with self.db.transaction() as session:
            result = await session.execute(
                update(QUEUE)
                .where(c.lease_owner == owner)
                .values(
                    lease_owner=None,
                    lease_expires_at=None,
                    due_at=func.coalesce(c.due_at, _utc(now)),
                    last_outcome="released",
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def forget(self, tenant_ids: Iterable[str]) -> None:
        """Remove the rows of tenants that are gone (their row otherwise stays for the status)."""
        ids = list(tenant_ids)
        if not ids:
            return
        async with self.db.transaction() as session:
            await session.execute(QUEUE.delete().where(QUEUE.c.tenant_id.in_(ids)))

    async def prune_finished(self, *, older_than: datetime) -> int:
        """Delete the finished rows of tenants that are gone (nothing due, no lease, last run before
        ``older_than``): a periodic job, so the table does not grow with every tenant ever served."""
        gone = select(Tenant.id).where(Tenant.lifecycle_state == "gone")
        c = QUEUE.c
        async with self.db.transaction() as session:
            result = await session.execute(
                QUEUE.delete().where(
                    c.tenant_id.in_(gone),
                    c.due_at.is_(None),
                    c.lease_owner.is_(None),
                    or_(c.last_run_at.is_(None), c.last_run_at < _utc(older_than)),
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)


__all__ = [
    "BACKGROUND",
    "DEFAULT_BACKOFF",
    "EXPLICIT",
    "WAKE_CHANNEL",
    "Claim",
    "Outcome",
    "QueueStats",
    "ReconcileQueue",
    "ReconcileStatus",
    "mark_for_reconcile",
    "mark_many",
    "reconcile_status",
]
