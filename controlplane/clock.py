"""The control plane's time source, injectable so tests run on virtual time.

Everything that paces, retries, waits, leases or schedules takes a :class:`Clock`: ``monotonic()``
and ``sleep()`` for durations, ``now()`` for timestamps written to the database (always aware UTC).
Production code uses :class:`SystemClock`; tests use :class:`controlplane.testing.FakeClock`.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime
from typing import Protocol


class Clock(Protocol):
    def monotonic(self) -> float: ...

    async def sleep(self, seconds: float) -> None: ...

    def now(self) -> datetime: ...


class SystemClock:
    """Real time: ``time.monotonic``, ``asyncio.sleep`` and the UTC wall clock."""

    def monotonic(self) -> float:
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(0.0, seconds))

    def now(self) -> datetime:
        return datetime.now(UTC)


__all__ = ["Clock", "SystemClock"]
