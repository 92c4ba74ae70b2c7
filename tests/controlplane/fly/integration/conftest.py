"""Fixtures: the Fly client against the project's Fly emulator (in-process transport or loopback).

Every request the client sends is still validated against Fly's OpenAPI spec (same wrapping
transport as the unit tests). The emulator and its clock: see :func:`tests.support.emulator.emulator`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest

from controlplane.fly import FlyClient, RetryPolicy
from controlplane.fly.emulator import FlyEmulator
from tests.support.emulator import EMULATOR_URL, ORG, TOKEN, emulator
from tests.support.fly_fakes import ValidatingTransport


@pytest.fixture
def make_client() -> Callable[..., tuple[FlyClient, ValidatingTransport]]:
    made: list[tuple[FlyClient, ValidatingTransport]] = []

    def make(emu: FlyEmulator, **kw) -> tuple[FlyClient, ValidatingTransport]:  # type: ignore[no-untyped-def]
        transport = ValidatingTransport(emu.transport())
        kw.setdefault("retry", RetryPolicy(max_attempts=6, initial_delay=0.05, max_delay=0.5))
        kw.setdefault("clock", emu.client_clock(jump=False))
        client = FlyClient(token=TOKEN, base_url=EMULATOR_URL, org=ORG, transport=transport, **kw)
        made.append((client, transport))
        return client, transport

    yield make  # type: ignore[misc]
    for _, transport in made:
        assert transport.violations == [], transport.violations[:5]


@pytest.fixture
async def quiet_emulator() -> AsyncIterator[FlyEmulator]:
    yield emulator()
