"""The worker's Prometheus metrics, and a transport that counts every Fly API call.

:class:`CountingTransport` wraps the Fly client's httpx transport (swapping transports instead of
patching, as httpx intends) and counts calls by endpoint (the path with ids replaced by their
names, e.g. ``POST /v1/apps/{app}/machines/{machine}/stop``) and status; benchmarks and tests read the
same counts through :meth:`CountingTransport.snapshot`.
"""

from __future__ import annotations

import functools
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from typing import ParamSpec, TypeVar

import httpx
from prometheus_client import CollectorRegistry, Gauge, Histogram
from prometheus_client import Counter as PromCounter

REGISTRY = CollectorRegistry(auto_describe=True)

RECONCILES = PromCounter(
    "cp_reconciles_total",
    "Reconciles by outcome (finish, requeue, retry, park, lost).",
    ["outcome"],
    registry=REGISTRY,
)
RECONCILE_SECONDS = Histogram(
    "cp_reconcile_seconds",
    "Duration of one reconcile, by outcome.",
    ["outcome"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80),
    registry=REGISTRY,
)
STEP_SECONDS = Histogram(
    "cp_reconcile_step_seconds",
    "Duration of one reconcile step (app, volume, secrets, machine, power, wait, probe, destroy).",
    ["step"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20),
    registry=REGISTRY,
)
LEASE_LOSSES = PromCounter(
    "cp_lease_losses_total", "Runs whose queue lease was lost mid-run.", registry=REGISTRY
)
QUEUE_TENANTS = Gauge(
    "cp_queue_tenants",
    "Tenants in the reconcile queue by state (due, backing_off, leased, parked, idle).",
    ["state"],
    registry=REGISTRY,
)
FLY_CALLS = PromCounter(
    "cp_fly_calls_total",
    "Fly Machines API calls by endpoint and HTTP status.",
    ["endpoint", "status"],
    registry=REGISTRY,
)
DRIFT_MARKS = PromCounter(
    "cp_resync_marks_total", "Tenants the resync marked, by reason.", ["reason"], registry=REGISTRY
)
HEALTH_SWEEP_SECONDS = Histogram(
    "cp_health_sweep_seconds",
    "Duration of one health sweep.",
    buckets=(0.1, 0.5, 1, 2.5, 5, 10, 20, 30, 60, 120),
    registry=REGISTRY,
)
HEALTH_CALLS = PromCounter(
    "cp_health_calls_total",
    "What health sweeps sent: Fly listing pages, machine event reads, execs, /readyz probes, failed probes.",
    ["kind"],
    registry=REGISTRY,
)
BANNER_CHANGES = PromCounter(
    "cp_banner_changes_total",
    "Banners raised or cleared by the health sweep, by kind.",
    ["kind", "change"],
    registry=REGISTRY,
)

P = ParamSpec("P")
R = TypeVar("R")


def timed_step(step: str) -> Callable[[Callable[P, Awaitable[R]]], Callable[P, Awaitable[R]]]:
    """Decorate one step of a reconcile: its duration goes to ``cp_reconcile_step_seconds{step}``."""

    def decorate(fn: Callable[P, Awaitable[R]]) -> Callable[P, Awaitable[R]]:
        @functools.wraps(fn)
        async def run(*args: P.args, **kwargs: P.kwargs) -> R:
            started = time.perf_counter()
            try:
                return await fn(*args, **kwargs)
            finally:
                STEP_SECONDS.labels(step).observe(time.perf_counter() - started)

        return run

    return decorate


_ID_SEGMENTS = (
    (re.compile(r"^/v1/apps/[^/]+"), "/v1/apps/{app}"),
    (re.compile(r"/machines/[^/]+"), "/machines/{machine}"),
    (re.compile(r"/volumes/[^/]+"), "/volumes/{volume}"),
    (re.compile(r"/secrets/[^/]+"), "/secrets/{name}"),
    (re.compile(r"/metadata/[^/]+"), "/metadata/{key}"),
    (re.compile(r"^/v1/orgs/[^/]+"), "/v1/orgs/{org}"),
)


def endpoint_of(method: str, path: str) -> str:
    """``GET /v1/apps/{app}/machines/{machine}`` for ``GET /v1/apps/oc-1/machines/d8e...``."""
    for pattern, name in _ID_SEGMENTS:
        path = pattern.sub(name, path, count=1)
    return f"{method} {path}"


class CountingTransport(httpx.AsyncBaseTransport):
    """Counts each Fly API call (endpoint, status); a call that fails to connect counts as ``error``."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self._inner = inner
        self._counts: Counter[tuple[str, str]] = Counter()
        self._lock = threading.Lock()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        endpoint = endpoint_of(request.method, request.url.path)
        try:
            response = await self._inner.handle_async_request(request)
        except Exception:
            self._count(endpoint, "error")
            raise
        self._count(endpoint, str(response.status_code))
        return response

    def _count(self, endpoint: str, status: str) -> None:
        with self._lock:
            self._counts[(endpoint, status)] += 1
        FLY_CALLS.labels(endpoint, status).inc()

    def snapshot(self) -> Counter[tuple[str, str]]:
        with self._lock:
            return Counter(self._counts)

    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    async def aclose(self) -> None:
        await self._inner.aclose()


__all__ = [
    "DRIFT_MARKS",
    "FLY_CALLS",
    "LEASE_LOSSES",
    "QUEUE_TENANTS",
    "RECONCILES",
    "RECONCILE_SECONDS",
    "REGISTRY",
    "STEP_SECONDS",
    "CountingTransport",
    "endpoint_of",
    "timed_step",
]
