"""Helpers for tests against the project's Fly emulator: spec-checked HTTP access, request bodies,
emulator factories and an ``eventually`` poll on the emulated clock.

The integration emulator runs the ``fast`` latency profile (every Fly race is there: 404 right after
create, ``replacing`` after an update, lagging lists, ...) at :data:`SPEED` emulated seconds per real
second, and clients read the EMULATED clock (``emu.client_clock``): their pacing, retries and wait
deadlines are in the same seconds as the emulator's rate limits and transitions.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

import httpx

from controlplane.clock import Clock
from controlplane.fly.emulator import EmulatorOptions, FaultSpec, FlyEmulator, LatencyProfile
from tests.support.fly_openapi import validate_request, validate_response

EMULATOR_URL = "http://fly-emulator"
T = TypeVar("T")
SPEED = 20.0  # emulated seconds per real second

TOKEN = "test-token"
ORG = "test-org"
IMAGE = "ghcr.io/openclaw/openclaw:2026.9.6"


class CheckedClient:
    """httpx client that validates each /v1 request and response against the spec."""

    def __init__(self, http: httpx.AsyncClient, *, check_requests: bool = True) -> None:
        self.http = http
        self.check_requests = check_requests

    async def request(
        self,
        method: str,
        url: str,
        *,
        params: Any = None,
        json: Any = None,
        headers: dict[str, str] | None = None,
        check: bool = True,
    ) -> httpx.Response:
        if check and self.check_requests and url.startswith("/v1"):
            validate_request(method, url, params, json, headers=headers)
        response = await self.http.request(method, url, params=params, json=json, headers=headers)
        assert "fly-request-id" in response.headers
        if check and url.startswith("/v1"):
            body = response.json() if response.content else None
            validate_response(method, url, response.status_code, body)
        return response

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def put(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("PUT", url, **kw)

    async def delete(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("DELETE", url, **kw)


def options(**overrides: Any) -> EmulatorOptions:
    base: dict[str, Any] = {"latency": "zero", "seed": 1, "org": ORG, "token": TOKEN, "rate_limits": False}
    base.update(overrides)
    return EmulatorOptions(**base)


def slow_profile(**overrides: float) -> LatencyProfile:
    """Long transitions (emulated seconds) so transient states are observable; tests advance the clock."""
    values = {
        "create": 1.0,
        "start": 5.0,
        "resume": 1.0,
        "stop": 5.0,
        "suspend": 5.0,
        "restart": 5.0,
        "replace": 30.0,
        "destroy": 5.0,
        "destroyed_retention": 10.0,
    }
    values.update(overrides)
    return LatencyProfile(**values)


def machine_body(name: str | None = None, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "region": "fra",
        "config": {
            "image": IMAGE,
            "guest": {"cpu_kind": "shared", "cpus": 2, "memory_mb": 2048},
            "metadata": {"control_plane_id": "cp-1"},
            "services": [
                {
                    "protocol": "tcp",
                    "internal_port": 3000,
                    "autostop": "off",
                    "autostart": True,
                    "ports": [{"port": 443, "handlers": ["tls", "http"]}],
                }
            ],
            "checks": {
                "startup": {
                    "type": "http",
                    "port": 3000,
                    "path": "/startupz",
                    "interval": "15s",
                    "timeout": "5s",
                    "grace_period": "2m",
                }
            },
        },
    }
    if name is not None:
        body["name"] = name
    body.update(extra)
    return body


async def make_app(api: CheckedClient, name: str = "u-1") -> str:
    response = await api.post("/v1/apps", json={"app_name": name, "org_slug": ORG, "network": name})
    assert response.status_code == 201, response.text
    return name


def emulator(
    faults: str = "none",
    *,
    seed: int = 1,
    rate_limits: bool = True,
    org: str = ORG,
    token: str = TOKEN,
    **options: Any,
) -> FlyEmulator:
    """An emulator on the ``fast`` profile at :data:`SPEED` (unless told), with seeded ``faults``."""
    options.setdefault("latency", "fast")
    options.setdefault("clock_speed", SPEED)
    return FlyEmulator(
        EmulatorOptions(
            faults=FaultSpec.parse(faults),
            seed=seed,
            org=org,
            token=token,
            rate_limits=rate_limits,
            **options,
        )
    )


async def eventually(
    check: Callable[[], Awaitable[T]],
    clock: Clock,
    *,
    timeout: float = 30.0,
    interval: float = 0.25,
    retry_on: tuple[type[BaseException], ...] = (AssertionError,),
) -> T:
    """Fly is eventually consistent (lists, secrets, deletes): poll ``check`` on ``clock`` until it
    stops raising ``retry_on`` or ``timeout`` (clock seconds) passes — then the last error is raised."""
    deadline = clock.monotonic() + timeout
    while True:
        try:
            return await check()
        except retry_on:
            if clock.monotonic() + interval > deadline:
                raise
            await clock.sleep(interval)
