"""Sessions: read-only transactions never take SQLite's write lock and refuse writes on both backends;
read-write transactions commit or roll back as a whole."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from controlplane.db.models import Tenant


async def test_reads_run_beside_an_open_write_transaction(db, tenant_factory) -> None:
    await tenant_factory()
    writer_open = asyncio.Event()
    release_writer = asyncio.Event()

    async def writer() -> None:
        async with db.transaction() as s:
            s.add(Tenant(external_id="held-by-writer", plan="pro", region="iad"))
            await s.flush()  # the write lock is now held (SQLite) / the row is locked (PostgreSQL)
            writer_open.set()
            await release_writer.wait()

    task = asyncio.create_task(writer())
    await writer_open.wait()
    # With the writer still open, a read completes at once (it would wait out the 30 s busy
    # timeout if it asked for the write lock); it sees only committed rows.
    async with asyncio.timeout(5):
        async with db.read() as s:
            count = await s.scalar(select(func.count()).select_from(Tenant))
    assert count == 1
    release_writer.set()
    await task
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Tenant)) == 2


async def test_read_only_transactions_refuse_writes(db) -> None:
    with pytest.raises(DBAPIError):
        async with db.read() as s:
            s.add(Tenant(external_id="sneaky", plan="pro", region="iad"))
            await s.flush()
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Tenant)) == 0
    async with db.transaction() as s:  # the connection is fully writable again afterwards
        s.add(Tenant(external_id="fine", plan="pro", region="iad"))
    async with db.read() as s:
        assert await s.scalar(select(func.count()).select_from(Tenant)) == 1
