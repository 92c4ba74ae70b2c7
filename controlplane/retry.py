"""One backoff policy for everything that waits before trying again: jittered exponential delays.

:class:`Backoff` is pure (attempt number -> delay); the in-process retry loops of the Fly helpers and
the reconcile queue's per-tenant backoff both take their delays from it, so "how long until the next
try" is decided in one place. Jitter is "full jitter on the upper half" (AWS architecture blog's
"equal jitter"): ``delay = d/2 + uniform(0, d/2)`` with ``d = min(cap, initial * factor**attempt)``,
so retries of many callers spread out and never shrink below half the nominal delay.
"""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """Exponential backoff: ``initial`` seconds for the first retry, times ``factor`` per attempt,
    never above ``cap``; ``jitter`` spreads each delay over its upper half."""

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    jitter: bool = True

    def __post_init__(self) -> None:
        if not (self.initial > 0 and self.factor >= 1 and self.cap >= self.initial):
            raise ValueError("Backoff: need initial > 0, factor >= 1 and cap >= initial")

    def nominal(self, attempt: int) -> float:
        """The un-jittered delay before retry number ``attempt`` (0 = the first retry)."""
        exponent = min(max(attempt, 0), 64)  # no float overflow for absurd attempt counts
        return min(self.cap, self.initial * self.factor**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """The delay before retry number ``attempt``, jittered when ``jitter`` is on."""
        nominal = self.nominal(attempt)
        if not self.jitter:
            return nominal
        return nominal / 2 + (rng or random).uniform(0, nominal / 2)


__all__ = ["Backoff"]
