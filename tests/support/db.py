"""Test databases: the three backends every database test runs on (SQLite through sqlite3, SQLite
through the libSQL SDK, PostgreSQL), throw-away PostgreSQL schemas and databases, a database with the
schema created, and the vault key ring tests use."""

from __future__ import annotations

import base64
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from sqlalchemy import text

from controlplane.db.models import Base
from controlplane.db.session import Database, create_engine

POSTGRES_URL = os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
BACKENDS = ("sqlite", "libsql", "postgresql")


def file_database_url(backend: str, path: Path) -> str:
    """The URL of a database file at ``path`` for a file backend (``sqlite`` or ``libsql``)."""
    assert backend in ("sqlite", "libsql"), backend
    return f"{backend}:///{path}"


def test_key(byte: int) -> bytes:
    return bytes([byte]) * 32


TEST_RING = [("k2", test_key(2)), ("k1", test_key(1))]
TEST_VAULT_KEYS = ",".join(f"{kid}:{base64.b64encode(k).decode()}" for kid, k in TEST_RING)


class PostgresSchema:
    """A throw-away PostgreSQL schema: ``url`` plus ``schema`` (for search_path)."""

    def __init__(self, url: str, schema: str) -> None:
        self.url = url
        self.schema = schema

    async def create(self) -> None:
        engine = create_engine(self.url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{self.schema}"'))
        finally:
            await engine.dispose()

    async def drop(self) -> None:
        engine = create_engine(self.url)
        try:
            async with engine.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE'))
        finally:
            await engine.dispose()


@asynccontextmanager
async def open_database(url: str, pg_schema: str | None = None) -> AsyncIterator[Database]:
    """A :class:`Database` on ``url`` (and ``pg_schema``) with the whole schema created from the
    models; ``alembic check`` in tests/integration/test_migrations.py proves the migrations produce
    the same schema."""
    database = Database(create_engine(url, pg_schema=pg_schema))
    async with database.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    try:
        yield database
    finally:
        await database.dispose()


async def pg_admin(sql: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(POSTGRES_URL)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()
