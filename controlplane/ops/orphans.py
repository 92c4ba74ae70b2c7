"""``controlplane orphans``: what is on Fly without a tenant, and what tenants lost on Fly.

Three findings, read from Fly's listings (the org's apps, then each of our apps' machines and
volumes) and then from the database (in that order, so an app a tenant is creating right now is
already recorded: the reconciler records the app name before it creates the app):

* ``apps``: apps named with our prefix (``CP_FLY_APP_PREFIX``) that no live tenant records;
* ``machines``: machines in a tenant's app other than the one it records (and not the one a create
  in progress will adopt by its tag): made by hand, or created after the database backup that was
  restored;
* ``volumes``: volumes in our apps attached to no machine and not the volume a tenant records
  (left behind by a region move, a crashed create ...);
* ``missing``: tenants whose recorded app, machine or volume Fly does not have (confirmed with a
  GET: listings are eventually consistent). These are never deleted; ``reconcile`` recreates them.

Deleting (apps, machines, volumes) is the only Fly change made outside the reconciler, and only of things no
tenant owns; each deletion is audited with the operator's actor. Tenants being destroyed
(``deprovisioning``, or a destroy recorded in ``pending_destroy``) are left alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy import select

from controlplane import audit
from controlplane.db.models import FlyResources, Tenant
from controlplane.db.session import Database
from controlplane.enums import LifecycleState
from controlplane.fly import FlyClient
from controlplane.fly.errors import FlyNotFound
from controlplane.fly.idempotency import CREATE_TAG_KEY
from controlplane.fly.models import Machine, Volume

T = TypeVar("T")
GONE_VOLUME_STATES = frozenset({"destroyed", "destroying", "pending_destroy"})
#: Fly listings read at once (the client paces itself on top of this).
SCAN_CONCURRENCY = 8


@dataclass
class OrphanReport:
    apps: list[dict[str, Any]] = field(default_factory=list)
    machines: list[dict[str, Any]] = field(default_factory=list)
    volumes: list[dict[str, Any]] = field(default_factory=list)
    missing: list[dict[str, Any]] = field(default_factory=list)
    apps_scanned: int = 0

    @property
    def deletable(self) -> int:
        return len(self.apps) + len(self.machines) + len(self.volumes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "apps_scanned": self.apps_scanned,
            "orphan_apps": self.apps,
            "orphan_machines": self.machines,
            "orphan_volumes": self.volumes,
            "missing": self.missing,
            "deletable": self.deletable,
        }


@dataclass(frozen=True, slots=True)
class _Owner:
    external_id: str
    lifecycle: LifecycleState
    machine_id: str | None
    machine_create_tag: str | None
    volume_id: str | None
    destroying: bool


async def _gather(limit: int, calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
    gate = asyncio.Semaphore(limit)

    async def one(call: Callable[[], Awaitable[T]]) -> T:
        async with gate:
            return await call()

    return list(await asyncio.gather(*(one(c) for c in calls)))


async def _owners(db: Database) -> dict[str, _Owner]:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(
                    FlyResources.app_name,
                    Tenant.external_id,
                    Tenant.lifecycle_state,
                    FlyResources.machine_id,
                    FlyResources.machine_create_tag,
                    FlyResources.volume_id,
                    FlyResources.pending_destroy,
                )
                .join(Tenant, Tenant.id == FlyResources.tenant_id)
                .where(FlyResources.app_name.isnot(None))
            )
        ).all()
    return {
        app: _Owner(ext, state, machine, tag, volume, bool(pending) or state is LifecycleState.deprovisioning)
        for app, ext, state, machine, tag, volume, pending in rows
    }


async def scan(db: Database, fly: FlyClient, *, prefix: str) -> OrphanReport:
    """Read Fly, then the database, and report (changes nothing)."""
    ours = sorted(a.name for a in await fly.list_apps() if a.name.startswith(prefix))

    async def contents(app: str) -> tuple[str, list[Machine], list[Volume]]:
        try:
            return app, await fly.list_machines(app), await fly.list_volumes(app)
        except FlyNotFound:  # deleted while we looked
            return app, [], []

    listed = await _gather(SCAN_CONCURRENCY, [lambda app=app: contents(app) for app in ours])  # type: ignore[misc]
    owners = await _owners(db)
    report = OrphanReport(apps_scanned=len(ours))
    on_fly: dict[str, tuple[list[Machine], list[Volume]]] = {}
    for app, machines, volumes in listed:
        live_machines = [m for m in machines if m.state != "destroyed"]
        live_volumes = [v for v in volumes if v.state not in GONE_VOLUME_STATES]
        on_fly[app] = (live_machines, live_volumes)
        owner = owners.get(app)
        if owner is None or owner.lifecycle is LifecycleState.gone:
            report.apps.append(
                {
                    "app": app,
                    "machines": len(live_machines),
                    "volumes": len(live_volumes),
                    "tenant": owner.external_id if owner else None,
                }
            )
            continue
        if owner.destroying:
            continue
        for m in live_machines:
            if m.id == owner.machine_id or not m.host_ok:  # (a host that is down: nothing is certain)
                continue
            adopting = owner.machine_create_tag is not None
            if not adopting or m.metadata.get(CREATE_TAG_KEY) != owner.machine_create_tag:
                report.machines.append(
                    {"app": app, "machine_id": m.id, "state": m.state, "tenant": owner.external_id}
                )
        for v in live_volumes:
            if v.attached_machine_id is None and v.id != owner.volume_id:
                report.volumes.append(
                    {"app": app, "volume_id": v.id, "size_gb": v.size_gb, "tenant": owner.external_id}
                )
    report.missing = await _missing(fly, owners, on_fly)
    return report


async def _missing(
    fly: FlyClient, owners: dict[str, _Owner], on_fly: dict[str, tuple[list[Machine], list[Volume]]]
) -> list[dict[str, Any]]:
    """Recorded resources the listings do not show, each confirmed gone with a GET."""
    suspects: list[tuple[str, _Owner, str, str]] = []  # (app, owner, kind, id)
    for app, owner in sorted(owners.items()):
        if owner.destroying or owner.lifecycle is LifecycleState.gone:
            continue
        if app not in on_fly:
            suspects.append((app, owner, "app", app))
            continue
        machines, volumes = on_fly[app]
        if owner.machine_id and owner.machine_id not in {m.id for m in machines}:
            suspects.append((app, owner, "machine", owner.machine_id))
        if owner.volume_id and owner.volume_id not in {v.id for v in volumes}:
            suspects.append((app, owner, "volume", owner.volume_id))

    async def gone(app: str, kind: str, rid: str) -> bool:
        try:
            if kind == "app":
                await fly.get_app(app)
            elif kind == "machine":
                return (await fly.get_machine(app, rid)).state == "destroyed"
            else:
                return (await fly.get_volume(app, rid)).state in GONE_VOLUME_STATES
        except FlyNotFound:
            return True
        return False

    confirmed = await _gather(
        SCAN_CONCURRENCY,
        [lambda a=a, k=k, r=r: gone(a, k, r) for a, _, k, r in suspects],  # type: ignore[misc]
    )
    return [
        {"tenant": owner.external_id, "app": app, "resource": kind, "id": rid}
        for (app, owner, kind, rid), is_gone in zip(suspects, confirmed, strict=True)
        if is_gone
    ]


async def delete(db: Database, fly: FlyClient, report: OrphanReport, *, actor: str, reason: str) -> int:
    """Delete the orphan apps (with everything in them), machines and volumes; an audit row each.
    Owners are read again first: what a tenant recorded since the scan is skipped."""
    owners = await _owners(db)
    deleted = 0
    for item in report.apps:
        owner = owners.get(item["app"])
        if owner is not None and owner.lifecycle is not LifecycleState.gone:
            continue
        await fly.delete_app(item["app"], force=True, missing_ok=True)
        async with db.transaction() as s:
            audit.record(s, actor=actor, action="orphan.app.deleted", reason=reason, after=item)
        deleted += 1
    for item in report.machines:
        owner = owners.get(item["app"])
        if owner is None or owner.destroying or owner.machine_id == item["machine_id"]:
            continue
        await fly.destroy_machine(item["app"], item["machine_id"], force=True, missing_ok=True)
        async with db.transaction() as s:
            audit.record(s, actor=actor, action="orphan.machine.deleted", reason=reason, after=item)
        deleted += 1
    for item in report.volumes:
        owner = owners.get(item["app"])
        if owner is not None and owner.volume_id == item["volume_id"]:
            continue
        await fly.delete_volume(item["app"], item["volume_id"], missing_ok=True)
        async with db.transaction() as s:
            audit.record(s, actor=actor, action="orphan.volume.deleted", reason=reason, after=item)
        deleted += 1
    return deleted


__all__ = ["OrphanReport", "delete", "scan"]
