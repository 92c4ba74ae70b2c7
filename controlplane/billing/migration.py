"""Plan migration: move subscribers from old plans to new ones on Stripe and in the fleet, safely.

The map names old -> new plan ids (``free = "starter"``, ``starter = "pro"`` ...; new plans must be in
the catalog, old ones need not be). Its migration id is derived from the map, so running the same
map again resumes the same migration. Each subscription moves once per migration: tenants are picked
when first planned (``plan_migration_items``), so with ``starter -> pro`` and ``pro -> power`` in one
map, a starter tenant ends on pro, not on power.

Per subscription (forward; ``--reverse`` is the mirror image back to the recorded old price):

1. read the subscription from Stripe; in one transaction record its current (old) price the first
   time, and the idempotency key ``<migration>:<subscription>:<direction>:<round>`` BEFORE any
   write (a resumed run reuses it, so Stripe replays instead of charging twice);
2. unless the subscription already has the new price (a run interrupted after Stripe switched), move
   its item to the new price with ``proration_behavior=always_invoice`` under that key;
3. one transaction: the tenant's plan, an announcement, the key grace where the new plan is BYOK
   and no usable key exists (:mod:`.keygrace`), the desired-state change (actor ``cli:<user>``) and
   the item marked done -- so no tenant is ever left halfway.

Nothing is deleted: items keep what was done and when; a reverse bumps the round (new keys).
A failed subscription (Stripe down after retries) stays where it was and is picked up by the next
run. Only one run of a migration works at a time (a lease on the ``plan_migrations`` row).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import re
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import PLAN_ID_PATTERN, PlanCatalog
from controlplane.billing import entitlement
from controlplane.billing._sql import insert_for, table_of
from controlplane.billing.banners import set_banner
from controlplane.billing.changes import commit_change, lock_tenant, snapshot
from controlplane.billing.entitlement import parse_status
from controlplane.billing.keygrace import KEY_GRACE, has_usable_key, start_key_grace
from controlplane.billing.stripe_client import (
    StripeClient,
    StripeNotFound,
    StripeRejected,
    StripeUnavailable,
    Subscription,
)
from controlplane.clock import Clock, SystemClock
from controlplane.db.models import Announcement, PlanMigration, PlanMigrationItem, Tenant
from controlplane.db.session import Database
from controlplane.enums import BannerKind, DesiredPower, MigrationItemState
from controlplane.errors import BadInput, Refused
from controlplane.limits import (
    InputRefused,
    Limits,
    name_or_given,
    parse_json_bytes,
    parse_toml_bytes,
    read_file,
)

log = structlog.get_logger(__name__)

MAX_MAP_BYTES = 64 * 1024
LOCK_TTL = timedelta(minutes=10)
S = MigrationItemState
#: Item states a direction still has to work on, and the state it ends in.
TODO = {False: (S.planned, S.switching, S.reversed), True: (S.switching, S.done, S.reversing)}
IN_FLIGHT = {False: S.switching, True: S.reversing}
FINAL = {False: S.done, True: S.reversed}


# -- the map ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PlanMap:
    """old plan id -> new plan id."""

    moves: Mapping[str, str]

    @property
    def migration_id(self) -> str:
        canonical = json.dumps(dict(sorted(self.moves.items())), separators=(",", ":"))
        return "mig_" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def load_plan_map(path: Path, catalog: PlanCatalog) -> PlanMap:
    """Read a map file (JSON object or TOML, optionally under a ``map`` key). Raises
    :class:`BadInput` naming ``--map`` and what is wrong."""
    bounds = Limits(max_bytes=MAX_MAP_BYTES)
    try:
        raw = read_file(path, bounds, subject=path.name)
        data: Any = (
            parse_json_bytes(raw, path.name, bounds)
            if path.suffix.lower() == ".json"
            else parse_toml_bytes(raw, path.name, bounds)
        )
    except InputRefused as exc:
        raise BadInput("--map", str(exc)) from None
    if isinstance(data, dict) and isinstance(data.get("map"), dict):
        data = data["map"]
    if not isinstance(data, dict) or not data:
        raise BadInput("--map", f"{path.name}: expected a table of old plan id = new plan id")
    pattern = re.compile(PLAN_ID_PATTERN)
    moves: dict[str, str] = {}
    for old, new in data.items():
        if not isinstance(new, str):
            raise BadInput(
                "--map", f"{path.name}: {name_or_given(old)}: the new plan must be a plan id string"
            )
        if not pattern.match(old) or not pattern.match(new):
            raise BadInput(
                "--map",
                f"{path.name}: {name_or_given(old)} -> {name_or_given(new)}: not plan ids ({PLAN_ID_PATTERN})",
            )
        if old == new:
            raise BadInput("--map", f"{path.name}: {name_or_given(old)} maps to itself")
        if new not in catalog.plans:
            raise BadInput(
                "--map",
                f"{path.name}: new plan {name_or_given(new)} is not in catalog {catalog.name!r} ({', '.join(catalog.plan_ids)})",
            )
        moves[old] = new
    return PlanMap(moves)


# -- the dry run --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Move:
    """One row of the dry-run table."""

    tenant_id: str
    external_id: str
    subscription_id: str
    from_plan: str
    to_plan: str
    now_cents: int | None  # what the subscription costs now, per month
    next_cents: int | None  # what it will cost from next month
    prorated_now_cents: int | None  # charged (or credited, < 0) at once by the switch (estimate)
    currency: str
    key_grace: bool  # moves to a BYOK plan without a usable key: 30 days on the platform key
    state: str  # planned / switching / done ... in this migration
    note: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


def prorated_cents(sub: Subscription, new_cents: int, now: datetime) -> int | None:
    """The immediate proration Stripe invoices for switching ``sub`` to ``new_cents`` now."""
    item = sub.item
    if (
        item is None
        or item.price.unit_amount is None
        or not item.current_period_end
        or not item.current_period_start
    ):
        return None
    length = max(1, item.current_period_end - item.current_period_start)
    left = min(1.0, max(0.0, (item.current_period_end - now.timestamp()) / length))
    return round((new_cents - item.price.unit_amount) * left)


async def _candidates(session: AsyncSession, plan_map: PlanMap) -> list[Tenant]:
    rows = await session.scalars(
        select(Tenant)
        .where(
            Tenant.plan.in_(list(plan_map.moves)),
            Tenant.stripe_subscription_id.isnot(None),
            Tenant.billing_status.notin_(list(entitlement.ENDED)),
            Tenant.desired_power != DesiredPower.gone,
        )
        .order_by(Tenant.id)
    )
    return list(rows)


@dataclass(frozen=True, slots=True)
class _Who:
    """What the dry run shows of a tenant (plain values: usable after the read transaction)."""

    id: str
    external_id: str
    plan: str
    stripe_subscription_id: str | None

    @classmethod
    def of(cls, tenant: Tenant) -> _Who:
        return cls(tenant.id, tenant.external_id, tenant.plan, tenant.stripe_subscription_id)


# -- the run ------------------------------------------------------------------------------------


@dataclass(slots=True)
class MigrationReport:
    migration_id: str
    reverse: bool
    total: int = 0  # items this run worked on
    done: int = 0
    already: int = 0  # Stripe had the target price already (a resumed run): no write sent
    failed: int = 0
    skipped: int = 0
    errors: list[str] = field(default_factory=list)


class Migrator:
    """Runs one plan map forward or in reverse (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        stripe: StripeClient,
        catalog: PlanCatalog,
        plan_map: PlanMap,
        *,
        actor: str,
        clock: Clock | None = None,
        concurrency: int = 8,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.stripe = stripe
        self.catalog = catalog
        self.plan_map = plan_map
        self.actor = actor
        self.clock: Clock = clock or SystemClock()
        self.concurrency = max(1, concurrency)
        self.owner = owner or f"{actor}:{uuid.uuid4().hex[:8]}"
        self.id = plan_map.migration_id

    # -- dry run --------------------------------------------------------------------------------
    async def dry_run(self, *, reverse: bool = False) -> list[Move]:
        """Who moves where and what they pay, read from Stripe; changes nothing."""
        now = self.clock.now()
        async with self.db.read() as session:
            items = {
                item.subscription_id: item
                for item in await session.scalars(
                    select(PlanMigrationItem).where(PlanMigrationItem.migration_id == self.id)
                )
            }
            todo = [i for i in items.values() if i.state in TODO[reverse]]
            found = await session.scalars(select(Tenant).where(Tenant.id.in_([i.tenant_id for i in todo])))
            tenants = {t.id: _Who.of(t) for t in found}
            pairs: list[tuple[_Who, PlanMigrationItem | None]] = [
                (tenants[i.tenant_id], i) for i in todo if i.tenant_id in tenants
            ]
            if not reverse:
                pairs += [
                    (_Who.of(t), None)
                    for t in await _candidates(session, self.plan_map)
                    if t.stripe_subscription_id not in items
                ]
            keyless = {w.id for w, _ in pairs if not await has_usable_key(session, w.id)}
            session.expunge_all()  # the items stay readable after the read-only transaction ends
        gate = asyncio.Semaphore(self.concurrency)

        async def one(tenant: _Who, item: PlanMigrationItem | None) -> Move:
            sub_id = item.subscription_id if item else tenant.stripe_subscription_id
            assert sub_id is not None
            if item is None:
                from_plan, to_plan = tenant.plan, self.plan_map.moves[tenant.plan]
            elif reverse:
                from_plan, to_plan = item.to_plan, item.from_plan
            else:
                from_plan, to_plan = item.from_plan, item.to_plan
            target = self.catalog.plans.get(to_plan)
            next_cents = target.monthly_price_cents if target else (item.from_amount if item else None)
            note, sub = "", None
            async with gate:
                try:
                    sub = await self.stripe.retrieve_subscription(sub_id)
                except (StripeUnavailable, StripeRejected, StripeNotFound) as exc:
                    note = f"not read from Stripe: {exc.reason}"
            return Move(
                tenant_id=tenant.id,
                external_id=tenant.external_id,
                subscription_id=sub_id,
                from_plan=from_plan,
                to_plan=to_plan,
                now_cents=sub.item.price.unit_amount if sub and sub.item else None,
                next_cents=next_cents,
                prorated_now_cents=prorated_cents(sub, next_cents, now)
                if sub and next_cents is not None
                else None,
                currency=sub.item.price.currency if sub and sub.item else "usd",
                key_grace=not reverse
                and target is not None
                and target.key_mode == "byok"
                and tenant.id in keyless,
                state=item.state.value if item else "not planned",
                note=note,
            )

        rows = await asyncio.gather(*(one(t, i) for t, i in pairs))
        return sorted(rows, key=lambda m: (m.from_plan, m.external_id))

    # -- real run -------------------------------------------------------------------------------
    async def run(
        self,
        *,
        reverse: bool = False,
        batch: int = 100,
        on_total: Callable[[int], None] | None = None,
        on_batch: Callable[[int], None] | None = None,
    ) -> MigrationReport:
        report = MigrationReport(self.id, reverse)
        await self._lock()
        try:
            if not reverse:
                await self._plan()
            async with self.db.read() as session:
                subs = list(
                    await session.scalars(
                        select(PlanMigrationItem.subscription_id)
                        .where(
                            PlanMigrationItem.migration_id == self.id,
                            PlanMigrationItem.state.in_(TODO[reverse]),
                        )
                        .order_by(PlanMigrationItem.subscription_id)
                    )
                )
            report.total = len(subs)
            if on_total:
                on_total(len(subs))
            gate = asyncio.Semaphore(self.concurrency)

            async def one(sub_id: str) -> None:
                async with gate:
                    await self._move(sub_id, reverse, report)

            for start in range(0, len(subs), max(1, batch)):
                chunk = subs[start : start + batch]
                async with asyncio.TaskGroup() as tasks:  # one dies -> the others are cancelled, not orphaned
                    for sub_id in chunk:
                        tasks.create_task(one(sub_id))
                await self._lock()  # refresh the lease between batches
                if on_batch:
                    on_batch(len(chunk))
        finally:
            await self._unlock()
        log.info(
            "billing.migration_run",
            migration_id=self.id,
            reverse=reverse,
            total=report.total,
            done=report.done,
            failed=report.failed,
            skipped=report.skipped,
        )
        return report

    async def _lock(self) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            await session.execute(
                insert_for(session, table_of(PlanMigration))
                .values(
                    id=self.id,
                    mapping=dict(self.plan_map.moves),
                    created_by=self.actor,
                    created_at=now,
                    updated_at=now,
                )
                .on_conflict_do_nothing(index_elements=["id"])
            )
            stmt = (
                select(PlanMigration)
                .where(PlanMigration.id == self.id)
                .execution_options(populate_existing=True)
            )
            if self.db.dialect == "postgresql":
                stmt = stmt.with_for_update()
            row = await session.scalar(stmt)
            assert row is not None
            if (
                row.lock_owner not in (None, self.owner)
                and row.lock_expires_at is not None
                and row.lock_expires_at > now
            ):
                raise Refused(
                    "plans migrate",
                    f"migration {self.id} is being run by {row.lock_owner} (lease until "
                    f"{row.lock_expires_at:%Y-%m-%d %H:%M:%S} UTC); wait for it or let the lease expire",
                )
            row.lock_owner = self.owner
            row.lock_expires_at = now + LOCK_TTL
            row.updated_at = now

    async def _unlock(self) -> None:
        async with self.db.transaction() as session:
            row = await session.get(PlanMigration, self.id)
            if row is not None and row.lock_owner == self.owner:
                row.lock_owner = None
                row.lock_expires_at = None

    async def _plan(self) -> None:
        """Add every current candidate not yet in this migration (idempotent)."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            known = set(
                await session.scalars(
                    select(PlanMigrationItem.subscription_id).where(PlanMigrationItem.migration_id == self.id)
                )
            )
            rows = [
                {
                    "migration_id": self.id,
                    "subscription_id": t.stripe_subscription_id,
                    "tenant_id": t.id,
                    "from_plan": t.plan,
                    "to_plan": self.plan_map.moves[t.plan],
                    "to_price_id": self.catalog.plans[self.plan_map.moves[t.plan]].stripe_price_id,
                    "to_amount": self.catalog.plans[self.plan_map.moves[t.plan]].monthly_price_cents,
                    "from_price_id": None,
                    "from_amount": None,
                    "currency": None,
                    "state": S.planned.value,
                    "round": 0,
                    "idempotency_key": None,
                    "key_grace_started": False,
                    "attempts": 0,
                    "last_error": None,
                    "done_at": None,
                    "updated_at": now,
                }
                for t in await _candidates(session, self.plan_map)
                if t.stripe_subscription_id not in known
            ]
            for start in range(0, len(rows), 500):
                await session.execute(
                    insert_for(session, table_of(PlanMigrationItem))
                    .values(rows[start : start + 500])
                    .on_conflict_do_nothing(index_elements=["migration_id", "subscription_id"])
                )

    async def _move(self, sub_id: str, reverse: bool, report: MigrationReport) -> None:
        try:
            sub = await self.stripe.retrieve_subscription(sub_id)
            key, target_price = await self._prepare(sub, reverse)
            if key is None or target_price is None:
                report.skipped += 1
                return
            if sub.price_id == target_price:
                report.already += 1
            else:
                assert sub.item is not None
                sub = await self.stripe.switch_price(sub_id, sub.item.id, target_price, idempotency_key=key)
            await self._finish(sub, reverse)
            report.done += 1
        except (StripeUnavailable, StripeRejected, StripeNotFound) as exc:
            report.failed += 1
            report.errors.append(f"{sub_id}: {exc}")
            async with self.db.transaction() as session:
                item = await session.get(PlanMigrationItem, (self.id, sub_id))
                if item is not None:
                    item.attempts += 1
                    item.last_error = str(exc)[:2000]
                    item.updated_at = self.clock.now()
            log.warning(
                "billing.migration_item_failed", migration_id=self.id, subscription_id=sub_id, error=str(exc)
            )

    async def _prepare(self, sub: Subscription, reverse: bool) -> tuple[str | None, str | None]:
        """Record the old price (first time) and the idempotency key for this direction and round,
        committed BEFORE the Stripe write. Returns (key, target price); (None, None) to skip."""
        now = self.clock.now()
        async with self.db.transaction() as session:
            item = await session.get(PlanMigrationItem, (self.id, sub.id), populate_existing=True)
            if item is None or item.state not in TODO[reverse]:
                return None, None
            if item.from_price_id is None and sub.item is not None:
                if sub.price_id != item.to_price_id:
                    item.from_price_id = sub.price_id
                    item.from_amount = sub.item.price.unit_amount
                else:  # already on the new price before we switched anything: the catalog's old price
                    old = self.catalog.plans.get(item.from_plan)
                    item.from_price_id = old.stripe_price_id if old else None
                    item.from_amount = old.monthly_price_cents if old else None
                item.currency = sub.item.price.currency
            target = item.from_price_id if reverse else item.to_price_id
            if target is None:
                item.last_error = "the old price is unknown: cannot reverse"
                return None, None
            if parse_status(sub.status) in entitlement.ENDED and sub.price_id != target:
                item.last_error = f"subscription is {sub.status}: not switched"
                item.updated_at = now
                return None, None
            if item.state is not IN_FLIGHT[reverse]:
                if item.state is not S.planned:
                    item.round += 1
                item.state = IN_FLIGHT[reverse]
                item.idempotency_key = (
                    f"{self.id}:{sub.id}:{'reverse' if reverse else 'forward'}:{item.round}"
                )
            item.updated_at = now
            return item.idempotency_key, target

    async def _finish(self, sub: Subscription, reverse: bool) -> None:
        now = self.clock.now()
        async with self.db.transaction() as session:
            item = await session.get(PlanMigrationItem, (self.id, sub.id), populate_existing=True)
            assert item is not None
            tenant = await lock_tenant(session, item.tenant_id)
            new_plan = item.from_plan if reverse else item.to_plan
            if tenant is not None and tenant.stripe_subscription_id == sub.id:
                before = snapshot(tenant)
                tenant.plan = new_plan
                if not reverse:
                    plan = self.catalog.plans[new_plan]
                    if plan.key_mode == "byok" and await start_key_grace(session, tenant, now):
                        item.key_grace_started = True
                elif item.key_grace_started and tenant.key_grace_until is not None:
                    tenant.key_grace_until = None
                    tenant.key_grace_started_at = None
                    item.key_grace_started = False
                    await set_banner(
                        session,
                        tenant.id,
                        BannerKind.key_missing,
                        active=False,
                        now=now,
                        actor=self.actor,
                        reason=f"migration {self.id} reversed",
                    )
                session.add(self._announcement(tenant, item, reverse, now))
                await commit_change(
                    session,
                    tenant,
                    before,
                    now,
                    actor=self.actor,
                    action="billing.plan_migration_reversed" if reverse else "billing.plan_migrated",
                    reason=f"migration {self.id}: {item.to_plan if reverse else item.from_plan} -> {new_plan}",
                )
            item.state = FINAL[reverse]
            item.done_at = now
            item.last_error = None
            item.updated_at = now

    def _announcement(
        self, tenant: Tenant, item: PlanMigrationItem, reverse: bool, now: datetime
    ) -> Announcement:
        new_plan = item.from_plan if reverse else item.to_plan
        plan = self.catalog.plans.get(new_plan)
        name = plan.display_name if plan else new_plan
        price = f" (${plan.monthly_price_cents / 100:.2f}/month)" if plan else ""
        body = f"Your subscription is now on the {name} plan{price}."
        if not reverse and item.key_grace_started:
            until = (tenant.key_grace_until or now + KEY_GRACE).astimezone(UTC)
            body += (
                f" Your agent keeps running on our AI key until {until:%Y-%m-%d}: add your own provider key "
                "before then to keep it running."
            )
        return Announcement(
            tenant_id=tenant.id,
            kind="plan_migration",
            title=f"Your plan is now {name}",
            body=body,
            source=f"migration:{self.id}{':reverse' if reverse else ''}",
            created_at=now,
        )


__all__ = [
    "LOCK_TTL",
    "MAX_MAP_BYTES",
    "MigrationReport",
    "Migrator",
    "Move",
    "PlanMap",
    "load_plan_map",
    "prorated_cents",
]
