"""Async engine and sessions for SQLite (embedded default), libSQL / Turso and PostgreSQL.

SQLite connections get WAL journaling, a busy timeout and foreign keys on. libSQL connections get
the same from their driver (:mod:`controlplane.db.libsql_driver`, which also waits out locks on the
event loop) and the same transactions as SQLite. PostgreSQL uses asyncpg with a bounded pool.
:class:`Database` is what the API, the CLI and the workers hold.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from pydantic import SecretStr
from sqlalchemy import event, make_url, text
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from controlplane.db.urls import is_libsql, is_sqlite, normalise_database_url, split_auth_token
from controlplane.private_files import prepare_database_file

SQLITE_BUSY_TIMEOUT_MS = 30_000


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Let SQLAlchemy's "begin" event issue BEGIN itself (the driver's implicit deferred BEGIN is
    # disabled), and set the pragmas outside any transaction.
    dbapi_conn.isolation_level = None
    cursor = dbapi_conn.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def local_database_file(url: str) -> str | None:
    """The file a SQLite or local libSQL URL opens (None: in memory, remote, or PostgreSQL)."""
    parsed = make_url(url)
    if not (is_sqlite(url) or is_libsql(url)) or parsed.host:
        return None
    database = parsed.database or ""
    if database in ("", ":memory:") or database.startswith("file:") or parsed.query.get("mode") == "memory":
        return None
    return database


def create_engine(
    url: str,
    *,
    echo: bool = False,
    pool_size: int = 10,
    pg_schema: str | None = None,
) -> AsyncEngine:
    """Create the async engine for ``url``.

    ``pg_schema`` pins PostgreSQL's ``search_path`` (tests isolate each test in its own schema).
    ``echo`` (``CP_DATABASE_ECHO``) logs statements, never their parameters, through the redacting
    handler (:func:`controlplane.logging.set_sql_echo`); SQLAlchemy's own ``echo`` is never used (it
    adds a handler of its own that prints to stdout, past the redaction).
    """
    url = normalise_database_url(url)
    if echo:
        from controlplane.logging import set_sql_echo

        set_sql_echo(True)
    path = local_database_file(url)
    if path is not None:
        # Tenant data and ciphertexts: the file is created 0600 before SQLite opens it (its WAL,
        # SHM and journal files then get the same mode); see controlplane/private_files.py.
        prepare_database_file(path)
    if is_libsql(url):
        return _create_libsql_engine(url, pool_size=pool_size)
    if is_sqlite(url):
        engine = create_async_engine(
            url,
            hide_parameters=True,  # bound values (ciphertexts ...) never in error messages or logs
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
        event.listen(engine.sync_engine, "connect", _sqlite_on_connect)
        # Take the write lock when a transaction begins, so two writers never deadlock upgrading
        # shared locks ("database is locked"); WAL keeps readers outside transactions unblocked and
        # the busy timeout makes a second writer wait instead of failing.
        event.listen(engine.sync_engine, "begin", _sqlite_begin_immediate)
        return engine
    connect_args: dict[str, Any] = {}
    if pg_schema:
        connect_args["server_settings"] = {"search_path": pg_schema}
    return create_async_engine(
        url,
        hide_parameters=True,
        pool_size=pool_size,
        max_overflow=pool_size,
        # No pre-ping: it costs a round trip per transaction (half the queue's cost). A connection
        # broken by a server restart fails its next statement once, SQLAlchemy then drops the whole
        # pool, and callers retry (the worker loop, the API's 503); recycling bounds idle age.
        pool_recycle=300,
        connect_args=connect_args,
    )


def _create_libsql_engine(url: str, *, pool_size: int) -> AsyncEngine:
    import controlplane.db.libsql_dialect  # noqa: F401  (registers the dialect)

    # The token leaves the URL (an engine's URL shows up in reprs and errors) and reaches the
    # driver as a SecretStr connect argument.
    url, token = split_auth_token(url)
    connect_args: dict[str, Any] = {"busy_timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
    if token:
        connect_args["auth_token"] = SecretStr(token)
    # A remote database gets PostgreSQL's pool bounds; a local file keeps SQLite's defaults.
    pool_args = {"pool_size": pool_size, "max_overflow": pool_size} if make_url(url).host else {}
    engine = create_async_engine(url, hide_parameters=True, connect_args=connect_args, **pool_args)
    event.listen(engine.sync_engine, "begin", _libsql_begin)
    return engine


READONLY = "cp_readonly"  # execution option: this transaction only reads


def _sqlite_begin_immediate(conn: Any) -> None:
    # Writers take the write lock up front; read-only transactions use a deferred BEGIN, which in
    # WAL mode runs beside a writer without waiting for it, and refuse writes (query_only). The
    # pragma is set on EVERY begin, so it never leaks to the next user of a pooled connection.
    if conn.get_execution_options().get(READONLY):
        conn.exec_driver_sql("PRAGMA query_only = ON")
        conn.exec_driver_sql("BEGIN")
    else:
        conn.exec_driver_sql("PRAGMA query_only = OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")


def _libsql_begin(conn: Any) -> None:
    # As on SQLite (above), except that a read-only transaction sets query_only INSIDE the
    # transaction: over the remote protocol a transaction is one server stream, and a pragma sent
    # before BEGIN may land on another one. (A writer's OFF must precede BEGIN IMMEDIATE, which
    # query_only refuses.)
    if conn.get_execution_options().get(READONLY):
        conn.exec_driver_sql("BEGIN")
        conn.exec_driver_sql("PRAGMA query_only = ON")
    else:
        conn.exec_driver_sql("PRAGMA query_only = OFF")
        conn.exec_driver_sql("BEGIN IMMEDIATE")


class Database:
    """An engine plus a session factory. ``async with db.transaction() as s:`` commits or rolls back."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.sessions = async_sessionmaker(engine, expire_on_commit=False, class_=AsyncSession)
        # SQLite has one writer. Writers of this process take turns here, in FIFO order, instead of
        # meeting in SQLite's busy handler, whose back-off sleeps (up to 100 ms a try) would turn a
        # burst of short transactions into seconds. Other processes still wait on busy_timeout.
        self._writer_turn: asyncio.Lock | None = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def _write_turn(self) -> AsyncIterator[None]:
        if self._writer_turn is None:
            yield
            return
        async with self._writer_turn:
            yield

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> Database:
        return cls(create_engine(url, **kwargs))

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A read-write transaction: commits on success, rolls back on any exception."""
        async with self._write_turn(), self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[AsyncConnection]:
        """A read-write Core transaction without the ORM (the queue's hot path): commits on success."""
        async with self._write_turn(), self.engine.begin() as conn:
            yield conn

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A read-only transaction (on SQLite it does not take the write lock; on PostgreSQL it is
        ``READ ONLY``). Any write inside it fails."""
        async with self.sessions() as session:
            await session.connection(execution_options={READONLY: True})
            if self.dialect == "postgresql":
                await session.execute(text("SET TRANSACTION READ ONLY"))
            try:
                yield session
            finally:
                await session.rollback()

    async def dispose(self) -> None:
        await self.engine.dispose()


__all__ = ["READONLY", "Database", "SQLITE_BUSY_TIMEOUT_MS", "create_engine"]
