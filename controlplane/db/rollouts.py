"""Every statement on ``rollouts`` and ``rollout_items`` (image rollouts), and the tenant columns they
own (``desired_image``, ``cohort``), in one place.

Entry points (the ``rollout`` CLI) call :func:`start_rollout`, :func:`change_state`,
:func:`start_rollback`, :func:`set_cohort` and :func:`read_status`; the worker's driver
(``workers/rollout.py``) calls :func:`claim_driver`, :func:`in_flight`, :func:`next_pending`,
:func:`begin_items`, :func:`record_applied`, :func:`finish_item`, :func:`fail_item` and
:func:`finish_if_complete`. Every change of a tenant's image goes through
:func:`controlplane.desired.desired_state_changed` in the same transaction as the item's new state,
so a worker killed between two statements never leaves a tenant moved without its item saying so.

A rollout row has ``active = 1`` while it is running, paused or draining an abort; the unique
constraint on ``active`` keeps a second one out on every backend. Its driver holds a lease
(``driver_owner`` until ``driver_lease_until``) so one worker process drives it at a time.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Table, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.spec import pinned_image_problem
from controlplane import audit
from controlplane.db.models import FlyResources, ReconcileItem, Rollout, RolloutItem, Tenant, new_id, utcnow
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed, find_tenant
from controlplane.enums import DesiredPower, LifecycleState, RolloutItemState, RolloutState
from controlplane.errors import BadInput, NotFound, Refused

ROLLOUTS: Table = Rollout.__table__  # type: ignore[assignment]
ITEMS: Table = RolloutItem.__table__  # type: ignore[assignment]
COHORT = re.compile(r"^[a-z0-9][a-z0-9._-]{0,63}$")
#: Items still moving: they hold one of the rollout's in-flight slots.
MOVING = (RolloutItemState.in_flight, RolloutItemState.rolling_back)
UNFINISHED = (RolloutItemState.pending, *MOVING)
ACTIVE_STATES = (RolloutState.running, RolloutState.paused)
MAX_LISTED = 50  # failed / skipped tenants shown by status
ALREADY = "already on this image"  # the note of a tenant a rollout found on its image (not moved)


def check_image(image: str, field_name: str = "--image") -> str:
    problem = pinned_image_problem(image)
    if problem is not None:
        raise BadInput(field_name, problem)
    return image


def check_cohort(label: str, field_name: str = "--cohort") -> str:
    if not COHORT.match(label):
        raise BadInput(
            field_name, "a cohort label is 1-64 of a-z 0-9 . _ - (starting with a letter or digit)"
        )
    return label


def bucket(tenant_id: str) -> int:
    """A stable number 0..9999 per tenant: ``--percent N`` takes the tenants below N x 100, so a
    later, larger percentage includes everyone an earlier one took. Batches follow it too."""
    return int.from_bytes(hashlib.sha256(tenant_id.encode()).digest()[:8], "big") % 10_000


# -- views ---------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class TenantNote:
    external_id: str
    state: str
    note: str | None


@dataclass(frozen=True, slots=True)
class RolloutView:
    """What ``rollout status`` shows."""

    id: str
    image: str
    selector: dict[str, Any]
    batch_size: int
    max_in_flight: int
    state: str
    reason: str | None
    rollback_of: str | None
    total: int
    counts: dict[str, int]
    current_batch: int | None
    batches: int
    created_by: str
    created_at: str
    finished_at: str | None
    failed: list[TenantNote] = field(default_factory=list)
    skipped: list[TenantNote] = field(default_factory=list)

    @property
    def done(self) -> int:
        return self.counts.get(RolloutItemState.done.value, 0)

    @property
    def in_flight(self) -> int:
        return sum(self.counts.get(s.value, 0) for s in MOVING)

    @property
    def failed_count(self) -> int:
        return self.counts.get(RolloutItemState.rolled_back.value, 0) + self.counts.get(
            RolloutItemState.rolling_back.value, 0
        )

    @property
    def skipped_count(self) -> int:
        return self.counts.get(RolloutItemState.skipped.value, 0)

    @property
    def pending(self) -> int:
        return self.counts.get(RolloutItemState.pending.value, 0)

    def as_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.update(
            done=self.done,
            in_flight=self.in_flight,
            failed_count=self.failed_count,
            skipped_count=self.skipped_count,
            pending=self.pending,
        )
        return data


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


async def _view(session: AsyncSession, rollout: Rollout) -> RolloutView:
    counts = {
        (s.value if hasattr(s, "value") else str(s)): int(n)
        for s, n in (
            await session.execute(
                select(RolloutItem.state, func.count())
                .where(RolloutItem.rollout_id == rollout.id)
                .group_by(RolloutItem.state)
            )
        ).all()
    }
    unfinished = await session.scalar(
        select(func.min(RolloutItem.batch)).where(
            RolloutItem.rollout_id == rollout.id, RolloutItem.state.in_(UNFINISHED)
        )
    )
    batches = await session.scalar(
        select(func.max(RolloutItem.batch)).where(
            RolloutItem.rollout_id == rollout.id, RolloutItem.state != RolloutItemState.skipped
        )
    )

    async def notes(states: Sequence[RolloutItemState]) -> list[TenantNote]:
        rows = (
            await session.execute(
                select(Tenant.external_id, RolloutItem.state, RolloutItem.note)
                .join(Tenant, Tenant.id == RolloutItem.tenant_id)
                .where(RolloutItem.rollout_id == rollout.id, RolloutItem.state.in_(states))
                .order_by(RolloutItem.batch, Tenant.external_id)
                .limit(MAX_LISTED)
            )
        ).all()
        return [TenantNote(e, s.value, n) for e, s, n in rows]

    return RolloutView(
        id=rollout.id,
        image=rollout.image,
        selector=dict(rollout.selector or {}),
        batch_size=rollout.batch_size,
        max_in_flight=rollout.max_in_flight,
        state=rollout.state.value,
        reason=rollout.reason,
        rollback_of=rollout.rollback_of,
        total=rollout.total,
        counts=counts,
        current_batch=unfinished,
        batches=(batches + 1) if batches is not None and batches >= 0 else 0,
        created_by=rollout.created_by,
        created_at=rollout.created_at.isoformat(),
        finished_at=_iso(rollout.finished_at),
        failed=await notes((RolloutItemState.rolling_back, RolloutItemState.rolled_back)),
        skipped=await notes((RolloutItemState.skipped,)),
    )


async def _find(session: AsyncSession, rollout_id: str | None) -> Rollout:
    """The rollout with this id, or (``None``) the active one, else the latest."""
    if rollout_id is not None:
        rollout = await session.get(Rollout, rollout_id)
        if rollout is None:
            raise NotFound("ROLLOUT_ID", "no rollout with this id")
        return rollout
    rollout = await session.scalar(select(Rollout).where(Rollout.active == 1))
    if rollout is None:
        rollout = await session.scalar(select(Rollout).order_by(Rollout.created_at.desc()).limit(1))
    if rollout is None:
        raise NotFound("rollout", "there is no rollout yet (controlplane rollout start)")
    return rollout


async def read_status(db: Database, rollout_id: str | None = None) -> RolloutView:
    async with db.read() as s:
        return await _view(s, await _find(s, rollout_id))


# -- starting ------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Candidate:
    id: str
    image_pin: str | None
    desired_image: str | None


@dataclass(frozen=True, slots=True)
class _Plan:
    tenant_id: str
    target_image: str
    previous_image: str | None
    previous_desired: str | None
    finished: tuple[RolloutItemState, str] | None  # skipped / done at once, with why


def _items(plans: Sequence[_Plan], batch_size: int) -> list[dict[str, Any]]:
    """Item rows: the tenants to move in batches of ``batch_size`` (in the given order), the others
    finished at once. Every row names every column (an executemany takes them from the first)."""
    now = utcnow()
    items: list[dict[str, Any]] = []
    moving = 0
    for plan in plans:
        item: dict[str, Any] = {
            "tenant_id": plan.tenant_id,
            "target_image": plan.target_image,
            "previous_image": plan.previous_image,
            "previous_desired": plan.previous_desired,
            "batch": -1,
            "note": None,
            "finished_at": None,
        }
        if plan.finished is None:
            item.update(batch=moving // batch_size, state=RolloutItemState.pending)
            moving += 1
        else:
            item.update(state=plan.finished[0], note=plan.finished[1], finished_at=now)
        items.append(item)
    return items


async def _create(
    session: AsyncSession,
    *,
    image: str | None,
    items: list[dict[str, Any]],
    selector: dict[str, Any],
    batch_size: int,
    max_in_flight: int,
    actor: str,
    reason: str | None,
    rollback_of: str | None = None,
) -> Rollout:
    if await session.scalar(select(Rollout.id).where(Rollout.active == 1)) is not None:
        raise Refused("rollout", "another rollout is running or paused: finish, resume or abort it first")
    now = utcnow()
    rollout = Rollout(
        id=new_id(),
        image=image or "(each tenant's previous image)",
        selector=selector,
        batch_size=batch_size,
        max_in_flight=max_in_flight,
        state=RolloutState.running,
        active=1,
        rollback_of=rollback_of,
        total=len(items),
        created_by=actor,
        created_at=now,
        updated_at=now,
    )
    session.add(rollout)
    try:
        await session.flush()
    except IntegrityError:
        raise Refused(
            "rollout", "another rollout is running or paused: finish, resume or abort it first"
        ) from None
    for item in items:
        item["rollout_id"] = rollout.id
    for start in range(0, len(items), 1000):
        await session.execute(insert(ITEMS), items[start : start + 1000])
    audit.record(
        session,
        actor=actor,
        action="rollout.rolled_back" if rollback_of else "rollout.started",
        reason=reason,
        after={
            "rollout_id": rollout.id,
            "image": rollout.image,
            "selector": selector,
            "batch": batch_size,
            "max_in_flight": max_in_flight,
            "tenants": len(items),
        },
    )
    return rollout


async def start_rollout(
    db: Database,
    *,
    image: str,
    default_image: str,
    batch_size: int,
    max_in_flight: int,
    actor: str,
    cohort: str | None = None,
    percent: int | None = None,
    reason: str | None = None,
) -> RolloutView:
    """Choose the tenants (every live tenant, a cohort, or a stable percentage), put them in batches
    and record the rollout. Pinned tenants are recorded as skipped; tenants already on ``image`` as
    done. Nothing changes on any tenant here: the worker's driver moves them."""
    check_image(image)
    if cohort is not None and percent is not None:
        raise BadInput("--percent", "choose --cohort or --percent, not both")
    if cohort is not None:
        check_cohort(cohort)
    if percent is not None and not 1 <= percent <= 100:
        raise BadInput("--percent", "a percentage from 1 to 100")
    if batch_size < 1:
        raise BadInput("--batch", "at least 1")
    if max_in_flight < 1:
        raise BadInput("--max-in-flight", "at least 1")
    selector: dict[str, Any] = {"cohort": cohort} if cohort else {"percent": percent} if percent else {}
    async with db.transaction() as s:
        stmt = select(Tenant.id, Tenant.image_pin, Tenant.desired_image).where(
            Tenant.lifecycle_state.not_in((LifecycleState.gone, LifecycleState.deprovisioning)),
            Tenant.desired_power != DesiredPower.gone,
        )
        if cohort is not None:
            stmt = stmt.where(Tenant.cohort == cohort)
        candidates = [_Candidate(*row) for row in (await s.execute(stmt)).all()]
        if percent is not None:
            candidates = [c for c in candidates if bucket(c.id) < percent * 100]
        if not candidates:
            raise Refused("rollout", "no tenant matches (check --cohort / --percent)")
        candidates.sort(key=lambda c: (bucket(c.id), c.id))
        plans = []
        for c in candidates:
            current = c.image_pin or c.desired_image or default_image
            finished = (
                (RolloutItemState.skipped, f"pinned to {c.image_pin}")
                if c.image_pin is not None
                else (RolloutItemState.done, ALREADY)
                if current == image
                else None
            )
            plans.append(_Plan(c.id, image, current, c.desired_image, finished))
        items = _items(plans, batch_size)
        rollout = await _create(
            s,
            image=image,
            items=items,
            selector=selector,
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            actor=actor,
            reason=reason,
        )
        await s.flush()
        await _finish_if_complete(s, rollout, utcnow())  # nothing to move: done at once
        return await _view(s, rollout)


async def start_rollback(
    db: Database, rollout_id: str | None, *, batch_size: int, max_in_flight: int, actor: str, reason: str
) -> RolloutView:
    """A new rollout that moves every tenant a finished, paused-then-aborted or aborted rollout
    moved (done) back to the image it had before, in batches with the same safety checks."""
    async with db.transaction() as s:
        old = await _find(s, rollout_id)
        if old.active == 1:
            raise Refused("rollout", f"rollout {old.id} is still {old.state.value}: abort it first")
        rows = (
            await s.execute(
                select(
                    RolloutItem.tenant_id, RolloutItem.previous_image, Tenant.image_pin, Tenant.desired_image
                )
                .join(Tenant, Tenant.id == RolloutItem.tenant_id)
                .where(
                    RolloutItem.rollout_id == old.id,
                    RolloutItem.state == RolloutItemState.done,
                    or_(RolloutItem.note.is_(None), RolloutItem.note != ALREADY),  # nothing to undo
                    Tenant.lifecycle_state.not_in((LifecycleState.gone, LifecycleState.deprovisioning)),
                )
            )
        ).all()
        if not rows:
            raise Refused("rollout", f"rollout {old.id} moved no tenant: nothing to roll back")
        rows = sorted(rows, key=lambda r: (bucket(r[0]), r[0]))
        plans = []
        for tenant_id, previous, pin, desired in rows:
            finished = (
                (RolloutItemState.skipped, f"pinned to {pin}")
                if pin is not None
                else (RolloutItemState.skipped, "its image changed since the rollout")
                if desired != old.image
                else None
            )
            plans.append(
                _Plan(tenant_id, previous or old.image, pin or desired or old.image, desired, finished)
            )
        items = _items(plans, batch_size)
        moving = sum(1 for i in items if i["state"] is RolloutItemState.pending)
        if moving == 0:
            raise Refused(
                "rollout", f"no tenant of rollout {old.id} is still on its image: nothing to roll back"
            )
        rollout = await _create(
            s,
            image=None,
            items=items,
            selector={"rollback_of": old.id},
            batch_size=batch_size,
            max_in_flight=max_in_flight,
            actor=actor,
            reason=reason,
            rollback_of=old.id,
        )
        await s.flush()
        return await _view(s, rollout)


async def change_state(
    db: Database, action: str, *, actor: str, reason: str, rollout_id: str | None = None
) -> RolloutView:
    """``pause`` (nothing new starts; updates in flight finish), ``resume`` or ``abort`` (tenants not
    started are skipped and stay on their image; updates in flight finish)."""
    async with db.transaction() as s:
        rollout = await _find(s, rollout_id)
        state = rollout.state
        if action == "pause" and state is RolloutState.running:
            rollout.state = RolloutState.paused
        elif action == "resume" and state is RolloutState.paused:
            rollout.state = RolloutState.running
        elif action == "abort" and state in ACTIVE_STATES:
            rollout.state = RolloutState.aborted
            await s.execute(
                update(ITEMS)
                .where(ITEMS.c.rollout_id == rollout.id, ITEMS.c.state == RolloutItemState.pending.value)
                .values(state=RolloutItemState.skipped.value, note="rollout aborted", finished_at=utcnow())
            )
        else:
            raise Refused("rollout", f"rollout {rollout.id} is {state.value}: cannot {action} it")
        rollout.reason = reason
        rollout.updated_at = utcnow()
        audit.record(
            s,
            actor=actor,
            action=f"rollout.{action}",
            reason=reason,
            before={"rollout_id": rollout.id, "state": state.value},
            after={"rollout_id": rollout.id, "state": rollout.state.value},
        )
        await s.flush()
        await _finish_if_complete(s, rollout, utcnow())
        return await _view(s, rollout)


async def set_cohort(
    db: Database, external_id: str, label: str | None, *, actor: str, reason: str | None
) -> bool:
    """Label a tenant for ``rollout start --cohort`` (``None`` clears it). Not a desired-state
    change (nothing on Fly changes): an audit row only. ``False`` when it had that label already."""
    if label is not None:
        check_cohort(label, "LABEL")
    async with db.transaction() as s:
        tenant = await find_tenant(s, external_id, for_update=True)
        if tenant.cohort == label:
            return False
        before = tenant.cohort
        tenant.cohort = label
        tenant.updated_at = utcnow()
        audit.record(
            s,
            actor=actor,
            action="tenant.cohort",
            tenant_id=tenant.id,
            reason=reason,
            before={"cohort": before},
            after={"cohort": label},
        )
        return True


async def set_image_pin(
    db: Database, external_id: str, image: str | None, *, actor: str, reason: str
) -> bool:
    """Pin a tenant to an image (rollouts skip it) or unpin it (``None``): a desired-state change."""
    if image is not None:
        check_image(image, "IMAGE")
    async with db.transaction() as s:
        tenant = await find_tenant(s, external_id, for_update=True)
        if tenant.image_pin == image:
            return False
        before = tenant.image_pin
        tenant.image_pin = image
        await desired_state_changed(
            s,
            tenant,
            actor=actor,
            action="tenant.image_pin",
            reason=reason,
            before={"image_pin": before},
            after={"image_pin": image},
        )
        return True


# -- the driver ----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class DriverClaim:
    id: str
    state: RolloutState
    batch_size: int
    max_in_flight: int


async def claim_driver(
    db: Database, owner: str, *, now: datetime, lease_seconds: float
) -> DriverClaim | None:
    """Take (or renew) the lease on the active rollout; ``None`` when there is none or another
    worker holds it."""
    until = now + timedelta(seconds=lease_seconds)
    async with db.transaction() as s:
        row = (
            await s.execute(
                update(ROLLOUTS)
                .where(
                    ROLLOUTS.c.active == 1,
                    or_(
                        ROLLOUTS.c.driver_owner.is_(None),
                        ROLLOUTS.c.driver_owner == owner,
                        ROLLOUTS.c.driver_lease_until.is_(None),
                        ROLLOUTS.c.driver_lease_until <= now,
                    ),
                )
                .values(driver_owner=owner, driver_lease_until=until)
                .returning(ROLLOUTS.c.id, ROLLOUTS.c.state, ROLLOUTS.c.batch_size, ROLLOUTS.c.max_in_flight)
            )
        ).first()
    if row is None:
        return None
    return DriverClaim(id=row[0], state=RolloutState(row[1]), batch_size=row[2], max_in_flight=row[3])


async def driver_view(db: Database, rollout_id: str, owner: str, *, now: datetime) -> DriverClaim | None:
    """Between lease renewals: the rollout as the driver needs it (a read), or ``None`` when it is no
    longer active or no longer ours."""
    async with db.read() as s:
        row = (
            await s.execute(
                select(
                    Rollout.id,
                    Rollout.state,
                    Rollout.batch_size,
                    Rollout.max_in_flight,
                    Rollout.driver_owner,
                    Rollout.driver_lease_until,
                    Rollout.active,
                ).where(Rollout.id == rollout_id)
            )
        ).first()
    if row is None or row.active != 1 or row.driver_owner != owner:
        return None
    if row.driver_lease_until is None or row.driver_lease_until <= now:
        return None
    return DriverClaim(id=row.id, state=row.state, batch_size=row.batch_size, max_in_flight=row.max_in_flight)


async def release_driver(db: Database, rollout_id: str, owner: str) -> None:
    async with db.transaction() as s:
        await s.execute(
            update(ROLLOUTS)
            .where(ROLLOUTS.c.id == rollout_id, ROLLOUTS.c.driver_owner == owner)
            .values(driver_owner=None, driver_lease_until=None)
        )


@dataclass(frozen=True, slots=True)
class ItemProgress:
    """One moving item with what the reconciler last recorded of its tenant."""

    tenant_id: str
    external_id: str
    state: RolloutItemState
    target_image: str
    previous_image: str | None
    desired_rev: int | None
    started_at: datetime | None
    applied_at: datetime | None
    lifecycle_state: LifecycleState
    app_name: str | None
    machine_id: str | None
    image_ref: str | None
    observed_rev: int
    parked_reason: str | None
    last_error: str | None

    @property
    def want_image(self) -> str:
        """The image this item waits for: the new one, or the old one while rolling back."""
        if self.state is RolloutItemState.rolling_back:
            return self.previous_image or self.target_image
        return self.target_image


async def in_flight(db: Database, rollout_id: str) -> list[ItemProgress]:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(
                    RolloutItem.tenant_id,
                    Tenant.external_id,
                    RolloutItem.state,
                    RolloutItem.target_image,
                    RolloutItem.previous_image,
                    RolloutItem.desired_rev,
                    RolloutItem.started_at,
                    RolloutItem.applied_at,
                    Tenant.lifecycle_state,
                    FlyResources.app_name,
                    FlyResources.machine_id,
                    FlyResources.image_ref,
                    func.coalesce(FlyResources.observed_rev, 0),
                    ReconcileItem.parked_reason,
                    ReconcileItem.last_error,
                )
                .join(Tenant, Tenant.id == RolloutItem.tenant_id)
                .outerjoin(FlyResources, FlyResources.tenant_id == RolloutItem.tenant_id)
                .outerjoin(ReconcileItem, ReconcileItem.tenant_id == RolloutItem.tenant_id)
                .where(RolloutItem.rollout_id == rollout_id, RolloutItem.state.in_(MOVING))
            )
        ).all()
    return [ItemProgress(*tuple(row)) for row in rows]


async def next_pending(db: Database, rollout_id: str, limit: int) -> list[str]:
    """Up to ``limit`` pending tenants of the current batch: the lowest batch with any item not
    finished. A batch whose items are still moving blocks the next one."""
    if limit <= 0:
        return []
    async with db.read() as s:
        current = await s.scalar(
            select(func.min(RolloutItem.batch)).where(
                RolloutItem.rollout_id == rollout_id, RolloutItem.state.in_(UNFINISHED)
            )
        )
        if current is None:
            return []
        rows = (
            await s.execute(
                select(RolloutItem.tenant_id)
                .where(
                    RolloutItem.rollout_id == rollout_id,
                    RolloutItem.batch == current,
                    RolloutItem.state == RolloutItemState.pending,
                )
                .order_by(RolloutItem.tenant_id)
                .limit(limit)
            )
        ).all()
    return [r[0] for r in rows]


async def begin_items(
    db: Database,
    rollout_id: str,
    tenant_ids: Iterable[str],
    *,
    actor: str,
    now: datetime,
    default_image: str | None = None,
) -> int:
    """Move these pending tenants to the rollout's image: desired image + revision + audit + mark
    and the item's ``in_flight`` in ONE transaction, only while the rollout is running. A tenant
    pinned or deleted since the rollout started is skipped instead. Returns how many started."""
    ids = list(tenant_ids)
    started = 0
    async with db.transaction() as s:
        state = await s.scalar(select(Rollout.state).where(Rollout.id == rollout_id).with_for_update())
        if state is not RolloutState.running:
            return 0
        items = (
            await s.scalars(
                select(RolloutItem).where(
                    RolloutItem.rollout_id == rollout_id,
                    RolloutItem.tenant_id.in_(ids),
                    RolloutItem.state == RolloutItemState.pending,
                )
            )
        ).all()
        tenants = {
            t.id: t
            for t in (await s.scalars(select(Tenant).where(Tenant.id.in_(ids)).with_for_update())).all()
        }
        for item in items:
            tenant = tenants.get(item.tenant_id)
            skip = None
            if tenant is None or tenant.lifecycle_state in (
                LifecycleState.gone,
                LifecycleState.deprovisioning,
            ):
                skip = "deleted since the rollout started"
            elif tenant.image_pin is not None:
                skip = f"pinned to {tenant.image_pin}"
            if skip is not None or tenant is None:
                item.state, item.note, item.finished_at = RolloutItemState.skipped, skip, now
                continue
            item.previous_desired = tenant.desired_image
            if tenant.desired_image is not None or default_image is not None:  # what it runs now
                item.previous_image = tenant.desired_image or default_image
            before = tenant.desired_image
            tenant.desired_image = item.target_image
            await desired_state_changed(
                s,
                tenant,
                actor=actor,
                action="image.rollout",
                reason=f"rollout {rollout_id} batch {item.batch}",
                before={"desired_image": before, "image": item.previous_image},
                after={"desired_image": item.target_image},
            )
            item.state, item.desired_rev, item.started_at = (
                RolloutItemState.in_flight,
                tenant.desired_rev,
                now,
            )
            started += 1
    return started


async def record_applied(db: Database, rollout_id: str, tenant_id: str, now: datetime) -> None:
    """The reconciler applied the image to the machine: the health deadline counts from now."""
    async with db.transaction() as s:
        await s.execute(
            update(ITEMS)
            .where(
                ITEMS.c.rollout_id == rollout_id, ITEMS.c.tenant_id == tenant_id, ITEMS.c.applied_at.is_(None)
            )
            .values(applied_at=now)
        )


async def finish_item(
    db: Database, rollout_id: str, tenant_id: str, state: RolloutItemState, note: str | None, now: datetime
) -> None:
    """A moving item is finished; ``note`` is added to what it said (a failure's reason stays)."""
    values: dict[str, Any] = {"state": state.value, "finished_at": now}
    if note is not None:
        values["note"] = func.coalesce(ITEMS.c.note + "; ", "") + note
    async with db.transaction() as s:
        await s.execute(
            update(ITEMS)
            .where(
                ITEMS.c.rollout_id == rollout_id,
                ITEMS.c.tenant_id == tenant_id,
                ITEMS.c.state.in_([m.value for m in MOVING]),
            )
            .values(**values)
        )


async def fail_item(
    db: Database, rollout_id: str, tenant_id: str, why: str, *, actor: str, now: datetime
) -> None:
    """The tenant failed its checks on the new image: pause the rollout, and put the tenant back on
    the image it had (desired image + revision + audit + mark), all in one transaction."""
    async with db.transaction() as s:
        rollout = await s.get(Rollout, rollout_id, with_for_update=True)
        item = await s.get(RolloutItem, (rollout_id, tenant_id), with_for_update=True)
        if rollout is None or item is None or item.state is not RolloutItemState.in_flight:
            return
        item.state, item.note, item.applied_at = RolloutItemState.rolling_back, why, None
        tenant = await s.get(Tenant, tenant_id, with_for_update=True)
        if tenant is not None and tenant.desired_image == item.target_image:
            tenant.desired_image = item.previous_desired
            await desired_state_changed(
                s,
                tenant,
                actor=actor,
                action="image.rolled_back",
                reason=f"rollout {rollout_id}: {why}",
                before={"desired_image": item.target_image},
                after={"desired_image": item.previous_desired, "image": item.previous_image},
            )
            item.desired_rev, item.started_at = tenant.desired_rev, now
        if rollout.state is RolloutState.running:
            rollout.state = RolloutState.paused
            rollout.reason = f"{why} (tenant {tenant.external_id if tenant else tenant_id}; rolled back)"
            rollout.updated_at = now
            audit.record(
                s,
                actor=actor,
                action="rollout.pause",
                tenant_id=tenant_id,
                reason=rollout.reason,
                before={"rollout_id": rollout_id, "state": "running"},
                after={"rollout_id": rollout_id, "state": "paused"},
            )


async def _finish_if_complete(s: AsyncSession, rollout: Rollout, now: datetime) -> bool:
    left = await s.scalar(
        select(func.count()).where(RolloutItem.rollout_id == rollout.id, RolloutItem.state.in_(UNFINISHED))
    )
    if left:
        return False
    if rollout.state is RolloutState.paused:
        return False  # an operator resumes or aborts it
    if rollout.state is RolloutState.running:
        rollout.state = RolloutState.done
    rollout.active, rollout.finished_at, rollout.updated_at = None, now, now
    rollout.driver_owner, rollout.driver_lease_until = None, None
    audit.record(
        s,
        actor="worker",
        action=f"rollout.{rollout.state.value}",
        reason=rollout.reason,
        after={"rollout_id": rollout.id, "state": rollout.state.value},
    )
    return True


async def finish_if_complete(db: Database, rollout_id: str, now: datetime) -> bool:
    """Close the rollout when nothing is left to move (running -> done; an abort once its updates in
    flight have finished). A paused rollout stays open until resumed or aborted."""
    async with db.transaction() as s:
        rollout = await s.get(Rollout, rollout_id, with_for_update=True)
        if rollout is None or rollout.active != 1:
            return False
        return await _finish_if_complete(s, rollout, now)


__all__ = [
    "DriverClaim",
    "ItemProgress",
    "RolloutView",
    "TenantNote",
    "begin_items",
    "bucket",
    "change_state",
    "check_cohort",
    "check_image",
    "claim_driver",
    "driver_view",
    "fail_item",
    "finish_if_complete",
    "finish_item",
    "in_flight",
    "next_pending",
    "read_status",
    "record_applied",
    "release_driver",
    "set_cohort",
    "set_image_pin",
    "start_rollback",
    "start_rollout",
]
