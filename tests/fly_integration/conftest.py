"""Fixtures: the Fly client against the project's Fly emulator (in-process transport or loopback).

Every request the client sends is still validated against Fly's OpenAPI spec (same wrapping
transport as the unit tests).

The emulator runs the ``fast`` latency profile (every Fly race is there: 404 right after create,
``replacing`` after an update, lagging lists, ...) at :data:`SPEED` emulated seconds per real second,
and the client reads the EMULATED clock (``emu.client_clock``): its pacing, retries and wait
deadlines are in the same seconds as the emulator's rate limits and transitions."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

import pytest

from controlplane.fly import Clock, FlyClient, RetryPolicy
from controlplane.fly.emulator import EmulatorOptions, FaultSpec, FlyEmulator
from tests.fly_client.support import ValidatingTransport

ORG = "test-org"
TOKEN = "test-token"
EMULATOR_URL = "http://fly-emulator"
T = TypeVar("T")
SPEED = 20.0  # emulated seconds per real second


def emulator(faults: str = "none", *, seed: int = 1, rate_limits: bool = True, **options: Any) -> FlyEmulator:
    options.setdefault("latency", "fast")
    options.setdefault("clock_speed", SPEED)
    return FlyEmulator(
        EmulatorOptions(
            faults=FaultSpec.parse(faults),
            seed=seed,
            org=ORG,
            token=TOKEN,
            rate_limits=rate_limits,
            **options,
        )
    )


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
