"""Reads that need no transaction around them: the API's hot single-statement reads (a cap check,
a status read) on the fewest round trips.

On PostgreSQL each statement runs in autocommit on a pooled connection (no ``BEGIN``, ``SET
TRANSACTION READ ONLY`` and ``ROLLBACK`` around it: three round trips fewer; a single ``SELECT`` is
consistent by itself). On SQLite this is :meth:`Database.read` (a deferred, ``query_only``
transaction that never takes the write lock). Use it only for reads whose statements need not see
one snapshot together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.session import Database


@asynccontextmanager
async def autocommit_read(db: Database) -> AsyncIterator[AsyncSession]:
    if db.dialect != "postgresql":
        async with db.read() as session:
            yield session
        return
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        async with AsyncSession(bind=conn, expire_on_commit=False) as session:
            yield session


__all__ = ["autocommit_read"]
