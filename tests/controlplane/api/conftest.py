"""``api``: the dashboard API on the ``db`` fixture (so every API test runs on SQLite AND
PostgreSQL), with the leak check of :class:`tests.support.api.ApiHarness` after every test."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from controlplane.db.session import Database
from tests.support.api import ApiHarness, api_harness


@pytest.fixture
async def api(db: Database) -> AsyncIterator[ApiHarness]:
    async with api_harness(db) as harness:
        yield harness
        await harness.assert_nothing_leaked()
