"""Fixtures for the Fly emulator tests. Every /v1 response that goes through ``api`` is checked
against Fly's OpenAPI spec (tests/support/fly_openapi.py), so conformance is guarded by every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controlplane.fly.emulator import FlyEmulator
from tests.support.emulator import CheckedClient, options


@pytest.fixture
def emu() -> FlyEmulator:
    return FlyEmulator(options())


@pytest.fixture
async def api(emu: FlyEmulator) -> AsyncIterator[CheckedClient]:
    async with emu.client() as http:
        yield CheckedClient(http)
