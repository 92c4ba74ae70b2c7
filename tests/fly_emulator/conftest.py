"""Fixtures for the Fly emulator tests. Every /v1 response that goes through ``api`` is checked
against Fly's OpenAPI spec (tests/fly_openapi.py), so conformance is guarded by every test."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from tests.fly_openapi import validate_request, validate_response

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


@pytest.fixture
def emu() -> FlyEmulator:
    return FlyEmulator(options())


@pytest.fixture
async def api(emu: FlyEmulator) -> AsyncIterator[CheckedClient]:
    async with emu.client() as http:
        yield CheckedClient(http)


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
