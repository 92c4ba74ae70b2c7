"""Test support for the Fly client: an OpenAPI-validating transport, a stateful fake, a client factory
(the fake clock is :class:`controlplane.testing.FakeClock`)."""

from __future__ import annotations

import itertools
import json
import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from controlplane.fly import FlyClient
from controlplane.testing import FakeClock
from tests.support.fly_openapi import OpenAPIValidationError, validate_request

TOKEN = "fm2_sekrit-TOKEN-value-0123456789abcdef"
BASE = "https://fly.test"
API = BASE + "/v1"
ORG = "test-org"


@dataclass
class Sent:
    method: str
    path: str  # without /v1
    params: list[tuple[str, str]]
    body: Any
    headers: httpx.Headers
    time: float
    timeout: dict[str, Any] = field(default_factory=dict)


class ValidatingTransport(httpx.AsyncBaseTransport):
    """Checks EVERY request against Fly's OpenAPI spec (tests/fly_openapi.py), records it, then
    passes it on. Violations are collected and asserted empty by the fixtures at teardown (an
    exception raised here could be swallowed by a background task)."""

    def __init__(self, inner: httpx.AsyncBaseTransport, clock: FakeClock | None = None) -> None:
        self.inner = inner
        self.clock = clock
        self.sent: list[Sent] = []
        self.violations: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = None
        raw = await request.aread()
        if raw:
            body = json.loads(raw)
        params = list(request.url.params.multi_items())
        path = request.url.path
        try:
            validate_request(request.method, path, params, body, headers=dict(request.headers))
        except OpenAPIValidationError as exc:
            self.violations.append(str(exc))
        self.sent.append(
            Sent(
                request.method,
                path.removeprefix("/v1"),
                params,
                body,
                request.headers,
                self.clock.now_monotonic if self.clock else 0.0,
                dict(request.extensions.get("timeout", {})),
            )
        )
        return await self.inner.handle_async_request(request)

    def calls(self, method: str | None = None, pattern: str | None = None) -> list[Sent]:
        return [
            s
            for s in self.sent
            if (method is None or s.method == method) and (pattern is None or re.fullmatch(pattern, s.path))
        ]

    async def aclose(self) -> None:
        await self.inner.aclose()


def json_response(status: int, body: Any = None, headers: dict[str, str] | None = None) -> httpx.Response:
    hdrs = {"fly-request-id": f"req-{status}-abc"}
    hdrs.update(headers or {})
    if body is None:
        return httpx.Response(status, headers=hdrs)
    return httpx.Response(status, json=body, headers=hdrs)


def error(status: int, message: str, fly_status: str | None = None, **headers: str) -> httpx.Response:
    body: dict[str, Any] = {"error": message}
    if fly_status:
        body["status"] = fly_status
    return json_response(status, body, {k.replace("_", "-"): v for k, v in headers.items()})


def machine_json(
    mid: str = "m1",
    *,
    state: str = "started",
    instance_id: str = "v1",
    metadata: dict[str, str] | None = None,
    image: str = "img:1",
) -> dict[str, Any]:
    return {
        "id": mid,
        "name": f"n-{mid}",
        "state": state,
        "region": "iad",
        "instance_id": instance_id,
        "private_ip": "fdaa::1",
        "created_at": "2026-01-01T00:00:00Z",
        "config": {
            "image": image,
            "metadata": metadata or {},
            "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 256},
        },
    }


class FakeMachines:
    """A tiny stateful fake of machine create/list (for exactly-one-machine tests).

    ``faults`` is a queue consumed by creates: ``"ok"``, ``"drop_after"`` (create happens, then the
    connection drops), ``"drop_before"`` (nothing happens, connection drops), ``"503_after"``,
    ``"503_before"``, ``"408_after"``, ``"429"``. ``list_lag`` hides machines from the first N lists
    after their creation (eventual consistency)."""

    def __init__(self, faults: list[str] | None = None, *, list_lag: int = 0) -> None:
        self.faults = list(faults or [])
        self.machines: dict[str, dict[str, Any]] = {}
        self.hidden: dict[str, int] = {}
        self.list_lag = list_lag
        self._ids = itertools.count(1)
        self.creates = 0
        self.lists = 0

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path.removeprefix("/v1")
        if request.method == "POST" and re.fullmatch(r"/apps/[^/]+/machines", path):
            return self._create(request)
        if request.method == "GET" and re.fullmatch(r"/apps/[^/]+/machines", path):
            return self._list(request)
        m = re.fullmatch(r"/apps/[^/]+/machines/([^/]+)", path)
        if request.method == "GET" and m:
            if m.group(1) in self.machines:
                return json_response(200, self.machines[m.group(1)])
            return error(404, "machine not found")
        return error(404, f"no route {request.method} {path}")

    def _create(self, request: httpx.Request) -> httpx.Response:
        fault = self.faults.pop(0) if self.faults else "ok"
        if fault == "429":
            return error(429, "rate limited", retry_after="1")
        if fault == "drop_before":
            raise httpx.RemoteProtocolError("server disconnected", request=request)
        if fault == "503_before":
            return error(503, "service unavailable")
        self.creates += 1
        body = json.loads(request.content)
        mid = f"m{next(self._ids)}"
        machine = machine_json(mid, state="created", metadata=body["config"].get("metadata"))
        machine["config"] = body["config"]
        self.machines[mid] = machine
        self.hidden[mid] = self.list_lag
        if fault == "drop_after":
            raise httpx.RemoteProtocolError("server disconnected without response", request=request)
        if fault == "503_after":
            return error(503, "internal error")
        if fault == "408_after":
            return error(408, "request timed out")
        return json_response(200, machine)

    def _list(self, request: httpx.Request) -> httpx.Response:
        self.lists += 1
        filters = {
            k.removeprefix("metadata."): v
            for k, v in request.url.params.multi_items()
            if k.startswith("metadata.")
        }
        out = []
        for mid, machine in self.machines.items():
            if self.hidden.get(mid, 0) > 0:
                self.hidden[mid] -= 1
                continue
            meta = machine["config"].get("metadata") or {}
            if all(meta.get(k) == v for k, v in filters.items()):
                out.append(machine)
        return json_response(200, out)


Handler = Callable[[httpx.Request], httpx.Response]


def make_client(handler, clock: FakeClock, **kw) -> tuple[FlyClient, ValidatingTransport]:  # type: ignore[no-untyped-def]
    """A client over a plain handler function (for the stateful fakes)."""
    transport = ValidatingTransport(httpx.MockTransport(handler), clock)
    client = FlyClient(
        token=TOKEN, base_url=BASE, org=ORG, transport=transport, clock=clock, rng=random.Random(7), **kw
    )
    return client, transport
