"""The worker's housekeeping jobs (workers/jobs.py) on every database backend: which jobs the
process runs, pruning of finished periods and of the queue rows of tenants that are gone, audit
retention."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import func, select

from controlplane import audit
from controlplane.db.models import AuditLog, JobRun, ReconcileItem, Tenant
from controlplane.db.queue import ReconcileQueue
from controlplane.enums import LifecycleState
from controlplane.testing import FakeClock
from tests.support.fleet import running_fleet
from workers.scheduler import Job, Scheduler

OLD = datetime(2025, 1, 1, tzinfo=UTC)


async def test_the_worker_process_runs_the_health_and_housekeeping_jobs(db, empty_database) -> None:
    async with running_fleet(db, empty_database["url"]) as fleet:
        names = {job.name for job in fleet.process.scheduler.jobs}
    assert {"resync", "health_sweep", "key_revalidation", "reencrypt", "prune", "audit_retention"} <= names


async def test_prune_keeps_unfinished_periods_and_live_tenants(db, tenant_factory) -> None:
    clock = FakeClock()

    async def nothing(_period: datetime) -> None:
        return None

    scheduler = Scheduler(db, [Job("j", 60.0, nothing)], owner="a", clock=clock)
    await scheduler.tick()  # one finished period, now
    async with db.transaction() as s:
        s.add(
            JobRun(
                job="j", period="2025-01-01T00:00:00Z", owner="a", attempts=1, started_at=OLD, finished_at=OLD
            )
        )
        s.add(
            JobRun(job="j", period="2025-01-01T00:01:00Z", owner="a", attempts=1, started_at=OLD)
        )  # unfinished
    assert await scheduler.prune(older_than=clock.now() - timedelta(days=14)) == 1
    async with db.read() as s:
        periods = set((await s.scalars(select(JobRun.period))).all())
    assert "2025-01-01T00:00:00Z" not in periods and "2025-01-01T00:01:00Z" in periods and len(periods) == 2

    gone, alive = await tenant_factory(), await tenant_factory()
    async with db.transaction() as s:
        for tenant in (gone, alive):
            s.add(ReconcileItem(tenant_id=tenant.id, due_at=None, last_run_at=OLD))
        row = await s.get(Tenant, gone.id)
        assert row is not None
        row.lifecycle_state = LifecycleState.gone
    assert await ReconcileQueue(db).prune_finished(older_than=datetime.now(UTC)) == 1
    async with db.read() as s:
        left = set((await s.scalars(select(ReconcileItem.tenant_id))).all())
    assert left == {alive.id}


async def test_audit_retention_deletes_only_old_rows(db, tenant_factory) -> None:
    tenant = await tenant_factory()
    async with db.transaction() as s:
        old = audit.record(s, actor="system", action="old", tenant_id=tenant.id)
        old.at = OLD
        audit.record(s, actor="system", action="new", tenant_id=tenant.id)
    async with db.transaction() as s:
        assert await audit.delete_older_than(s, datetime.now(UTC) - timedelta(days=400)) == 1
    async with db.read() as s:
        actions = (await s.scalars(select(AuditLog.action))).all()
        assert await s.scalar(select(func.count()).select_from(AuditLog)) == len(actions)
    assert "old" not in actions and "new" in actions
