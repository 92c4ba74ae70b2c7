"""SQLAlchemy's async engine on libSQL: the ``sqlite+libsql_async`` dialect.

Built like SQLAlchemy's own aiosqlite dialect: the SQLite dialect (SQL, types, reflection, the
RETURNING and ON CONFLICT support the queue and the vault rotation use) over an async DB-API,
:mod:`controlplane.db.libsql_driver`, whose connections each run the libSQL SDK on their own
thread; SQLAlchemy's adaptation layer awaits them. Importing this module registers the dialect.

URLs (after :func:`controlplane.db.urls.normalise_database_url`):

* ``sqlite+libsql_async:///relative.db``, ``sqlite+libsql_async:////abs/file.db``: a local file
  through the embedded libSQL engine;
* ``sqlite+libsql_async://<db>.turso.io``: a remote database over the libSQL remote protocol
  (Hrana over HTTPS; ``?tls=0`` for plain HTTP, e.g. a server on this machine);
* ``sqlite+libsql_async:////abs/replica.db?syncUrl=libsql://<db>.turso.io[&syncInterval=60]``: an
  embedded replica (reads from the local file, writes go to the primary, synced at connect and
  every ``syncInterval`` seconds).

The auth token never travels in the engine's URL: :func:`controlplane.db.session.create_engine`
takes ``authToken`` out of it and hands it to the driver as a ``SecretStr`` connect argument.
"""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import Any, cast

from sqlalchemy import pool
from sqlalchemy.connectors.asyncio import (
    AsyncAdapt_dbapi_connection,
    AsyncAdapt_dbapi_cursor,
    AsyncAdapt_dbapi_module,
    AsyncAdapt_dbapi_ss_cursor,
    AsyncAdapt_terminate,
    AsyncIODBAPIConnection,
)
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.pysqlite import SQLiteDialect_pysqlite
from sqlalchemy.engine.interfaces import ConnectArgsType, DBAPIConnection, DBAPICursor, DBAPIModule
from sqlalchemy.engine.url import URL
from sqlalchemy.exc import ArgumentError
from sqlalchemy.pool.base import PoolProxiedConnection
from sqlalchemy.util.concurrency import await_

from controlplane.db import libsql_driver
from controlplane.db.libsql_driver import AsyncConnection

DRIVER = "libsql_async"
DRIVERNAME = f"sqlite+{DRIVER}"

#: URL query options understood by the dialect (``authToken`` is taken out before the engine).
URL_OPTIONS = frozenset({"tls", "syncUrl", "syncInterval", "authToken"})

#: Driver messages that mean the connection (or the remote stream behind it) is gone.
_DISCONNECT_HINTS = (
    "cannot operate on a closed database",
    "stream expired",
    "stream not found",
    "error sending request",
    "connection closed",
    "connection reset",
)


class AsyncAdapt_libsql_cursor(AsyncAdapt_dbapi_cursor):
    __slots__ = ()


class AsyncAdapt_libsql_ss_cursor(AsyncAdapt_dbapi_ss_cursor):
    __slots__ = ()


class AsyncAdapt_libsql_connection(AsyncAdapt_terminate, AsyncAdapt_dbapi_connection):
    __slots__ = ()

    _cursor_cls = AsyncAdapt_libsql_cursor
    _ss_cursor_cls = AsyncAdapt_libsql_ss_cursor  # unused: the dialect has no server-side cursors

    @property
    def driver_connection(self) -> AsyncConnection:
        return cast(AsyncConnection, self._connection)

    @property
    def isolation_level(self) -> str | None:
        return self.driver_connection.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self.driver_connection.isolation_level = value

    @property
    def in_transaction(self) -> bool:
        return self.driver_connection.in_transaction

    def sync(self) -> None:
        """Pull the primary's changes into an embedded replica now."""
        try:
            await_(self.driver_connection.sync())
        except Exception as error:
            self._handle_exception(error)

    def close(self) -> None:
        try:
            await_(self.driver_connection.close())
        except Exception as error:
            self._handle_exception(error)

    async def _terminate_graceful_close(self) -> None:
        await self.driver_connection.close()

    def _terminate_force_close(self) -> None:
        self.driver_connection.stop()


class AsyncAdapt_libsql_dbapi(AsyncAdapt_dbapi_module):
    """The DB-API module SQLAlchemy sees: the driver's exceptions and a ``connect`` it can await."""

    def __init__(self, driver: ModuleType) -> None:
        super().__init__(driver)
        self.paramstyle = driver.paramstyle
        self.sqlite_version_info = driver.sqlite_version_info
        self.sqlite_version = ".".join(str(part) for part in driver.sqlite_version_info)
        self.Binary = driver.Binary
        for name in (
            "Warning",
            "Error",
            "InterfaceError",
            "DatabaseError",
            "DataError",
            "OperationalError",
            "IntegrityError",
            "InternalError",
            "ProgrammingError",
            "NotSupportedError",
        ):
            setattr(self, name, getattr(driver, name))

    def connect(self, *args: Any, **kwargs: Any) -> AsyncAdapt_libsql_connection:
        connection = await_(libsql_driver.connect(*args, **kwargs))
        return AsyncAdapt_libsql_connection(self, cast(AsyncIODBAPIConnection, connection))


class SQLiteDialect_libsql_async(SQLiteDialect_pysqlite):
    driver = DRIVER
    supports_statement_cache = True
    is_async = True
    has_terminate = True
    supports_server_side_cursors = False

    @classmethod
    def import_dbapi(cls) -> DBAPIModule:
        return cast(DBAPIModule, AsyncAdapt_libsql_dbapi(libsql_driver))

    @classmethod
    def get_pool_class(cls, url: URL) -> type[pool.Pool]:
        if url.host or (url.database and url.database != ":memory:"):
            return pool.AsyncAdaptedQueuePool
        return pool.StaticPool  # every connection to ":memory:" would be a new, empty database

    def create_connect_args(self, url: URL) -> ConnectArgsType:
        unknown = set(url.query) - URL_OPTIONS
        if unknown:
            raise ArgumentError(f"unknown libSQL URL option(s): {', '.join(sorted(unknown))}")
        if url.username or url.password:
            raise ArgumentError("a libSQL URL takes its auth token as ?authToken=..., not user:password@")
        options: dict[str, Any] = {}
        if url.host:
            scheme = "http" if url.query.get("tls") == "0" else "libsql"
            port = f":{url.port}" if url.port else ""
            if url.database:
                raise ArgumentError("a remote libSQL URL has no path: libsql://<host>[:port]")
            database = f"{scheme}://{url.host}{port}"
        else:
            database = url.database or ":memory:"
            sync_url = url.query.get("syncUrl")
            if sync_url:
                options["sync_url"] = str(sync_url)
                interval = url.query.get("syncInterval")
                if interval:
                    try:
                        options["sync_interval"] = float(str(interval))
                    except ValueError:
                        raise ArgumentError("syncInterval must be a number of seconds") from None
        return ([database], options)

    def on_connect(self) -> Callable[[DBAPIConnection], None]:
        # The pysqlite dialect registers regexp() and floor() with create_function, which the SDK
        # does not have; libSQL is built with the math functions (floor() included). The
        # connection's own set-up (pragmas) is the driver's: LibsqlTarget.setup_statements.
        def nothing(_: DBAPIConnection) -> None:
            return None

        return nothing

    def do_begin(self, dbapi_connection: PoolProxiedConnection) -> None:
        # The SDK connection runs in autocommit mode; begin a (deferred) transaction unless a
        # "begin" event listener (controlplane.db.session: BEGIN IMMEDIATE) already did.
        driver_connection = cast(AsyncConnection, dbapi_connection.driver_connection)
        if not driver_connection.in_transaction:
            cursor = dbapi_connection.cursor()
            cursor.execute("BEGIN")
            cursor.close()

    def is_disconnect(
        self,
        e: DBAPIModule.Error,
        connection: PoolProxiedConnection | DBAPIConnection | None,
        cursor: DBAPICursor | None,
    ) -> bool:
        message = str(e).lower()
        return isinstance(e, libsql_driver.Error) and any(hint in message for hint in _DISCONNECT_HINTS)

    def get_driver_connection(self, connection: DBAPIConnection) -> Any:
        return cast(AsyncAdapt_libsql_connection, connection).driver_connection

    def do_terminate(self, dbapi_connection: DBAPIConnection) -> None:
        cast(AsyncAdapt_libsql_connection, dbapi_connection).terminate()


dialect = SQLiteDialect_libsql_async

registry.register(f"sqlite.{DRIVER}", __name__, "SQLiteDialect_libsql_async")

__all__ = ["DRIVER", "DRIVERNAME", "URL_OPTIONS", "SQLiteDialect_libsql_async"]
