"""Reads that need no transaction around them: the API's hot reads (a cap check, a status read) on
the fewest round trips and the least Python.

:func:`autocommit_read` yields a Core connection. On PostgreSQL each statement runs in autocommit on
a pooled connection (no ``BEGIN``, ``SET TRANSACTION READ ONLY`` and ``ROLLBACK`` around it, and no
ORM session: a single ``SELECT`` is consistent by itself). On SQLite it is the connection of
:meth:`Database.read` (a deferred, ``query_only`` transaction that never takes the write lock). Use
it only for reads whose statements need not see one snapshot together.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncConnection

from controlplane.db.session import Database


@asynccontextmanager
async def autocommit_read(db: Database) -> AsyncIterator[AsyncConnection]:
    if db.dialect != "postgresql":
        async with db.read() as session:
            yield await session.connection()
        return
    async with db.engine.connect() as conn:
        await conn.execution_options(isolation_level="AUTOCOMMIT")
        yield conn


__all__ = ["autocommit_read"]
