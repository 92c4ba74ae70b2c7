"""SQL shared by billing's tables: the dialect's ``INSERT ... ON CONFLICT`` and the one-statement
lease claim both leased tables (the sync queue, the notices outbox) use.

The claim is ``UPDATE t SET lease_owner, lease_expires_at WHERE key IN (SELECT key ... due ...
ORDER BY ... LIMIT n [FOR UPDATE SKIP LOCKED]) RETURNING ...``: on PostgreSQL concurrent claimers
skip each other's rows instead of waiting; on SQLite writers are serialised (``BEGIN IMMEDIATE``) and
the single conditional UPDATE is atomic.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Row, Table, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import Base


def table_of(model: type[Base]) -> Table:
    """The model's ``Table`` (typed as such, for Core statements)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


def insert_for(session: AsyncSession, table: Table) -> postgresql.Insert | sqlite.Insert:
    """The dialect's INSERT (both have ``on_conflict_do_nothing`` / ``on_conflict_do_update``)."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


async def claim_leased(
    session: AsyncSession,
    table: Table,
    *,
    key: str,
    due: ColumnElement[bool],
    order_by: Sequence[Any],
    owner: str,
    now: datetime,
    until: datetime,
    limit: int,
) -> Sequence[Row[Any]]:
    """Lease up to ``limit`` rows that are ``due`` and not leased (or whose lease expired)."""
    c = table.c
    free = or_(c.lease_owner.is_(None), c.lease_expires_at < now)
    pick = select(c[key]).where(due, free).order_by(*order_by).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    stmt = (
        update(table)
        .where(c[key].in_(pick.scalar_subquery()))
        .values(lease_owner=owner, lease_expires_at=until)
        .returning(*table.c)
        .execution_options(synchronize_session=False)
    )
    result = await session.execute(stmt)
    return result.all()


__all__ = ["claim_leased", "insert_for", "table_of"]
