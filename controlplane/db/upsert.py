"""``INSERT ... ON CONFLICT`` on both backends: PostgreSQL's and SQLite's insert constructs share
``on_conflict_do_nothing`` / ``on_conflict_do_update`` and ``excluded``; this picks the session's."""

from __future__ import annotations

from typing import Any

from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def upsert(session: AsyncSession, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An insert into ``table`` (a model or table) that can take an ``ON CONFLICT`` clause."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise RuntimeError(f"unsupported database dialect {dialect!r}")


__all__ = ["upsert"]
