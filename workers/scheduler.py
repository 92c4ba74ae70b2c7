"""Periodic jobs that run exactly once per period, across any number of worker processes.

Time is cut into periods of each job's interval (aligned to the Unix epoch, UTC). Running a period
means owning its row in ``job_runs``: one statement inserts it, or takes it over when an earlier
owner's lease expired before it finished (it crashed or was killed), and tells the caller whether it
won. The winner renews the lease while the job runs and marks the period finished at the end; a
failure leaves it unfinished, so the period is tried again (by any process) after the lease. Two
processes therefore never run one period at once, and a period that finished never runs again.

On PostgreSQL and SQLite alike the claim is one ``INSERT ... ON CONFLICT DO UPDATE ... WHERE
<unfinished and lease expired> RETURNING``: the row lock (PostgreSQL) or the write lock (SQLite,
``BEGIN IMMEDIATE``) serialises contenders.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from sqlalchemy import Table, and_, literal, or_, update
from sqlalchemy.dialects import postgresql, sqlite

from controlplane.clock import Clock, SystemClock
from controlplane.db.models import JobRun
from controlplane.db.session import Database
from controlplane.db.types import UTCDateTime
from controlplane.redaction import redact_text

log = structlog.get_logger(__name__)
RUNS: Table = JobRun.__table__  # type: ignore[assignment]

JobFn = Callable[[datetime], Awaitable[Any]]


@dataclass(frozen=True, slots=True)
class Job:
    """``run(period_start)`` every ``interval_seconds``; a run's lease lasts ``lease_seconds``."""

    name: str
    interval_seconds: float
    run: JobFn
    lease_seconds: float = 120.0


def period_start(now: datetime, interval_seconds: float) -> datetime:
    """The start of the period ``now`` falls in (periods aligned to the epoch)."""
    epoch = now.timestamp()
    return datetime.fromtimestamp(math.floor(epoch / interval_seconds) * interval_seconds, UTC)


def _period_key(start: datetime) -> str:
    return start.strftime("%Y-%m-%dT%H:%M:%SZ")


class Scheduler:
    """Runs :class:`Job` s; :meth:`tick` runs every job whose current period is unclaimed."""

    def __init__(self, db: Database, jobs: Sequence[Job], *, owner: str, clock: Clock | None = None) -> None:
        self.db = db
        self.jobs = list(jobs)
        self.owner = owner
        self.clock: Clock = clock or SystemClock()

    async def claim(self, job: Job, start: datetime) -> bool:
        """Take period ``start`` of ``job``; ``False`` when it finished or another process runs it."""
        now = self.clock.now()
        expires = now + timedelta(seconds=job.lease_seconds)
        async with self.db.transaction() as session:
            dialect = session.get_bind().dialect.name
            insert = postgresql.insert(RUNS) if dialect == "postgresql" else sqlite.insert(RUNS)
            c = RUNS.c
            stmt = (
                insert.values(
                    job=job.name,
                    period=_period_key(start),
                    owner=self.owner,
                    lease_expires_at=expires,
                    attempts=1,
                    started_at=now,
                )
                .on_conflict_do_update(
                    index_elements=[c.job, c.period],
                    set_={
                        "owner": self.owner,
                        "lease_expires_at": expires,
                        "attempts": c.attempts + 1,
                        "started_at": now,
                    },
                    where=and_(
                        c.finished_at.is_(None),
                        or_(
                            c.lease_expires_at.is_(None),
                            c.lease_expires_at <= literal(now, type_=UTCDateTime()),
                        ),
                    ),
                )
                .returning(c.attempts)
            )
            won = (await session.execute(stmt)).first()
        return won is not None

    async def _renew(self, job: Job, start: datetime) -> None:
        while True:
            await self.clock.sleep(job.lease_seconds / 3)
            async with self.db.transaction() as session:
                await session.execute(
                    update(RUNS)
                    .where(
                        RUNS.c.job == job.name,
                        RUNS.c.period == _period_key(start),
                        RUNS.c.owner == self.owner,
                    )
                    .values(lease_expires_at=self.clock.now() + timedelta(seconds=job.lease_seconds))
                )

    async def _end(self, job: Job, start: datetime, error: str | None) -> None:
        values: dict[str, Any] = (
            {"finished_at": self.clock.now(), "lease_expires_at": None, "last_error": None}
            if error is None
            else {"lease_expires_at": None, "last_error": error[:2000]}
        )
        async with self.db.transaction() as session:
            await session.execute(
                update(RUNS)
                .where(
                    RUNS.c.job == job.name, RUNS.c.period == _period_key(start), RUNS.c.owner == self.owner
                )
                .values(**values)
            )

    async def run_period(self, job: Job, start: datetime) -> bool:
        """Run ``job`` for period ``start`` if this process wins it; ``True`` when it ran and finished."""
        if not await self.claim(job, start):
            return False
        renew = asyncio.create_task(self._renew(job, start))
        try:
            await job.run(start)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            message = redact_text(f"{type(exc).__name__}: {exc}")
            log.error("scheduler.job_failed", job=job.name, period=_period_key(start), error=message)
            await self._end(job, start, message)
            return False
        finally:
            renew.cancel()
            await asyncio.gather(renew, return_exceptions=True)
        await self._end(job, start, None)
        log.info("scheduler.job_done", job=job.name, period=_period_key(start))
        return True

    async def tick(self) -> list[str]:
        """Run each job's current period if nobody has; returns the names of jobs that ran."""
        ran = []
        now = self.clock.now()
        for job in self.jobs:
            if await self.run_period(job, period_start(now, job.interval_seconds)):
                ran.append(job.name)
        return ran

    def seconds_until_next_period(self) -> float:
        now = self.clock.now()
        ends = [
            period_start(now, j.interval_seconds) + timedelta(seconds=j.interval_seconds) for j in self.jobs
        ]
        return max(0.0, (min(ends) - now).total_seconds()) if ends else 3600.0

    async def prune(self, *, older_than: datetime) -> int:
        """Delete finished periods that started before ``older_than`` (a periodic job keeps the table
        small; an unfinished period is never deleted, so it is still retried)."""
        async with self.db.transaction() as session:
            result = await session.execute(
                RUNS.delete().where(
                    RUNS.c.finished_at.is_not(None),
                    RUNS.c.started_at < literal(older_than, type_=UTCDateTime()),
                )
            )
        return int(getattr(result, "rowcount", 0) or 0)

    async def run_forever(self, stop: asyncio.Event, *, retry_seconds: float = 15.0) -> None:
        """Tick at each period boundary (and every ``retry_seconds``, so a crashed run is retried
        within its period) until ``stop`` is set."""
        while not stop.is_set():
            try:
                await self.tick()
            except Exception as exc:  # the database was unreachable: try again shortly
                log.warning("scheduler.tick_failed", error=redact_text(f"{type(exc).__name__}: {exc}"))
            wait = min(self.seconds_until_next_period() + 0.05, retry_seconds)
            try:
                await asyncio.wait_for(stop.wait(), timeout=wait)
            except TimeoutError:
                pass


__all__ = ["Job", "JobFn", "Scheduler", "period_start"]
