"""The worker process's periodic jobs besides the resync and billing's: each runs exactly once per
period across every worker process (:mod:`workers.scheduler`).

* ``health_sweep`` — :class:`workers.health.HealthSweeper` (``CP_HEALTH_SWEEP_INTERVAL_SECONDS``);
* ``key_revalidation`` — keys whose ``next_check_at`` passed, re-checked through the key service's
  policy (``CP_KEY_REVALIDATION_INTERVAL_SECONDS``, at most ``CP_KEY_REVALIDATION_BATCH`` a run);
* ``reencrypt`` — after a vault key rotation, secrets still on an older key re-encrypted to the
  primary in batches (hourly; nothing to do is one count query);
* ``prune`` — finished periods of ``job_runs`` and reconcile rows of tenants that are gone (daily);
* ``audit_retention`` — audit rows older than ``CP_AUDIT_RETENTION_DAYS`` (daily; 0 keeps them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import structlog

from controlplane import audit
from controlplane.byok.errors import KeyNotFound
from controlplane.byok.revalidate import revalidate_keys
from controlplane.byok.service import KeyService
from controlplane.clock import Clock
from controlplane.db.queue import ReconcileQueue
from controlplane.db.session import Database
from controlplane.enums import KeyStatus
from controlplane.rotation import count_not_on_primary, rotate_to_primary
from controlplane.settings import Settings
from controlplane.vault import Vault
from workers.health import ACTOR, HealthSweeper
from workers.scheduler import Job, Scheduler

log = structlog.get_logger(__name__)

DAY = 86400.0


@dataclass
class Housekeeping:
    settings: Settings
    db: Database
    vault: Vault
    keys: KeyService
    queue: ReconcileQueue
    scheduler: Scheduler
    sweeper: HealthSweeper
    clock: Clock

    async def recheck(self, tenant_id: str, provider: str) -> KeyStatus | None:
        try:
            return (await self.keys.test_now(tenant_id, provider, actor=ACTOR)).key.status
        except KeyNotFound:
            return None

    def jobs(self) -> list[Job]:
        s = self.settings
        jobs = [
            Job("health_sweep", s.health_sweep_interval_seconds, self.health_sweep, lease_seconds=300.0),
            Job(
                "key_revalidation",
                s.key_revalidation_interval_seconds,
                self.key_revalidation,
                lease_seconds=300.0,
            ),
            Job("reencrypt", 3600.0, self.reencrypt, lease_seconds=600.0),
            Job("prune", DAY, self.prune),
        ]
        if s.audit_retention_days > 0:
            jobs.append(Job("audit_retention", DAY, self.audit_retention, lease_seconds=600.0))
        return jobs

    async def health_sweep(self, _period: Any) -> None:
        await self.sweeper.sweep()

    async def key_revalidation(self, _period: Any) -> None:
        done = await revalidate_keys(
            self.keys, now=self.clock.now(), limit=self.settings.key_revalidation_batch, actor=ACTOR
        )
        if done:
            counts: dict[str, int] = {}
            for item in done:
                counts[item.status.value] = counts.get(item.status.value, 0) + 1
            log.info("keys.revalidated", **counts)

    async def reencrypt(self, _period: Any) -> None:
        if await count_not_on_primary(self.db, self.vault) == 0:
            return
        report = await rotate_to_primary(self.db, self.vault, batch_size=self.settings.reencrypt_batch)
        log.info(
            "vault.reencrypted",
            rewritten=report.rewritten,
            failed=len(report.failed),
            remaining=report.remaining,
        )

    async def prune(self, _period: Any) -> None:
        now = self.clock.now()
        runs = await self.scheduler.prune(
            older_than=now - timedelta(days=self.settings.job_runs_retention_days)
        )
        rows = await self.queue.prune_finished(older_than=now - timedelta(days=1))
        log.info("housekeeping.pruned", job_runs=runs, queue_rows=rows)

    async def audit_retention(self, _period: Any) -> None:
        before = self.clock.now() - timedelta(days=self.settings.audit_retention_days)
        total = 0
        while True:
            async with self.db.transaction() as session:
                deleted = await audit.delete_older_than(session, before)
            total += deleted
            if deleted < 5000:
                break
        log.info("audit.retention", deleted=total)


__all__ = ["Housekeeping"]
