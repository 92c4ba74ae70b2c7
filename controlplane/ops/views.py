"""The read-only views of ``controlplane fleet`` and ``controlplane tenant show``.

Both are plain dicts of JSON-able values (the ``--json`` output as it is printed), read in one
read-only session: a snapshot, never a lock.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.dashboard.notices import active_banners
from controlplane.db.models import (
    AuditLog,
    Banner,
    Channel,
    FlyResources,
    ProviderKey,
    ReconcileItem,
    Tenant,
    utcnow,
)
from controlplane.db.queue import ReconcileStatus, reconcile_status
from controlplane.db.tenants import image_of
from controlplane.enums import BannerKind, LifecycleState

#: A tenant whose reconciles failed this many times in a row is listed as failing.
FAILING_AFTER = 3


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


async def fleet_view(
    session: AsyncSession, *, default_image: str, attention_limit: int = 100
) -> dict[str, Any]:
    """Counts by lifecycle state, plan, region, image (as observed on the machines) and active banner
    kind; and the tenants needing attention (parked, drifting, crash-looping, failing, with banners),
    at most ``attention_limit`` of them listed (``attention_total`` says how many there are)."""
    rows = (
        await session.execute(
            select(
                Tenant.id,
                Tenant.external_id,
                Tenant.lifecycle_state,
                Tenant.plan,
                Tenant.region,
                Tenant.image_pin,
                Tenant.desired_image,
                Tenant.desired_rev,
                FlyResources.observed_rev,
                FlyResources.image_ref,
                FlyResources.machine_id,
                ReconcileItem.parked_reason,
                ReconcileItem.attempts,
                ReconcileItem.last_error,
            )
            .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
            .outerjoin(ReconcileItem, ReconcileItem.tenant_id == Tenant.id)
            .order_by(Tenant.external_id)
        )
    ).all()
    banner_rows = (
        await session.execute(select(Banner.tenant_id, Banner.kind).where(Banner.active.is_(True)))
    ).all()
    banners: dict[str, list[str]] = {}
    by_banner: Counter[str] = Counter()
    for tenant_id, kind in banner_rows:
        banners.setdefault(tenant_id, []).append(kind.value)
        by_banner[kind.value] += 1

    by_state: Counter[str] = Counter()
    by_plan: Counter[str] = Counter()
    by_region: Counter[str] = Counter()
    by_image: Counter[str] = Counter()
    by_desired_image: Counter[str] = Counter()
    attention: list[dict[str, Any]] = []
    drifting = parked = crashlooping = failing = 0
    for r in rows:
        state = r.lifecycle_state
        by_state[state.value] += 1
        if state is LifecycleState.gone:
            continue
        by_plan[r.plan] += 1
        by_region[r.region] += 1
        by_desired_image[image_of(r.image_pin, r.desired_image, default_image)] += 1
        if r.machine_id is not None:
            by_image[r.image_ref or "unknown"] += 1
        reasons: list[str] = []
        if r.parked_reason is not None:
            parked += 1
            reasons.append(f"parked: {r.parked_reason}")
        if r.desired_rev != (r.observed_rev or 0):
            drifting += 1
            reasons.append(f"drifting: desired rev {r.desired_rev}, observed {r.observed_rev or 0}")
        kinds = sorted(banners.get(r.id, []))
        if BannerKind.agent_crashlooping.value in kinds:
            crashlooping += 1
            reasons.append("crash-looping")
        if (r.attempts or 0) >= FAILING_AFTER and r.parked_reason is None:
            failing += 1
            reasons.append(f"failing: {r.attempts} attempts, last error: {(r.last_error or '-')[:160]}")
        if kinds:
            reasons.append("banners: " + ", ".join(kinds))
        if reasons:
            attention.append(
                {
                    "external_id": r.external_id,
                    "lifecycle_state": state.value,
                    "reasons": reasons,
                    "banners": kinds,
                }
            )
    return {
        "tenants": len(rows),
        "by_lifecycle_state": dict(sorted(by_state.items())),
        "by_plan": dict(sorted(by_plan.items())),
        "by_region": dict(sorted(by_region.items())),
        "by_image": dict(sorted(by_image.items())),
        "by_desired_image": dict(sorted(by_desired_image.items())),
        "by_banner": dict(sorted(by_banner.items())),
        "drifting": drifting,
        "parked_count": parked,
        "crashlooping": crashlooping,
        "failing": failing,
        "attention_total": len(attention),
        "attention": attention[:attention_limit],
        # kept from the first version of `fleet --json` (scripts read it)
        "parked": [
            {"external_id": a["external_id"], "reason": reason[len("parked: ") :]}
            for a in attention
            for reason in a["reasons"]
            if reason.startswith("parked: ")
        ],
    }


async def tenant_view(
    session: AsyncSession, tenant: Tenant, *, default_image: str, audit_limit: int = 15
) -> dict[str, Any]:
    """Desired vs observed, drift, reconcile state, active banners, keys (masked: provider, last four,
    status), channels and recent audit."""
    fly = await session.get(FlyResources, tenant.id)
    status: ReconcileStatus | None = await reconcile_status(session, tenant.id, now=utcnow())
    keys = (
        (await session.execute(select(ProviderKey).where(ProviderKey.tenant_id == tenant.id))).scalars().all()
    )
    channels = (await session.execute(select(Channel).where(Channel.tenant_id == tenant.id))).scalars().all()
    audit_rows = (
        (
            await session.execute(
                select(AuditLog)
                .where(AuditLog.tenant_id == tenant.id)
                .order_by(AuditLog.id.desc())
                .limit(audit_limit)
            )
        )
        .scalars()
        .all()
    )
    banners = await active_banners(session, tenant.id)
    observed_rev = fly.observed_rev if fly else 0
    return {
        "external_id": tenant.external_id,
        "id": tenant.id,
        "lifecycle_state": tenant.lifecycle_state.value,
        "desired": {
            "plan": tenant.plan,
            "power": tenant.desired_power.value,
            "billing_status": tenant.billing_status.value,
            "region": tenant.region,
            "image": image_of(tenant.image_pin, tenant.desired_image, default_image),
            "image_pin": tenant.image_pin,
            "rollout_image": tenant.desired_image,
            "model_preference": tenant.model_preference,
            "routing_strategy": tenant.routing_strategy.value,
            "desired_rev": tenant.desired_rev,
            "destroy_after": _iso(tenant.destroy_after),
            "billing_grace_until": _iso(tenant.billing_grace_until),
            "key_grace_until": _iso(tenant.key_grace_until),
        },
        "observed": {
            "app": fly.app_name if fly else None,
            "machine_id": fly.machine_id if fly else None,
            "machine_state": fly.observed_state if fly else None,
            "volume_id": fly.volume_id if fly else None,
            "volume_size_gb": fly.volume_size_gb if fly else None,
            "image": fly.image_ref if fly else None,
            "observed_rev": observed_rev,
            "config_hash": fly.config_hash if fly else None,
            "secrets_version": fly.secrets_version if fly else None,
            "observed_at": _iso(fly.observed_at) if fly else None,
            "pending_destroy": fly.pending_destroy if fly else None,
        },
        "drift": tenant.desired_rev != observed_rev,
        "reconcile": None
        if status is None
        else {
            "due_at": _iso(status.due_at),
            "running_now": status.leased,
            "attempts": status.attempts,
            "parked_reason": status.parked_reason,
            "last_error": status.last_error,
            "last_outcome": status.last_outcome,
            "last_run_at": _iso(status.last_run_at),
            "reason": status.reason,
        },
        "banners": [
            {"kind": b.kind.value, "subject": b.subject, "message": b.message, "raised_at": _iso(b.raised_at)}
            for b in banners
        ],
        "keys": [
            {
                "provider": k.provider,
                "last4": k.last4,
                "status": k.status.value,
                "verdict": k.verdict.value,
                "last_checked_at": _iso(k.last_checked_at),
            }
            for k in sorted(keys, key=lambda k: k.provider)
        ],
        "channels": [{"kind": c.kind, "enabled": c.enabled} for c in sorted(channels, key=lambda c: c.kind)],
        "audit": [
            {"at": _iso(r.at), "actor": r.actor, "action": r.action, "reason": r.reason, "after": r.after}
            for r in audit_rows
        ],
    }


async def live_view(
    fly: Any, app: str | None, machine_id: str | None, volume_id: str | None
) -> dict[str, Any]:
    """What Fly says right now about the recorded machine and volume (``tenant show --live``):
    read-only calls; ``error`` instead of raising, so the recorded view is still printed."""
    from controlplane.fly.errors import FlyError, FlyNotFound

    live: dict[str, Any] = {"machine": None, "volume": None, "error": None}
    if app is None:
        return live
    try:
        if machine_id is not None:
            try:
                m = await fly.get_machine(app, machine_id)
                live["machine"] = {
                    "state": m.state,
                    "image": m.config.image if m.config else None,
                    "region": m.region,
                    "instance_id": m.current_version,
                    "host_status": m.host_status,
                    "updated_at": m.updated_at,
                    "checks": {c.name: c.status for c in m.checks if c.name},
                }
            except FlyNotFound:
                live["machine"] = {"state": "not found"}
        if volume_id is not None:
            try:
                v = await fly.get_volume(app, volume_id)
                live["volume"] = {
                    "state": v.state,
                    "size_gb": v.size_gb,
                    "attached_machine_id": v.attached_machine_id,
                }
            except FlyNotFound:
                live["volume"] = {"state": "not found"}
    except FlyError as exc:
        from controlplane.redaction import redact_text

        live["error"] = redact_text(f"{type(exc).__name__}: {exc}")
    return live


__all__ = ["FAILING_AFTER", "fleet_view", "live_view", "tenant_view"]
