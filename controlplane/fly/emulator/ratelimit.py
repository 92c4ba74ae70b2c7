"""Fly's published Machines API rate limits as token buckets (emulated time).

* each action (create, start, stop, update, wait, lease, ...): 1 req/s, burst 3, per machine (per app
  for app-level actions);
* Get Machine: 5 req/s, burst 10, per machine;
* app deletions: 100 per minute (per org);
* app creates: the action figures (1 req/s, burst 3) in one bucket per org (not published; a
  per-org reading of "per action" — Fly's real per-org ceilings are an open question);
* org-wide machine listing: not published; we apply the Get Machine figures per org.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True)
class Limit:
    rate: float  # tokens per second
    burst: int


ACTION = Limit(rate=1.0, burst=3)
GET_MACHINE = Limit(rate=5.0, burst=10)
APP_DELETE = Limit(rate=100.0 / 60.0, burst=100)
ORG_LIST = Limit(rate=5.0, burst=10)

# Operations that are not rate limited at all (probes never reach the API).
UNLIMITED_OPS = frozenset({"not_found", "method_not_allowed"})


def limit_for(op: str) -> Limit:
    if op == "get_machine":
        return GET_MACHINE
    if op == "delete_app":
        return APP_DELETE
    if op == "list_org_machines":
        return ORG_LIST
    return ACTION


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """Token buckets keyed by (operation, scope id)."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self._buckets: dict[tuple[str, str], _Bucket] = {}

    def check(self, op: str, scope: str, now: float) -> float | None:
        """Take one token. None if allowed, else seconds until a token is available."""
        if not self.enabled or op in UNLIMITED_OPS:
            return None
        limit = limit_for(op)
        key = (op, scope)
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = _Bucket(tokens=float(limit.burst), stamp=now)
        bucket.tokens = min(float(limit.burst), bucket.tokens + (now - bucket.stamp) * limit.rate)
        bucket.stamp = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return None
        return (1.0 - bucket.tokens) / limit.rate

    def reset(self) -> None:
        self._buckets.clear()


def retry_after_header(wait_seconds: float) -> str:
    return str(max(1, math.ceil(wait_seconds)))
