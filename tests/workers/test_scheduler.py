"""Periodic jobs run exactly once per period across schedulers (separate database connections, both
databases), and a run that died mid-period is run again in the same period (workers/scheduler.py)."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import datetime

from sqlalchemy import select

from controlplane.db.models import JobRun
from controlplane.db.session import Database, create_engine
from controlplane.testing import FakeClock
from workers.scheduler import Job, Scheduler, period_start


def second_connection(db: Database, empty_database: dict[str, str]) -> Database:
    """Another engine on the same database: what a second worker process would have."""
    return Database(create_engine(empty_database["url"], pg_schema=empty_database["pg_schema"]))


async def test_two_schedulers_run_each_period_exactly_once_over_twenty_periods(db, empty_database) -> None:
    clock = FakeClock()
    runs: Counter[tuple[str, datetime]] = Counter()

    async def job(period: datetime) -> None:
        runs[("sweep", period)] += 1
        await asyncio.sleep(0.01)  # long enough for the other scheduler to try the same period

    other = second_connection(db, empty_database)
    try:
        jobs = [Job("sweep", 60.0, job)]
        a = Scheduler(db, jobs, owner="a", clock=clock)
        b = Scheduler(other, jobs, owner="b", clock=clock)
        for _ in range(20):
            await asyncio.gather(a.tick(), b.tick(), a.tick())
            await clock.advance(60.0)
        assert len(runs) == 20 and set(runs.values()) == {1}
        async with db.read() as s:
            rows = (await s.execute(select(JobRun.period, JobRun.finished_at, JobRun.attempts))).all()
        assert len(rows) == 20 and all(r.finished_at is not None and r.attempts == 1 for r in rows)
    finally:
        await other.dispose()


async def test_a_run_killed_mid_period_is_run_again_in_the_same_period(db, empty_database) -> None:
    clock = FakeClock()
    started = asyncio.Event()
    runs: list[str] = []

    async def slow(period: datetime) -> None:
        runs.append("a")
        started.set()
        await asyncio.sleep(3600)

    async def quick(period: datetime) -> None:
        runs.append("b")

    other = second_connection(db, empty_database)
    try:
        a = Scheduler(db, [Job("grace", 3600.0, slow, lease_seconds=30)], owner="a", clock=clock)
        b = Scheduler(other, [Job("grace", 3600.0, quick, lease_seconds=30)], owner="b", clock=clock)
        period = period_start(clock.now(), 3600.0)
        killed = asyncio.create_task(a.run_period(a.jobs[0], period))
        await started.wait()
        killed.cancel()  # the process died: no finish written, the lease runs out
        await asyncio.gather(killed, return_exceptions=True)
        assert await b.run_period(b.jobs[0], period) is False  # still leased
        await clock.advance(31)
        assert await b.run_period(b.jobs[0], period) is True
        assert await a.run_period(a.jobs[0], period) is False  # finished: never again this period
        assert runs == ["a", "b"]
    finally:
        await other.dispose()


async def test_a_failed_run_is_retried_in_its_period(db) -> None:
    clock = FakeClock()
    attempts: list[int] = []

    async def flaky(period: datetime) -> None:
        attempts.append(1)
        if len(attempts) == 1:
            raise RuntimeError("provider timeout")

    scheduler = Scheduler(db, [Job("revalidate", 600.0, flaky)], owner="a", clock=clock)
    assert await scheduler.tick() == []
    assert await scheduler.tick() == ["revalidate"]
    assert await scheduler.tick() == []
    assert len(attempts) == 2
