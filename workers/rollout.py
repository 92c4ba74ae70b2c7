"""The image rollout driver, run by every worker process (one drives at a time: a lease on the
rollout row). The reconciler does the updates; the driver only changes desired images and watches.

Each step (every ``CP_ROLLOUT_TICK_SECONDS``):

1. claim or renew the lease on the active rollout (``controlplane/db/rollouts.py: claim_driver``);
2. look at every moving item (at most K): once the reconciler has applied the image
   (``fly_resources.image_ref``) and converged the tenant's revision, confirm on Fly: the machine
   shows the image and is ``started`` and its gateway answers ``/readyz`` 200 (probed without a
   token: the status code is enough), or it is asleep (a sleeping or stopped tenant: the image is
   applied to the stopped machine, which gets it at its next wake; never probed, so never woken).
   A machine that is ``failed``, or not healthy ``CP_ROLLOUT_HEALTH_TIMEOUT_SECONDS`` after the
   image reached it, or not updated within ``CP_ROLLOUT_ITEM_TIMEOUT_SECONDS``, fails: the rollout
   pauses and the tenant is put back on its previous image (one transaction), which it then waits
   for like any other move;
3. while the rollout runs, start pending tenants of the current batch into the free slots
   (K minus the items still moving): desired image + revision + audit + reconcile mark, one
   transaction per step. The next batch starts only when every item of this one has finished.

All progress lives in the database: a worker killed mid-step leaves nothing half-done (each change
is one transaction) and the next driver (this worker restarted, or another after the lease) carries
on from the rows. A tenant's image is changed once per rollout, and the reconciler updates a
machine only when its config differs, so no machine is updated twice.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import structlog

from controlplane.clock import Clock, SystemClock
from controlplane.db import rollouts as store
from controlplane.db.rollouts import ItemProgress
from controlplane.db.session import Database
from controlplane.enums import LifecycleState, RolloutItemState, RolloutState
from controlplane.fly import FlyClient
from controlplane.fly.errors import FlyError, FlyNotFound
from controlplane.redaction import redact_text
from controlplane.settings import Settings

log = structlog.get_logger(__name__)

ACTOR = "worker"
DEAD_STATES = frozenset({"failed", "launch_failed", "destroyed"})
ASLEEP_STATES = frozenset({"stopped", "suspended"})
ASLEEP_LIFECYCLES = frozenset({LifecycleState.sleeping, LifecycleState.stopped})


@dataclass(frozen=True, slots=True)
class RolloutConfig:
    tick_seconds: float = 1.0
    health_timeout_seconds: float = 180.0
    item_timeout_seconds: float = 900.0
    lease_seconds: float = 30.0
    gateway_url_template: str = "https://{app}.fly.dev"
    probe_timeout_seconds: float = 5.0
    default_image: str | None = None  # CP_OPENCLAW_IMAGE: what a tenant without its own image runs

    @classmethod
    def from_settings(cls, settings: Settings) -> RolloutConfig:
        return cls(
            tick_seconds=settings.rollout_tick_seconds,
            health_timeout_seconds=settings.rollout_health_timeout_seconds,
            item_timeout_seconds=settings.rollout_item_timeout_seconds,
            lease_seconds=settings.rollout_lease_seconds,
            gateway_url_template=settings.gateway_url_template,
            default_image=settings.openclaw_image,
        )


@dataclass(frozen=True, slots=True)
class Verdict:
    """What Fly shows of one moving item: ``ok`` (ready, or asleep with the image), ``dead`` (fail
    now) or neither (wait; fails at the deadline)."""

    ok: bool
    dead: bool
    note: str


@dataclass(frozen=True, slots=True)
class StepReport:
    rollout_id: str
    state: RolloutState
    moving: int
    started: int
    finished: int
    failed: int


class RolloutDriver:
    """``await driver.step()`` advances the active rollout once; ``run(stop)`` steps until stopped."""

    def __init__(
        self,
        db: Database,
        fly: FlyClient,
        probes: httpx.AsyncClient,
        config: RolloutConfig,
        *,
        owner: str,
        clock: Clock | None = None,
        wake: asyncio.Event | None = None,
    ) -> None:
        self.db = db
        self.wake = wake  # the worker's wake-up: tenants just marked are claimed at once
        self.fly = fly
        self.probes = probes
        self.config = config
        self.owner = owner
        self.clock: Clock = clock or SystemClock()
        self._claimed: str | None = None
        self._renew_at = 0.0

    async def _claim(self, now: datetime) -> store.DriverClaim | None:
        """Renew the lease every third of it; in between, only read the rollout (an operator may have
        paused it). Keeps the driver's writes off the database between renewals."""
        if self._claimed is not None and self.clock.monotonic() < self._renew_at:
            claim = await store.driver_view(self.db, self._claimed, self.owner, now=now)
            if claim is not None:
                return claim
        claim = await store.claim_driver(
            self.db, self.owner, now=now, lease_seconds=self.config.lease_seconds
        )
        self._claimed = claim.id if claim is not None else None
        self._renew_at = self.clock.monotonic() + self.config.lease_seconds / 3
        return claim

    async def step(self) -> StepReport | None:
        now = self.clock.now()
        claim = await self._claim(now)
        if claim is None:
            return None
        moving = await store.in_flight(self.db, claim.id)
        outcomes = await asyncio.gather(*(self._watch(claim.id, item, now) for item in moving))
        still = sum(1 for outcome in outcomes if outcome == "moving")
        if "failed" in outcomes and self.wake is not None:
            self.wake.set()  # the rollbacks just marked
        started = 0
        if claim.state is RolloutState.running and still < claim.max_in_flight:
            ids = await store.next_pending(self.db, claim.id, claim.max_in_flight - still)
            if ids:
                started = await store.begin_items(
                    self.db, claim.id, ids, actor=ACTOR, now=now, default_image=self.config.default_image
                )
                if started and self.wake is not None:
                    self.wake.set()
                log.info(
                    "rollout.started_tenants", rollout_id=claim.id, started=started, in_flight=still + started
                )
        if still + started == 0 and await store.finish_if_complete(self.db, claim.id, self.clock.now()):
            log.info("rollout.finished", rollout_id=claim.id)
            self._claimed = None
        return StepReport(
            rollout_id=claim.id,
            state=claim.state,
            moving=still + started,
            started=started,
            finished=sum(1 for o in outcomes if o == "finished"),
            failed=sum(1 for o in outcomes if o == "failed"),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Step every ``tick_seconds`` until ``stop``; a failed step (database, Fly) is logged and
        retried at the next tick."""
        while not stop.is_set():
            try:
                await self.step()
            except Exception as exc:
                log.warning("rollout.step_failed", error=redact_text(f"{type(exc).__name__}: {exc}")[:500])
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=self.config.tick_seconds)

    # -- one item -----------------------------------------------------------------------------
    async def _watch(self, rollout_id: str, item: ItemProgress, now: datetime) -> str:
        """Advance one moving item; returns ``moving``, ``finished`` or ``failed``."""
        want = item.want_image
        if item.machine_id is None or item.app_name is None:
            note = "no machine yet: it is created with this image"
            await self._finish(rollout_id, item, note, now)
            return "finished"
        applied_at = item.applied_at
        if item.image_ref == want and applied_at is None:
            await store.record_applied(self.db, rollout_id, item.tenant_id, now)
            applied_at = now
        converged = item.image_ref == want and item.observed_rev >= (item.desired_rev or 0)
        health_over = applied_at is not None and now >= applied_at + timedelta(
            seconds=self.config.health_timeout_seconds
        )
        if converged or health_over:
            verdict = await self._verify(item, want)
            if verdict.ok:
                await self._finish(rollout_id, item, verdict.note, now)
                return "finished"
            if verdict.dead or health_over:
                return await self._failed(rollout_id, item, f"{verdict.note} after the update to {want}", now)
            return "moving"
        started = item.started_at or now
        if applied_at is None and now >= started + timedelta(seconds=self.config.item_timeout_seconds):
            cause = item.parked_reason or item.last_error or "the reconciler has not applied it"
            why = f"not updated within {self.config.item_timeout_seconds:g} s ({redact_text(cause)[:200]})"
            return await self._failed(rollout_id, item, why, now)
        return "moving"

    async def _finish(self, rollout_id: str, item: ItemProgress, note: str | None, now: datetime) -> None:
        if item.state is RolloutItemState.rolling_back:
            await store.finish_item(
                self.db, rollout_id, item.tenant_id, RolloutItemState.rolled_back, None, now
            )
            log.info("rollout.rolled_back", rollout_id=rollout_id, tenant=item.external_id, note=note)
            return
        done_note = note if note and not note.startswith("ready") else None
        await store.finish_item(self.db, rollout_id, item.tenant_id, RolloutItemState.done, done_note, now)

    async def _failed(self, rollout_id: str, item: ItemProgress, why: str, now: datetime) -> str:
        if item.state is RolloutItemState.rolling_back:
            # Not healthy on its previous image either: stop watching it, say so, keep the slot free.
            await store.finish_item(
                self.db,
                rollout_id,
                item.tenant_id,
                RolloutItemState.rolled_back,
                f"rolled back, but {why}",
                now,
            )
            log.warning("rollout.rollback_unhealthy", rollout_id=rollout_id, tenant=item.external_id, why=why)
            return "finished"
        await store.fail_item(self.db, rollout_id, item.tenant_id, why, actor=ACTOR, now=now)
        log.warning("rollout.tenant_failed", rollout_id=rollout_id, tenant=item.external_id, why=why)
        return "failed"

    async def _verify(self, item: ItemProgress, want: str) -> Verdict:
        assert item.app_name is not None and item.machine_id is not None
        try:
            machine = await self.fly.get_machine(item.app_name, item.machine_id)
        except FlyNotFound:
            return Verdict(False, False, "machine not found on Fly")
        except FlyError as exc:
            return Verdict(False, False, f"Fly: {type(exc).__name__}")
        image = machine.config.image if machine.config is not None else None
        state = machine.state or "unknown"
        if image != want:
            return Verdict(False, False, f"machine shows image {image}")
        if state in DEAD_STATES:
            return Verdict(False, True, f"machine {state}")
        if state in ASLEEP_STATES:
            if item.lifecycle_state in ASLEEP_LIFECYCLES:
                return Verdict(True, False, "asleep: the new image runs at its next wake")
            return Verdict(False, False, f"machine {state}")
        if state != "started":
            return Verdict(False, False, f"machine {state}")
        status = await self._readyz(item.app_name)
        if status == 200:
            return Verdict(True, False, "ready")
        return Verdict(False, False, f"/readyz {status}")

    async def _readyz(self, app: str) -> int | str:
        url = self.config.gateway_url_template.format(app=app).rstrip("/") + "/readyz"
        try:
            response = await self.probes.get(url, timeout=self.config.probe_timeout_seconds)
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code


__all__ = ["RolloutConfig", "RolloutDriver", "StepReport", "Verdict"]
