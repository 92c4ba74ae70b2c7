"""The worker loop: claim due tenants, run up to N reconciles at once, shut down cleanly.

:class:`Worker` keeps ``concurrency`` reconciles in flight: whenever a slot is free it claims due
tenants (explicit marks first) and hands each to :func:`workers.handler.handle`. When nothing is due
it sleeps until the next tenant falls due, a poll interval passes, or a wake event fires (PostgreSQL
``NOTIFY`` on a mark, see :mod:`workers.notify`).

Stopping (SIGTERM, or ``stop`` set): no new claims; runs in flight get ``shutdown_seconds`` to
finish, the rest are cancelled (the handler gives their lease back), and any lease still held by
this worker is released, so another worker can take the tenants at once. ``until_idle`` ends the
loop once nothing runs and nothing is due within ``idle_horizon_seconds`` (the demo and tests).
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
import uuid
from collections.abc import Callable

import structlog

from controlplane.db.queue import Claim, ReconcileQueue
from workers.handler import Handled, Reconcile, handle
from workers.metrics import LEASE_LOSSES, QUEUE_TENANTS, RECONCILE_SECONDS, RECONCILES

log = structlog.get_logger(__name__)


def worker_id() -> str:
    """``host:pid:random``: unique per process, readable in the queue's ``lease_owner``."""
    return f"{socket.gethostname()[:60]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


class Worker:
    def __init__(
        self,
        queue: ReconcileQueue,
        reconcile: Reconcile,
        *,
        concurrency: int = 16,
        owner: str | None = None,
        poll_seconds: float = 1.0,
        shutdown_seconds: float = 20.0,
        wake: asyncio.Event | None = None,
        on_handled: Callable[[Handled], None] | None = None,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        self.queue = queue
        self.reconcile = reconcile
        self.concurrency = concurrency
        self.owner = owner or worker_id()
        self.poll_seconds = poll_seconds
        self.shutdown_seconds = shutdown_seconds
        self.wake = wake or asyncio.Event()
        self.on_handled = on_handled
        self.running: set[asyncio.Task[None]] = set()
        self.last_loop = time.monotonic()  # /healthz: the loop is alive
        self.handled = 0

    async def _run_claim(self, claim: Claim) -> None:
        try:
            result = await handle(self.queue, claim, self.reconcile)
        except asyncio.CancelledError:
            raise
        except Exception:  # the handler itself failed (database unreachable): the lease expires
            log.exception("worker.handler_failed", tenant_id=claim.tenant_id)
            return
        self.handled += 1
        RECONCILES.labels(result.action).inc()
        RECONCILE_SECONDS.labels(result.action).observe(result.seconds)
        if result.action == "lost":
            LEASE_LOSSES.inc()
        if self.on_handled is not None:
            self.on_handled(result)

    async def _fill(self) -> int:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return 0
        claims = await self.queue.claim(self.owner, limit=free)
        for claim in claims:
            task = asyncio.create_task(self._run_claim(claim), name=f"reconcile:{claim.tenant_id}")
            self.running.add(task)
            task.add_done_callback(self.running.discard)
        return len(claims)

    async def _idle_wait(self, seconds: float, stop: asyncio.Event) -> None:
        waiters: set[asyncio.Future[object]] = {
            asyncio.ensure_future(self.wake.wait()),
            asyncio.ensure_future(stop.wait()),
        }
        if self.running:
            waiters.add(
                asyncio.ensure_future(asyncio.wait(set(self.running), return_when=asyncio.FIRST_COMPLETED))
            )
        try:
            await asyncio.wait(waiters, timeout=max(0.0, seconds), return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
            self.wake.clear()

    async def run(
        self, stop: asyncio.Event, *, until_idle: bool = False, idle_horizon_seconds: float = 30.0
    ) -> None:
        log.info("worker.started", owner=self.owner, concurrency=self.concurrency)
        try:
            while not stop.is_set():
                self.last_loop = time.monotonic()
                try:
                    claimed = await self._fill()
                except Exception as exc:  # the database is unreachable: keep running, try again
                    log.warning("worker.claim_failed", error=f"{type(exc).__name__}")
                    await self._idle_wait(self.poll_seconds, stop)
                    continue
                if claimed and len(self.running) < self.concurrency:
                    continue  # more may be due right now
                if len(self.running) >= self.concurrency:
                    await self._idle_wait(self.poll_seconds, stop)  # until a slot frees
                    continue
                due_in = await self.queue.seconds_until_due()
                if until_idle and not self.running and (due_in is None or due_in > idle_horizon_seconds):
                    log.info("worker.idle", handled=self.handled)
                    return
                wait = self.poll_seconds if due_in is None else min(self.poll_seconds, due_in)
                await self._idle_wait(wait, stop)
        finally:
            await self.drain()

    async def drain(self) -> None:
        """Let runs in flight finish (bounded), cancel the rest, release every lease still held."""
        if self.running:
            _, pending = await asyncio.wait(set(self.running), timeout=self.shutdown_seconds)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        released = await self.queue.release_all(self.owner)
        log.info("worker.stopped", owner=self.owner, handled=self.handled, released=released)

    async def publish_queue_stats(self) -> None:
        stats = await self.queue.stats()
        for state in ("due", "backing_off", "leased", "parked", "idle"):
            QUEUE_TENANTS.labels(state).set(getattr(stats, state))


__all__ = ["Worker", "worker_id"]
