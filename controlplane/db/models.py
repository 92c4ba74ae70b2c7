"""Typed SQLAlchemy 2 ORM models: the control plane's whole schema.

Desired state lives on :class:`Tenant` (plan, billing, lifecycle, ``desired_rev`` ...); what was last
seen on Fly lives on :class:`FlyResources`. No column ever holds a plaintext secret: secrets are vault
ciphertexts in :class:`Secret`, and every other table carries only display metadata (last four
characters, keyed fingerprint). ``__repr__`` of every model prints ids only.

Schema changes go through a new Alembic migration (``controlplane/db/migrations/versions``); the test
suite runs ``alembic check`` against both SQLite and PostgreSQL to catch drift.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Enum,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from controlplane.db.types import UTCDateTime
from controlplane.enums import (
    BannerKind,
    BillingStatus,
    DesiredPower,
    KeyStatus,
    KeyVerdict,
    LifecycleState,
    MigrationItemState,
    RolloutItemState,
    RolloutState,
    RoutingStrategy,
    UsageService,
)

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    """A new opaque row id (UUID4 hex, 32 chars)."""
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}

    def __repr__(self) -> str:  # ids only: never any column that could hold sensitive data
        pk = ",".join(str(getattr(self, c.key or "", "?")) for c in self.__mapper__.primary_key)
        return f"<{type(self).__name__} {pk}>"


# ----------------------------------------------------------------------------------------------
# Enumerations (controlplane/enums.py) are stored as strings with a CHECK constraint on every backend


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=32,
        validate_strings=True,
        values_callable=lambda e: [m.value for m in e],
    )


# ----------------------------------------------------------------------------------------------
# Tenants and their desired state


class Tenant(Base):
    """One end user: the desired state of their agent."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    external_id: Mapped[str] = mapped_column(String(255), unique=True)
    plan: Mapped[str] = mapped_column(String(64))
    billing_status: Mapped[BillingStatus] = mapped_column(
        _enum(BillingStatus, "billing_status"), default=BillingStatus.none
    )
    lifecycle_state: Mapped[LifecycleState] = mapped_column(
        _enum(LifecycleState, "lifecycle_state"), default=LifecycleState.pending, index=True
    )
    desired_power: Mapped[DesiredPower] = mapped_column(
        _enum(DesiredPower, "desired_power"), default=DesiredPower.running
    )
    desired_rev: Mapped[int] = mapped_column(Integer, default=1)
    region: Mapped[str] = mapped_column(String(16))
    image_pin: Mapped[str | None] = mapped_column(String(512))
    # The image a rollout moved this tenant to (NULL: CP_OPENCLAW_IMAGE); image_pin wins over it.
    desired_image: Mapped[str | None] = mapped_column(String(512))
    cohort: Mapped[str | None] = mapped_column(String(64), index=True)  # rollout cohort label
    model_preference: Mapped[str | None] = mapped_column(String(255))
    routing_strategy: Mapped[RoutingStrategy] = mapped_column(
        _enum(RoutingStrategy, "routing_strategy"), default=RoutingStrategy.balanced
    )
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), index=True)
    stripe_subscription_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    billing_grace_until: Mapped[datetime | None]
    key_grace_until: Mapped[datetime | None]
    key_grace_started_at: Mapped[datetime | None]  # key grace reminders count days from here
    # Retention: a stopped tenant whose resources are destroyed once this passes (cancel, delete).
    destroy_after: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("desired_rev >= 1", name="desired_rev_positive"),)

    provider_keys: Mapped[list[ProviderKey]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", passive_deletes=True
    )
    channels: Mapped[list[Channel]] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", passive_deletes=True
    )
    fly: Mapped[FlyResources | None] = relationship(
        back_populates="tenant", cascade="all, delete-orphan", passive_deletes=True
    )


class Secret(Base):
    """One vault ciphertext, bound (by AEAD associated data) to its tenant and name.

    ``value`` is the whole stored form ``v1:<key_id>:<base64(nonce|ciphertext|tag)>``; ``key_id`` is
    duplicated in its own column so rotation can find rows not yet on the primary key, and
    ``version`` increases on every write so rotation can compare-and-swap.
    """

    __tablename__ = "secrets"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(128))
    key_id: Mapped[str] = mapped_column(String(32), index=True)
    value: Mapped[str] = mapped_column(Text)
    version: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "name"),)


class ProviderKey(Base):
    """A tenant's BYOK key for one provider: display metadata and health; ciphertext in Secret."""

    __tablename__ = "provider_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(32))
    secret_id: Mapped[str] = mapped_column(ForeignKey("secrets.id", ondelete="CASCADE"), unique=True)
    last4: Mapped[str] = mapped_column(String(4))
    fingerprint: Mapped[str] = mapped_column(String(64))
    verdict: Mapped[KeyVerdict] = mapped_column(_enum(KeyVerdict, "key_verdict"))
    status: Mapped[KeyStatus] = mapped_column(_enum(KeyStatus, "key_status"))
    message: Mapped[str | None] = mapped_column(Text)
    region: Mapped[str | None] = mapped_column(String(16))  # Moonshot / MiniMax regional keys
    last_checked_at: Mapped[datetime | None]
    next_check_at: Mapped[datetime | None] = mapped_column(index=True)
    consecutive_failures: Mapped[int] = mapped_column(Integer, default=0)
    # Key type flags from the last definite check (trial_key, free_tier, unproven, ...), or None.
    flags: Mapped[list[str] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("tenant_id", "provider"),
        CheckConstraint("consecutive_failures >= 0", name="failures_non_negative"),
    )

    tenant: Mapped[Tenant] = relationship(back_populates="provider_keys")


class Channel(Base):
    """A chat channel the tenant connected (telegram, discord, slack ...). Tokens live in Secret."""

    __tablename__ = "channels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(32))
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)  # non-secret options only
    secret_id: Mapped[str | None] = mapped_column(ForeignKey("secrets.id", ondelete="SET NULL"))
    # What the agent itself last said about the channel (health introspection, e.g. WhatsApp
    # "linked" / "unlinked"); NULL until the poller has looked.
    observed_state: Mapped[str | None] = mapped_column(String(32))
    observed_detail: Mapped[str | None] = mapped_column(Text)
    observed_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "kind"),)

    tenant: Mapped[Tenant] = relationship(back_populates="channels")


# ----------------------------------------------------------------------------------------------
# What exists on Fly (observed state)


class FlyResources(Base):
    """The tenant's Fly app, volume and machine, and what was last applied/observed.

    Ids are written the moment Fly returns them (invariant 1). ``machine_create_tag`` is the unique
    metadata tag of an in-flight create (invariant 2). ``pending_destroy`` records what a two-phase
    destroy is deleting (invariant 3).
    """

    __tablename__ = "fly_resources"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    app_name: Mapped[str | None] = mapped_column(String(63), unique=True)
    volume_id: Mapped[str | None] = mapped_column(String(64))
    machine_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    instance_id: Mapped[str | None] = mapped_column(String(64))
    machine_create_tag: Mapped[str | None] = mapped_column(String(128))
    observed_rev: Mapped[int] = mapped_column(Integer, default=0)
    config_hash: Mapped[str | None] = mapped_column(String(80))  # "sha256:<64 hex>"
    secrets_version: Mapped[int | None] = mapped_column(BigInteger)
    secrets_digest: Mapped[str | None] = mapped_column(String(80))
    observed_state: Mapped[str | None] = mapped_column(String(32))
    observed_at: Mapped[datetime | None]
    image_ref: Mapped[str | None] = mapped_column(String(512))
    pending_destroy: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    volume_size_gb: Mapped[int | None] = mapped_column(Integer)
    # Tag of an in-flight volume create: set before the call, so a retry looks the volume up first.
    volume_create_tag: Mapped[str | None] = mapped_column(String(128))
    # Fly's digest of each app secret as of our last push (name -> digest; never values): names that
    # left the config are unset, and a digest Fly shows differently was changed by hand.
    secret_digests: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    tenant: Mapped[Tenant] = relationship(back_populates="fly")


# ----------------------------------------------------------------------------------------------
# The reconcile queue: tenant keys, not events


class ReconcileItem(Base):
    """The reconcile state of one tenant: when it is due, who holds it, how the last run ended.

    One row per tenant, kept for its whole life (``controlplane/db/queue.py`` owns every statement on
    this table). ``due_at`` NULL means nothing to do. A claim takes a lease (``lease_owner``,
    ``lease_expires_at``) and bumps ``lease_generation``, the fencing token every later write of that
    run must match, so a worker that lost its lease changes nothing. ``priority`` 1 marks an explicit
    request (user, operator, billing), served before background resyncs. A parked tenant
    (``parked_reason``) is not claimed until an explicit mark.
    """

    __tablename__ = "reconcile_queue"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    due_at: Mapped[datetime | None] = mapped_column(index=True)
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    reason: Mapped[str | None] = mapped_column(String(255))
    marked_at: Mapped[datetime] = mapped_column(default=utcnow)
    requeue: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    lease_generation: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), default=0)
    parked_reason: Mapped[str | None] = mapped_column(Text)
    parked_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    last_outcome: Mapped[str | None] = mapped_column(String(16))
    last_run_at: Mapped[datetime | None]
    last_duration_ms: Mapped[int | None] = mapped_column(Integer)

    __table_args__ = (
        CheckConstraint("attempts >= 0", name="attempts_non_negative"),
        CheckConstraint("priority IN (0, 1)", name="priority_known"),
    )


class JobRun(Base):
    """One period of one periodic job (resync, key re-validation, grace reminders ...).

    The row is the claim: whoever inserts it (or takes it over after its lease expired unfinished)
    runs that period, so a period runs exactly once across any number of worker processes, and a run
    that crashed is run again in the same period. ``workers/scheduler.py`` owns its statements.
    """

    __tablename__ = "job_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    period: Mapped[str] = mapped_column(String(32), primary_key=True)  # the period's start, ISO UTC
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


# ----------------------------------------------------------------------------------------------
# Billing, dashboard, audit


class StripeEvent(Base):
    """A Stripe webhook event seen once (dedupe on ``id``)."""

    __tablename__ = "stripe_events"

    id: Mapped[str] = mapped_column(String(255), primary_key=True)
    type: Mapped[str] = mapped_column(String(128))
    created: Mapped[int] = mapped_column(BigInteger)  # Stripe's event.created (unix seconds)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="SET NULL"), index=True)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    processed_at: Mapped[datetime | None]
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)


class BillingSyncItem(Base):
    """One Stripe subscription to read again (the billing sync queue: subscription ids, not events).

    A webhook marks the subscription; a job claims it with a lease, re-reads the subscription from
    Stripe and makes the tenant follow it. Same shape as ``reconcile_queue``: marking a waiting
    subscription is a no-op, marking a leased one sets ``requeue``. ``tenant_ref`` is the operator's
    external id from a checkout (``client_reference_id``), kept until the tenant exists.
    """

    __tablename__ = "billing_sync_queue"

    subscription_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    customer_id: Mapped[str | None] = mapped_column(String(255))
    tenant_ref: Mapped[str | None] = mapped_column(String(255))
    last_event_id: Mapped[str | None] = mapped_column(String(255))
    reason: Mapped[str | None] = mapped_column(String(255))
    run_after: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    requeue: Mapped[bool] = mapped_column(Boolean, default=False)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    enqueued_at: Mapped[datetime] = mapped_column(default=utcnow)


class BillingNotice(Base):
    """A billing notice to one tenant (key grace reminder, grace expiry ...), recorded exactly once
    (``dedupe_key`` is unique) and delivered to the operator's mailer webhook (an outbox: claimed
    with a lease, retried with backoff until ``delivered_at`` is set)."""

    __tablename__ = "billing_notices"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    deliver_after: Mapped[datetime] = mapped_column(default=utcnow)
    delivered_at: Mapped[datetime | None]
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    lease_owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)

    __table_args__ = (Index("ix_billing_notices_outbox", "delivered_at", "deliver_after"),)


class PlanMigration(Base):
    """One plan migration (``controlplane plans migrate``): its map and who ran it. The id is
    derived from the map, so running the same map again resumes it. ``lock_owner`` keeps two runs
    of one migration from working at once."""

    __tablename__ = "plan_migrations"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    mapping: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lock_owner: Mapped[str | None] = mapped_column(String(128))
    lock_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class PlanMigrationItem(Base):
    """Progress of one subscription in a plan migration: what it moved from and to, the Stripe
    idempotency key in use (stored BEFORE the call, so a resumed run repeats the same request and
    Stripe never charges twice) and where it stands."""

    __tablename__ = "plan_migration_items"

    migration_id: Mapped[str] = mapped_column(
        ForeignKey("plan_migrations.id", ondelete="CASCADE"), primary_key=True
    )
    subscription_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), index=True)  # kept even if the tenant goes
    from_plan: Mapped[str] = mapped_column(String(64))
    to_plan: Mapped[str] = mapped_column(String(64))
    from_price_id: Mapped[str | None] = mapped_column(String(255))
    to_price_id: Mapped[str] = mapped_column(String(255))
    from_amount: Mapped[int | None] = mapped_column(BigInteger)
    to_amount: Mapped[int | None] = mapped_column(BigInteger)
    currency: Mapped[str | None] = mapped_column(String(3))
    state: Mapped[MigrationItemState] = mapped_column(
        _enum(MigrationItemState, "migration_item_state"), default=MigrationItemState.planned
    )
    round: Mapped[int] = mapped_column(Integer, default=0)  # +1 on every change of direction
    idempotency_key: Mapped[str | None] = mapped_column(String(255))
    key_grace_started: Mapped[bool] = mapped_column(Boolean, default=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    done_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Rollout(Base):
    """An image rollout: the image, how tenants were chosen, batch size and in-flight cap, its state.
    ``active`` is 1 while running or paused and NULL otherwise: its unique constraint keeps a second
    active rollout out on every backend. The worker that drives it holds ``driver_owner`` until
    ``driver_lease_until`` (renewed each step; taken over when it expires)."""

    __tablename__ = "rollouts"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    image: Mapped[str] = mapped_column(String(512))
    selector: Mapped[dict[str, Any]] = mapped_column(default=dict)
    batch_size: Mapped[int] = mapped_column(Integer)
    max_in_flight: Mapped[int] = mapped_column(Integer)
    state: Mapped[RolloutState] = mapped_column(_enum(RolloutState, "rollout_state"))
    active: Mapped[int | None] = mapped_column(SmallInteger, unique=True)
    reason: Mapped[str | None] = mapped_column(Text)  # why it is paused / aborted
    rollback_of: Mapped[str | None] = mapped_column(String(32))
    total: Mapped[int] = mapped_column(Integer, default=0)
    created_by: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    finished_at: Mapped[datetime | None]
    driver_owner: Mapped[str | None] = mapped_column(String(128))
    driver_lease_until: Mapped[datetime | None]


class RolloutItem(Base):
    """One tenant in a rollout: its batch, the image it moves to and the one it had (for a rollback),
    the desired revision the change made, and where it stands."""

    __tablename__ = "rollout_items"

    rollout_id: Mapped[str] = mapped_column(ForeignKey("rollouts.id", ondelete="CASCADE"), primary_key=True)
    tenant_id: Mapped[str] = mapped_column(String(32), primary_key=True, index=True)
    batch: Mapped[int] = mapped_column(Integer)
    state: Mapped[RolloutItemState] = mapped_column(_enum(RolloutItemState, "rollout_item_state"))
    target_image: Mapped[str] = mapped_column(String(512))
    previous_image: Mapped[str | None] = mapped_column(String(512))
    previous_desired: Mapped[str | None] = mapped_column(String(512))  # tenants.desired_image before
    desired_rev: Mapped[int | None] = mapped_column(Integer)
    note: Mapped[str | None] = mapped_column(Text)
    started_at: Mapped[datetime | None]
    applied_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]

    __table_args__ = (Index("ix_rollout_items_progress", "rollout_id", "state", "batch"),)


class Banner(Base):
    """A dashboard banner for a tenant. Raised after several consecutive bad observations and
    cleared automatically once the cause is gone (``cleared_at`` set; the row is reused)."""

    __tablename__ = "banners"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"))
    kind: Mapped[BannerKind] = mapped_column(_enum(BannerKind, "banner_kind"))
    message: Mapped[str] = mapped_column(Text, default="")
    # What the banner is about when a kind can concern several things: a provider id (key_invalid,
    # key_no_credit) or a channel kind (channel_down); "" for tenant-wide banners (part of the
    # unique key, so never NULL: NULLs would not collide).
    subject: Mapped[str] = mapped_column(String(64), default="")
    consecutive_bad: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    raised_at: Mapped[datetime | None]
    cleared_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (UniqueConstraint("tenant_id", "kind", "subject"),)


class Announcement(Base):
    """A message for the dashboard (e.g. "your plan moved to pro"); ``tenant_id`` NULL = everyone."""

    __tablename__ = "announcements"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str | None] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(255))
    body: Mapped[str] = mapped_column(Text)
    source: Mapped[str | None] = mapped_column(String(255))  # e.g. "migration:<id>"
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    dismissed_at: Mapped[datetime | None]


class AnnouncementDismissal(Base):
    """One tenant dismissed one announcement meant for everyone (``announcements.tenant_id`` NULL):
    a broadcast is dismissed per tenant, not for all. A tenant's own announcement is dismissed on
    its row (``announcements.dismissed_at``)."""

    __tablename__ = "announcement_dismissals"

    announcement_id: Mapped[str] = mapped_column(
        ForeignKey("announcements.id", ondelete="CASCADE"), primary_key=True
    )
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    dismissed_at: Mapped[datetime] = mapped_column(default=utcnow)


class AuditLog(Base):
    """Every state transition: who, what, why, before/after. Never secrets (see audit.py)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    tenant_id: Mapped[str | None] = mapped_column(String(32), index=True)  # kept after tenant deletion
    actor: Mapped[str] = mapped_column(String(128))  # webhook, api, cli:<user>, worker, poller
    action: Mapped[str] = mapped_column(String(128))
    reason: Mapped[str | None] = mapped_column(Text)
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)


class ServiceUsage(Base):
    """Monthly counter of one metered service for one tenant."""

    __tablename__ = "service_usage"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    service: Mapped[UsageService] = mapped_column(_enum(UsageService, "usage_service"), primary_key=True)
    period: Mapped[str] = mapped_column(String(7), primary_key=True)  # "YYYY-MM" (UTC)
    used: Mapped[int] = mapped_column(BigInteger, default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (CheckConstraint("used >= 0", name="used_non_negative"),)


class ServiceUsageReport(Base):
    """One usage report of a service proxy, kept so a retried report counts once: the row and the
    counter (:class:`ServiceUsage`) change in the same transaction."""

    __tablename__ = "service_usage_reports"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    report_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    service: Mapped[UsageService] = mapped_column(_enum(UsageService, "usage_service"))
    period: Mapped[str] = mapped_column(String(7))  # "YYYY-MM" (UTC) the amount was counted in
    amount: Mapped[int] = mapped_column(BigInteger)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (CheckConstraint("amount >= 1", name="amount_positive"),)


class AgentUsageDaily(Base):
    """Tokens and cost one tenant's agent counted for one UTC day, provider and model (the health
    poller writes the day's totals as the agent reports them; the API serves them)."""

    __tablename__ = "agent_usage_daily"

    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), primary_key=True)
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    provider: Mapped[str] = mapped_column(String(32), primary_key=True)
    model: Mapped[str] = mapped_column(String(128), primary_key=True)
    input_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    output_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_read_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    cache_write_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    # Millionths of a US dollar (exact integers, no float drift); NULL when the agent knew no price.
    cost_microusd: Mapped[int | None] = mapped_column(BigInteger)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "input_tokens >= 0 AND output_tokens >= 0 AND cache_read_tokens >= 0 "
            "AND cache_write_tokens >= 0 AND (cost_microusd IS NULL OR cost_microusd >= 0)",
            name="counts_non_negative",
        ),
    )


__all__ = [
    "AgentUsageDaily",
    "Announcement",
    "AnnouncementDismissal",
    "AuditLog",
    "Banner",
    "BannerKind",
    "Base",
    "BillingNotice",
    "BillingStatus",
    "BillingSyncItem",
    "Channel",
    "DesiredPower",
    "FlyResources",
    "JobRun",
    "KeyStatus",
    "KeyVerdict",
    "LifecycleState",
    "MigrationItemState",
    "PlanMigration",
    "PlanMigrationItem",
    "ProviderKey",
    "ReconcileItem",
    "Rollout",
    "RolloutItem",
    "RoutingStrategy",
    "Secret",
    "ServiceUsage",
    "ServiceUsageReport",
    "StripeEvent",
    "Tenant",
    "UsageService",
    "new_id",
    "utcnow",
]
