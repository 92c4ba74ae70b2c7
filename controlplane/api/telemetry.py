"""Request ids, JSON access logs and Prometheus metrics for every request (an ASGI middleware).

An access log line carries the method, the route's template (``/v1/tenants/{external_id}/keys``,
never the raw path: no path value, no query string, no header and no body is ever logged), the
status, the duration and the request id. The request id comes from a well-formed ``X-Request-Id``
header (not shaped like a key) or is made up, is echoed in the response and bound to every log
line of the request.

Metrics live in a registry of the app (``app.state.metrics``), served at ``/metrics``.
"""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client import CollectorRegistry, Counter, Histogram

from controlplane.redaction import redact_text

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._-]{1,64}$")
UNMATCHED = "<unmatched>"

access_log = structlog.get_logger("controlplane.api.access")


@dataclass(frozen=True, slots=True)
class ApiMetrics:
    registry: CollectorRegistry
    requests: Counter
    latency: Histogram

    @classmethod
    def create(cls) -> ApiMetrics:
        registry = CollectorRegistry(auto_describe=True)
        requests = Counter(
            "cp_api_requests",
            "Dashboard API requests by route template, method and status.",
            ("method", "route", "status"),
            registry=registry,
        )
        latency = Histogram(
            "cp_api_request_duration_seconds",
            "Dashboard API request duration by route template and method.",
            ("method", "route"),
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
            registry=registry,
        )
        return cls(registry, requests, latency)


def route_template(scope: Scope) -> str:
    route = scope.get("route")
    path = getattr(route, "path", None)
    return path if isinstance(path, str) else UNMATCHED


class Telemetry:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, *, metrics: ApiMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = _request_id(scope)
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        with structlog.contextvars.bound_contextvars(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                elapsed = time.perf_counter() - started
                route = route_template(scope)
                method = str(scope.get("method", ""))
                self.metrics.requests.labels(method, route, str(status)).inc()
                self.metrics.latency.labels(method, route).observe(elapsed)
                access_log.info(
                    "http.request",
                    method=method,
                    route=route,
                    status=status,
                    duration_ms=round(elapsed * 1000, 2),
                )


def _request_id(scope: Scope) -> str:
    """The caller's ``X-Request-Id`` when it is well formed and not shaped like a secret (it is
    echoed and logged), else a new one."""
    for name, value in scope.get("headers", ()):
        if name.lower() == b"x-request-id" and _REQUEST_ID.match(value):
            text = str(value.decode("ascii"))
            if redact_text(text) == text:
                return text
    return uuid.uuid4().hex


__all__ = ["UNMATCHED", "ApiMetrics", "Telemetry", "route_template"]
