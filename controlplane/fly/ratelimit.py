"""Client-side pacing so the control plane never provokes Fly's 429s itself (fly-machines.md §10).

Fly's published limits: each action (create, start, stop, update, ...) 1 req/s with burst 3 per
machine or app; Get Machine 5 req/s burst 10 per machine; app deletions 100/min. One token bucket per
``(action, scope)``; scope is the machine id, the app name, or ``"*"`` for org-wide limits (app
creates and deletes).

The buckets run at ~90% of the published figures (:data:`SAFETY_MARGIN`): rate and burst both, so
clock skew, network jitter and a server whose bucket started a little earlier never turn our own
pacing into 429s.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from dataclasses import dataclass, field

from controlplane.clock import Clock, SystemClock


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int


_EPSILON = 1e-6

#: Fraction of Fly's published rate we allow ourselves.
SAFETY_MARGIN = 0.9

#: Fly: 1 req/s burst 3 → 0.9/s burst 2.
DEFAULT_ACTION_LIMIT = Limit(rate=1.0 * SAFETY_MARGIN, burst=2)

#: Actions whose published limit differs from the default 1/s burst 3.
DEFAULT_LIMITS: dict[str, Limit] = {
    "get_machine": Limit(rate=5.0 * SAFETY_MARGIN, burst=9),  # Fly: 5/s burst 10
    "delete_app": Limit(rate=100 / 60 * SAFETY_MARGIN, burst=9),  # Fly: 100/min
}


@dataclass
class TokenBucket:
    """A classic token bucket. ``acquire`` waits (via the clock) until a token is available.

    Waiters are served first come, first served (an asyncio.Lock is FIFO).
    """

    limit: Limit
    clock: Clock
    tokens: float = field(init=False)
    updated: float = field(init=False)
    _lock: asyncio.Lock = field(init=False, default_factory=asyncio.Lock)

    def __post_init__(self) -> None:
        self.tokens = float(self.limit.burst)
        self.updated = self.clock.monotonic()

    def _refill(self) -> None:
        now = self.clock.monotonic()
        elapsed = max(0.0, now - self.updated)
        self.tokens = min(float(self.limit.burst), self.tokens + elapsed * self.limit.rate)
        self.updated = now

    def idle(self) -> bool:
        """Full and nobody waiting: can be forgotten without changing behaviour."""
        self._refill()
        return self.tokens >= self.limit.burst and not self._lock.locked()

    async def acquire(self) -> float:
        """Take one token; returns the seconds spent waiting."""
        waited = 0.0
        async with self._lock:
            while True:
                self._refill()
                # Tolerance: float refill after an exact sleep can land at 0.9999999...
                if self.tokens >= 1.0 - _EPSILON:
                    self.tokens = max(0.0, self.tokens - 1.0)
                    return waited
                delay = (1.0 - self.tokens) / self.limit.rate
                waited += delay
                await self.clock.sleep(delay)


class RateLimiter:
    """Token buckets per ``(action, scope)`` with Fly's published limits.

    ``max_buckets`` bounds memory on a big fleet: idle (full) buckets are forgotten first.
    """

    def __init__(
        self,
        *,
        clock: Clock | None = None,
        limits: dict[str, Limit] | None = None,
        default: Limit = DEFAULT_ACTION_LIMIT,
        max_buckets: int = 10_000,
        enabled: bool = True,
        scale: float = 1.0,
    ) -> None:
        if scale <= 0:
            raise ValueError("rate limit scale must be positive")
        self.clock = clock or SystemClock()
        # ``scale``: an organisation whose limits Fly raised (or an emulator running faster than
        # real time) multiplies every rate; bursts stay as published.
        self.limits = {
            action: Limit(limit.rate * scale, limit.burst)
            for action, limit in {**DEFAULT_LIMITS, **(limits or {})}.items()
        }
        self.default = Limit(default.rate * scale, default.burst)
        self.max_buckets = max_buckets
        self.enabled = enabled
        self._buckets: OrderedDict[tuple[str, str], TokenBucket] = OrderedDict()

    def limit_for(self, action: str) -> Limit:
        return self.limits.get(action, self.default)

    def bucket(self, action: str, scope: str) -> TokenBucket:
        key = (action, scope)
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_buckets:
                self._prune()
            bucket = TokenBucket(self.limit_for(action), self.clock)
            self._buckets[key] = bucket
        else:
            self._buckets.move_to_end(key)
        return bucket

    def _prune(self) -> None:
        for key in [k for k, b in self._buckets.items() if b.idle()]:
            del self._buckets[key]
            if len(self._buckets) < self.max_buckets // 2:
                break

    async def acquire(self, action: str, scope: str) -> float:
        """Wait for a token of ``(action, scope)``; returns the seconds waited."""
        if not self.enabled:
            return 0.0
        return await self.bucket(action, scope).acquire()

    def __len__(self) -> int:
        return len(self._buckets)


__all__ = ["DEFAULT_ACTION_LIMIT", "DEFAULT_LIMITS", "SAFETY_MARGIN", "Limit", "RateLimiter", "TokenBucket"]
