"""Fixtures for the Fly client unit tests: every request is validated against the OpenAPI spec."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import httpx
import pytest
import respx

from controlplane.fly import FlyClient
from tests.support.fly_fakes import API, BASE, ORG, TOKEN, FakeClock, ValidatingTransport


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def router() -> respx.Router:
    return respx.Router(base_url=API, assert_all_mocked=True, assert_all_called=False)


@pytest.fixture
def transport(router: respx.Router, clock: FakeClock) -> ValidatingTransport:
    return ValidatingTransport(httpx.MockTransport(router.async_handler), clock)


@pytest.fixture
async def fly(transport: ValidatingTransport, clock: FakeClock) -> AsyncIterator[FlyClient]:
    client = FlyClient(
        token=TOKEN, base_url=BASE, org=ORG, transport=transport, clock=clock, rng=random.Random(7)
    )
    try:
        yield client
    finally:
        await client.aclose()
    assert transport.violations == [], "requests not conforming to the Fly OpenAPI spec"
