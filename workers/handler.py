"""The ONE place a reconcile's outcome becomes a queue action (controller-runtime's
``reconcileHandler``): every run of a claimed tenant goes through :func:`handle`.

=========================  ===========================================
reconcile returned/raised   queue action
=========================  ===========================================
``Result.done()``          :meth:`ReconcileQueue.finish`
``Result.after(n)``        :meth:`ReconcileQueue.requeue_after` (n s)
transient error            :meth:`ReconcileQueue.retry` (backoff)
terminal error             :meth:`ReconcileQueue.park` (reason shown)
lease lost mid-run         nothing (the new holder decides)
cancelled (shutdown)       :meth:`ReconcileQueue.release`
=========================  ===========================================

Every log line of the run carries ``reconcile_id`` and ``tenant_id`` (structlog context variables),
and the run's heartbeat keeps the lease alive; if the heartbeat finds the lease gone, the run is
cancelled: another worker holds the tenant now.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Literal

import structlog

from controlplane.db.queue import Claim, ReconcileQueue
from controlplane.fly.errors import FlyError
from controlplane.redaction import redact_text
from workers.contract import ReconcileError, Result, classify

log = structlog.get_logger(__name__)

Action = Literal["finish", "requeue", "retry", "park", "release", "lost"]
Reconcile = Callable[[str], Coroutine[Any, Any, Result]]


@dataclass(frozen=True, slots=True)
class Handled:
    """What one run ended in (for metrics, ``reconcile --wait`` and tests)."""

    tenant_id: str
    reconcile_id: str
    action: Action
    seconds: float
    note: str = ""
    error: str | None = None
    requeue_after: float | None = None


class _LeaseLost(Exception):
    pass


async def _heartbeat(queue: ReconcileQueue, claim: Claim, interval: float) -> None:
    while True:
        await queue.clock.sleep(interval)
        if not await queue.heartbeat(claim):
            raise _LeaseLost


async def handle(queue: ReconcileQueue, claim: Claim, reconcile: Reconcile) -> Handled:
    """Run ``reconcile`` for the claimed tenant and record exactly one queue action."""
    reconcile_id = uuid.uuid4().hex[:12]
    started = time.monotonic()
    with structlog.contextvars.bound_contextvars(reconcile_id=reconcile_id, tenant_id=claim.tenant_id):
        work = asyncio.create_task(reconcile(claim.tenant_id))
        beat = asyncio.create_task(_heartbeat(queue, claim, max(1.0, queue.lease_seconds / 3)))
        try:
            done, _ = await asyncio.wait({work, beat}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            beat.cancel()
            await asyncio.gather(work, beat, return_exceptions=True)
            await asyncio.shield(queue.release(claim))
            log.info("reconcile.released", reason="shutdown")
            raise
        beat.cancel()
        if work not in done:  # the heartbeat ended first: the lease is gone
            work.cancel()
            await asyncio.gather(work, beat, return_exceptions=True)
            log.warning("reconcile.lease_lost")
            return Handled(claim.tenant_id, reconcile_id, "lost", time.monotonic() - started)
        await asyncio.gather(beat, return_exceptions=True)
        seconds = time.monotonic() - started
        duration_ms = int(seconds * 1000)
        error = work.exception()
        if error is None:
            result = work.result()
            if result.is_done:
                written = await queue.finish(claim, duration_ms=duration_ms)
                action: Action = "finish"
            else:
                written = await queue.requeue_after(
                    claim, result.requeue_after or 0.0, duration_ms=duration_ms
                )
                action = "requeue"
            log.info(
                "reconcile.ok",
                action=action,
                seconds=round(seconds, 3),
                note=result.note,
                requeue_after=result.requeue_after,
            )
            return Handled(
                claim.tenant_id,
                reconcile_id,
                action if written else "lost",
                seconds,
                note=result.note,
                requeue_after=result.requeue_after,
            )
        kind, message, retry_after = classify(error)
        message = redact_text(message)
        if kind == "terminal":
            written = await queue.park(claim, message, duration_ms=duration_ms)
            log.error("reconcile.parked", error=message)
            return Handled(
                claim.tenant_id, reconcile_id, "park" if written else "lost", seconds, error=message
            )
        delay = await queue.retry(claim, message, retry_after=retry_after, duration_ms=duration_ms)
        log.warning(
            "reconcile.retry",
            error=message,
            retry_in=round(delay, 2) if delay is not None else None,
            attempts=claim.attempts + 1,
            exc_info=error if not isinstance(error, (ReconcileError, FlyError)) else None,
        )
        return Handled(
            claim.tenant_id,
            reconcile_id,
            "retry" if delay is not None else "lost",
            seconds,
            error=message,
            requeue_after=delay,
        )


__all__ = ["Action", "Handled", "Reconcile", "handle"]
