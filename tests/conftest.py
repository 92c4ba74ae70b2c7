"""Shared fixtures.

``db``: a :class:`Database` with the schema created, parametrised over SQLite (a fresh file per test),
libSQL (a fresh file per test, through the libSQL SDK: the real libSQL engine) and the real local
PostgreSQL (a fresh schema per test, dropped afterwards). Every test that uses it runs three times. PostgreSQL's URL comes from CP_TEST_POSTGRES_URL (default: the local trust-auth server);
if PostgreSQL is not reachable the PostgreSQL half FAILS, it is never skipped.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from controlplane.db.models import Tenant
from controlplane.db.session import Database
from controlplane.settings import reset_settings_cache
from controlplane.vault import Vault
from tests.support.db import (
    BACKENDS,
    POSTGRES_URL,
    TEST_RING,
    PostgresSchema,
    file_database_url,
    open_database,
    pg_admin,
)


@pytest.fixture(autouse=True)
def _isolated_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """No test reads the developer's environment or .env: CP_* variables are cleared and the working
    directory is a temporary one."""
    for name in list(os.environ):
        if name.startswith("CP_") and name != "CP_TEST_POSTGRES_URL":
            monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    reset_settings_cache()
    yield
    reset_settings_cache()


@pytest.fixture
async def empty_database(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[dict[str, Any]]:
    """An empty database of the requested backend: ``{"url", "pg_schema", "backend"}``."""
    backend = request.param
    if backend in ("sqlite", "libsql"):
        url = file_database_url(backend, tmp_path / "test.db")
        yield {"backend": backend, "url": url, "pg_schema": None}
        return
    pg = PostgresSchema(POSTGRES_URL, f"t_{uuid.uuid4().hex[:16]}")
    try:
        await pg.create()
    except Exception as exc:  # pragma: no cover - environment problem, reported as a failure
        pytest.fail(
            f"PostgreSQL at {POSTGRES_URL} is not reachable ({type(exc).__name__}): start it "
            "with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start`"
        )
    try:
        yield {"backend": "postgresql", "url": POSTGRES_URL, "pg_schema": pg.schema}
    finally:
        await pg.drop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    # Every test depending (directly or not) on a database runs once per backend.
    if "empty_database" in metafunc.fixturenames:
        metafunc.parametrize("empty_database", BACKENDS, indirect=True)


@pytest.fixture
async def db(empty_database: dict[str, Any]) -> AsyncIterator[Database]:
    """A :class:`Database` with the schema created, once per backend."""
    async with open_database(empty_database["url"], empty_database["pg_schema"]) as database:
        yield database


@pytest.fixture(params=BACKENDS)
async def fresh_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """The URL of a brand-new, empty database: a SQLite or libSQL file, or a whole PostgreSQL database
    created for the test (for code that connects by URL: migrations, the CLI, the demo)."""
    if request.param in ("sqlite", "libsql"):
        yield file_database_url(request.param, tmp_path / "fresh.db")
        return
    name = f"cp_t_{uuid.uuid4().hex[:12]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def vault() -> Vault:
    return Vault(TEST_RING)


@pytest.fixture
def tenant_factory(db: Database) -> Callable[..., Awaitable[Tenant]]:
    counter = {"n": 0}

    async def make(**fields: Any) -> Tenant:
        counter["n"] += 1
        values: dict[str, Any] = {
            "external_id": f"user-{counter['n']}-{uuid.uuid4().hex[:6]}",
            "plan": "pro",
            "region": "iad",
        }
        values.update(fields)
        async with db.transaction() as s:
            tenant = Tenant(**values)
            s.add(tenant)
        return tenant

    return make
