"""Emulated time: a monotonic clock that can run faster than real time and be advanced by tests."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime


class EmulatorClock:
    """``now()`` is emulated monotonic seconds; ``wall()`` the matching UTC wall time.

    ``speed`` scales real time (10.0: ten emulated seconds per real second). ``advance(s)`` jumps
    forward, which lets a test finish a transition (or expire a lease) without sleeping.
    """

    def __init__(self, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("clock speed must be positive")
        self.speed = speed
        self._real_start = time.monotonic()
        self._wall_start = time.time()
        self._offset = 0.0

    def now(self) -> float:
        return (time.monotonic() - self._real_start) * self.speed + self._offset

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("time only moves forward")
        self._offset += seconds

    def wall_at(self, mono: float) -> float:
        """Unix time (seconds) for an emulated monotonic instant."""
        return self._wall_start + mono

    def wall(self) -> float:
        return self.wall_at(self.now())

    def mono_at_wall(self, unix: float) -> float:
        return unix - self._wall_start

    def real_seconds(self, emulated: float) -> float:
        return max(0.0, emulated) / self.speed

    async def sleep(self, emulated: float) -> None:
        await asyncio.sleep(self.real_seconds(emulated))

    def rebase(self, mono_now: float) -> None:
        """Make ``now()`` continue from ``mono_now`` (used when loading a snapshot)."""
        self._offset += mono_now - self.now()


def rfc3339(unix: float) -> str:
    """Fly style timestamp, second precision: 2026-11-21T10:22:25Z."""
    return datetime.fromtimestamp(unix, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_rfc3339(text: str) -> float:
    value = text.strip()
    if value.endswith("Z") or value.endswith("z"):
        value = value[:-1] + "+00:00"
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is None:
        raise ValueError("timestamp needs a timezone")
    return parsed.timestamp()
