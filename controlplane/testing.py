"""Test doubles shipped with the package (procrastinate ships ``procrastinate/testing.py`` the same
way): tests of any part, and operators' own tests, use them instead of patching time.

:class:`FakeClock` is a :class:`controlplane.clock.Clock` on virtual time. In ``auto`` mode every
sleep advances time at once (retries, pacing and backoff finish instantly, and ``sleeps`` records what
was asked). In manual mode sleepers wait until the test calls :meth:`FakeClock.advance` (background
tasks such as lease refreshes and heartbeats). ``now()`` moves with ``monotonic()``.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
from datetime import UTC, datetime, timedelta

#: Where a FakeClock's wall clock starts unless told otherwise.
EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


async def settle(rounds: int = 300) -> None:
    """Let every ready task run until nothing is left to do (bounded)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    """Virtual time: see the module docstring."""

    def __init__(self, *, auto: bool = True, start: datetime = EPOCH) -> None:
        self.now_monotonic = 1000.0
        self._origin = self.now_monotonic
        self._start = start
        self.auto = auto
        self.sleeps: list[float] = []
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def monotonic(self) -> float:
        return self.now_monotonic

    def now(self) -> datetime:
        return self._start + timedelta(seconds=self.now_monotonic - self._origin)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        self.sleeps.append(seconds)
        if self.auto:
            self.now_monotonic += seconds
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self.now_monotonic + seconds, next(self._seq), future))
        await future

    async def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``, waking every sleeper due on the way, in order."""
        target = self.now_monotonic + seconds
        await settle()  # let freshly started tasks register their sleeps first
        while self._sleepers and self._sleepers[0][0] <= target:
            wake, _, future = heapq.heappop(self._sleepers)
            self.now_monotonic = max(self.now_monotonic, wake)
            if not future.done():
                future.set_result(None)
            await settle()
        self.now_monotonic = target
        await settle()


__all__ = ["EPOCH", "FakeClock", "settle"]
