"""Reads and writes of ``tenants`` and ``fly_resources`` that a reconcile needs, typed, in one place.

:func:`load_desired` reads one tenant's whole desired state (plan, billing, power, keys, channels)
and what was last recorded of its Fly resources into a frozen :class:`DesiredTenant` snapshot, in a
read-only transaction. Every write of Fly ids and observations is a named function with typed
arguments, each its own short transaction (invariant 1: an id is stored the moment Fly returns it,
before anything else can fail). No ``setattr(**fields)``: a misspelt column is a type error.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane import audit
from controlplane.db.models import Channel, FlyResources, ProviderKey, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.desired import transition_lifecycle
from controlplane.enums import (
    BillingStatus,
    DesiredPower,
    KeyStatus,
    LifecycleState,
    RoutingStrategy,
)

FLY: Table = FlyResources.__table__  # type: ignore[assignment]
TENANTS: Table = Tenant.__table__  # type: ignore[assignment]


def image_of(pin: str | None, rollout_image: str | None, default: str) -> str:
    """The image a tenant's machine should run: its pin, else the image a rollout moved it to, else
    the fleet default (``CP_OPENCLAW_IMAGE``). The one place this precedence is written."""
    return pin or rollout_image or default


@dataclass(frozen=True, slots=True)
class KeyState:
    provider: str
    status: KeyStatus


@dataclass(frozen=True, slots=True)
class ChannelState:
    kind: str
    settings: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class FlyState:
    """What was last recorded of the tenant's Fly resources (``None`` fields: not created yet)."""

    app_name: str | None = None
    volume_id: str | None = None
    volume_size_gb: int | None = None
    volume_create_tag: str | None = None
    machine_id: str | None = None
    instance_id: str | None = None
    machine_create_tag: str | None = None
    observed_rev: int = 0
    config_hash: str | None = None
    secrets_version: int | None = None
    secrets_digest: str | None = None
    secret_digests: Mapping[str, str] = field(default_factory=dict)
    observed_state: str | None = None
    image_ref: str | None = None
    pending_destroy: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class DesiredTenant:
    """One tenant's desired state and its last recorded Fly state, read in one transaction."""

    id: str
    external_id: str
    plan: str
    billing_status: BillingStatus
    lifecycle_state: LifecycleState
    desired_power: DesiredPower
    desired_rev: int
    region: str
    image_pin: str | None
    model_preference: str | None
    routing_strategy: RoutingStrategy
    billing_grace_until: datetime | None
    key_grace_until: datetime | None
    destroy_after: datetime | None
    keys: tuple[KeyState, ...]
    channels: tuple[ChannelState, ...]
    fly: FlyState
    desired_image: str | None = None  # set by image rollouts; image_pin wins over it

    def image(self, default: str) -> str:
        """The image the tenant's machine should run: its pin, else the image a rollout moved it to,
        else the fleet default (``CP_OPENCLAW_IMAGE``)."""
        return image_of(self.image_pin, self.desired_image, default)

    @property
    def usable_providers(self) -> tuple[str, ...]:
        """Providers whose key the agent may use (a key with a warning still works for the agent;
        only a broken one is left out)."""
        return tuple(sorted(k.provider for k in self.keys if k.status is not KeyStatus.broken))


def _fly_state(row: FlyResources | None) -> FlyState:
    if row is None:
        return FlyState()
    return FlyState(
        app_name=row.app_name,
        volume_id=row.volume_id,
        volume_size_gb=row.volume_size_gb,
        volume_create_tag=row.volume_create_tag,
        machine_id=row.machine_id,
        instance_id=row.instance_id,
        machine_create_tag=row.machine_create_tag,
        observed_rev=row.observed_rev,
        config_hash=row.config_hash,
        secrets_version=row.secrets_version,
        secrets_digest=row.secrets_digest,
        secret_digests=dict(row.secret_digests or {}),
        observed_state=row.observed_state,
        image_ref=row.image_ref,
        pending_destroy=dict(row.pending_destroy) if row.pending_destroy else None,
    )


async def load_desired(db: Database, tenant_id: str) -> DesiredTenant | None:
    """The tenant's desired state and last recorded Fly state, or ``None`` if there is no such tenant."""
    async with db.read() as s:
        tenant = await s.get(Tenant, tenant_id)
        if tenant is None:
            return None
        keys = (
            await s.execute(
                select(ProviderKey.provider, ProviderKey.status).where(ProviderKey.tenant_id == tenant_id)
            )
        ).all()
        channels = (
            await s.execute(
                select(Channel.kind, Channel.settings)
                .where(Channel.tenant_id == tenant_id, Channel.enabled.is_(True))
                .order_by(Channel.created_at, Channel.kind)
            )
        ).all()
        fly = await s.get(FlyResources, tenant_id)
        return DesiredTenant(
            id=tenant.id,
            external_id=tenant.external_id,
            plan=tenant.plan,
            billing_status=tenant.billing_status,
            lifecycle_state=tenant.lifecycle_state,
            desired_power=tenant.desired_power,
            desired_rev=tenant.desired_rev,
            region=tenant.region,
            image_pin=tenant.image_pin,
            model_preference=tenant.model_preference,
            routing_strategy=tenant.routing_strategy,
            billing_grace_until=tenant.billing_grace_until,
            key_grace_until=tenant.key_grace_until,
            destroy_after=tenant.destroy_after,
            keys=tuple(KeyState(provider=k.provider, status=k.status) for k in keys),
            channels=tuple(ChannelState(kind=c.kind, settings=dict(c.settings or {})) for c in channels),
            fly=_fly_state(fly),
            desired_image=tenant.desired_image,
        )


async def tenant_id_by_external(session: AsyncSession, external_id: str) -> str | None:
    return await session.scalar(select(Tenant.id).where(Tenant.external_id == external_id))


async def live_tenants_with_fly(session: AsyncSession) -> list[tuple[Tenant, FlyResources | None]]:
    """Every tenant not yet gone, with its Fly ids (None before the first one is recorded): what the
    resync and the health sweep compare Fly's listing with."""
    rows = await session.execute(
        select(Tenant, FlyResources)
        .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
        .where(Tenant.lifecycle_state != LifecycleState.gone)
    )
    return [(tenant, fly) for tenant, fly in rows.all()]


# -- Fly ids and observations (each its own transaction: invariant 1) ----------------------------
@dataclass(frozen=True, slots=True)
class Step:
    """The audit row of one reconcile step, written in the same transaction as what it records."""

    action: str
    reason: str
    after: Mapping[str, Any] | None = None
    actor: str = "worker"


@dataclass(frozen=True, slots=True)
class Lifecycle:
    """A lifecycle transition (audited) to write with an observation."""

    state: LifecycleState
    reason: str
    actor: str = "worker"


async def _write_fly(
    db: Database,
    tenant_id: str,
    values: dict[str, Any],
    *,
    step: Step | None = None,
    lifecycle: Lifecycle | None = None,
) -> None:
    values["updated_at"] = utcnow()
    async with db.transaction() as s:
        result = await s.execute(update(FLY).where(FLY.c.tenant_id == tenant_id).values(**values))
        if getattr(result, "rowcount", 0) == 0:
            s.add(FlyResources(tenant_id=tenant_id, **values))
        if step is not None:
            audit.record(
                s,
                actor=step.actor,
                action=step.action,
                tenant_id=tenant_id,
                reason=step.reason,
                after=dict(step.after) if step.after else None,
            )
        if lifecycle is not None:
            tenant = await s.get(Tenant, tenant_id)
            if tenant is not None:
                transition_lifecycle(
                    s, tenant, lifecycle.state, actor=lifecycle.actor, reason=lifecycle.reason
                )


async def record_app(
    db: Database, tenant_id: str, app_name: str, *, lifecycle: Lifecycle | None = None
) -> None:
    await _write_fly(db, tenant_id, {"app_name": app_name}, lifecycle=lifecycle)


async def record_volume_create_tag(db: Database, tenant_id: str, tag: str | None) -> None:
    await _write_fly(db, tenant_id, {"volume_create_tag": tag})


async def record_volume(
    db: Database, tenant_id: str, volume_id: str | None, size_gb: int | None, *, step: Step | None = None
) -> None:
    """The volume id the moment Fly returns it (clears the create tag); ``None`` forgets a volume
    Fly confirmed gone."""
    await _write_fly(
        db,
        tenant_id,
        {"volume_id": volume_id, "volume_size_gb": size_gb, "volume_create_tag": None},
        step=step,
    )


async def record_machine_create_tag(db: Database, tenant_id: str, tag: str | None) -> None:
    await _write_fly(db, tenant_id, {"machine_create_tag": tag})


async def record_machine(
    db: Database,
    tenant_id: str,
    machine_id: str,
    instance_id: str | None,
    *,
    config_hash: str,
    image: str,
    step: Step | None = None,
) -> None:
    """The machine id the moment Fly returns it, with what it was created with; the create tag has
    done its job."""
    await _write_fly(
        db,
        tenant_id,
        {
            "machine_id": machine_id,
            "instance_id": instance_id,
            "machine_create_tag": None,
            "config_hash": config_hash,
            "image_ref": image,
        },
        step=step,
    )


async def forget_machine(db: Database, tenant_id: str, *, step: Step | None = None) -> None:
    """Fly confirmed the machine gone (404 / destroyed): the next run may create a new one."""
    await _write_fly(
        db,
        tenant_id,
        {"machine_id": None, "instance_id": None, "observed_state": None, "config_hash": None},
        step=step,
    )


async def forget_app(db: Database, tenant_id: str, *, step: Step | None = None) -> None:
    """Fly confirmed the app gone: with it went its machines, volumes and secrets."""
    await _write_fly(
        db,
        tenant_id,
        {
            "volume_id": None,
            "volume_size_gb": None,
            "volume_create_tag": None,
            "machine_id": None,
            "instance_id": None,
            "machine_create_tag": None,
            "observed_state": None,
            "config_hash": None,
            "secrets_version": None,
            "secrets_digest": None,
            "secret_digests": None,
            "pending_destroy": None,
        },
        step=step,
    )


async def record_secrets(
    db: Database,
    tenant_id: str,
    *,
    version: int | None,
    digest: str,
    fly_digests: Mapping[str, str],
    step: Step | None = None,
) -> None:
    await _write_fly(
        db,
        tenant_id,
        {"secrets_version": version, "secrets_digest": digest, "secret_digests": dict(fly_digests)},
        step=step,
    )


async def record_applied(
    db: Database,
    tenant_id: str,
    *,
    instance_id: str | None,
    config_hash: str,
    image: str,
    step: Step | None = None,
) -> None:
    """A machine was updated with this config and image."""
    await _write_fly(
        db, tenant_id, {"instance_id": instance_id, "config_hash": config_hash, "image_ref": image}, step=step
    )


async def record_observed(
    db: Database,
    tenant_id: str,
    *,
    state: str | None,
    observed_rev: int | None = None,
    at: datetime,
    lifecycle: Lifecycle | None = None,
) -> None:
    values: dict[str, Any] = {"observed_state": state, "observed_at": at}
    if observed_rev is not None:
        values["observed_rev"] = observed_rev
    await _write_fly(db, tenant_id, values, lifecycle=lifecycle)


async def record_pending_destroy(
    db: Database, tenant_id: str, pending: Mapping[str, Any] | None, *, step: Step | None = None
) -> None:
    """Phase one of a two-phase destroy (invariant 3): what is being deleted, before the call (and
    ``None`` once Fly confirmed it gone)."""
    await _write_fly(db, tenant_id, {"pending_destroy": dict(pending) if pending else None}, step=step)


#: ``pending_destroy`` key of an operator's ``tenant recreate`` (see :func:`record_recreate_request`).
RECREATE = "recreate"


async def record_recreate_request(
    session: AsyncSession, tenant_id: str, *, fresh_volume: bool
) -> dict[str, Any]:
    """Phase one of an operator's ``tenant recreate`` (invariant 3), in the caller's transaction: the
    machine (and, with ``fresh_volume``, the volume) to destroy, recorded in ``pending_destroy`` as
    ``{"recreate": {"machine": id, "volume": id | None}}``. The reconciler destroys them, clears the
    record once Fly confirms them gone, and creates the machine again from desired state.
    ``Refused`` when there is no machine, or a destroy is already under way."""
    from controlplane.errors import Refused

    fly = await session.scalar(
        select(FlyResources).where(FlyResources.tenant_id == tenant_id).with_for_update()
    )
    if fly is None or fly.machine_id is None or fly.app_name is None:
        raise Refused(
            "EXTERNAL_ID", "the tenant has no machine to recreate (`reconcile` creates a missing one)"
        )
    if fly.pending_destroy and RECREATE not in fly.pending_destroy:
        raise Refused("EXTERNAL_ID", f"a destroy is under way ({', '.join(sorted(fly.pending_destroy))})")
    request = {"machine": fly.machine_id, "volume": fly.volume_id if fresh_volume else None}
    fly.pending_destroy = {RECREATE: request}
    fly.updated_at = utcnow()
    return request


# -- tenant row ----------------------------------------------------------------------------------
async def transition(
    db: Database, tenant_id: str, new_state: LifecycleState, *, actor: str, reason: str
) -> bool:
    """Lifecycle transition with its audit row; ``False`` (nothing written) if already there."""
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        if tenant is None:
            return False
        return transition_lifecycle(s, tenant, new_state, actor=actor, reason=reason)


async def move_region(db: Database, tenant_id: str, *, old: str, new: str, actor: str, reason: str) -> None:
    """A tenant with no volume yet goes to another region (capacity or quota): recorded and audited."""
    async with db.transaction() as s:
        await s.execute(
            update(TENANTS).where(TENANTS.c.id == tenant_id).values(region=new, updated_at=utcnow())
        )
        audit.record(
            s,
            actor=actor,
            action="region.moved",
            tenant_id=tenant_id,
            reason=reason,
            before={"region": old},
            after={"region": new},
        )


async def record_step(
    db: Database, tenant_id: str, *, actor: str, action: str, reason: str, after: dict[str, Any] | None = None
) -> None:
    """An audit row for one Fly step of a reconcile (created, updated, started, destroyed ...)."""
    async with db.transaction() as s:
        audit.record(s, actor=actor, action=action, tenant_id=tenant_id, reason=reason, after=after)


__all__ = [
    "RECREATE",
    "ChannelState",
    "Lifecycle",
    "Step",
    "DesiredTenant",
    "FlyState",
    "KeyState",
    "forget_app",
    "forget_machine",
    "load_desired",
    "move_region",
    "record_app",
    "record_applied",
    "record_machine",
    "record_machine_create_tag",
    "record_observed",
    "record_pending_destroy",
    "record_recreate_request",
    "record_secrets",
    "record_step",
    "record_volume",
    "record_volume_create_tag",
    "tenant_id_by_external",
    "transition",
]
