"""An asyncio DB-API for libSQL: the libSQL Python SDK (``libsql``, synchronous) run on one thread per
connection, the way aiosqlite serves ``sqlite3``. SQLAlchemy's async engine awaits it through its
adaptation layer (:mod:`controlplane.db.libsql_dialect`); nothing else should import this module.

Where libsql 0.1.11 differs from ``sqlite3`` and what this layer does about it (measured; the
decision record ``docs/decisions/libsql-driver.md`` has the evidence):

* The SDK keeps the GIL while a statement runs, including while SQLite's busy handler sleeps and
  while a remote request is on the wire. A busy handler would therefore freeze the whole process,
  the coroutine holding the lock included, for the whole timeout. Connections are opened with a
  busy timeout of 0, and a statement refused with "database is locked" while the connection had
  no transaction open (``BEGIN IMMEDIATE``, an autocommit statement: it did nothing) is retried
  here, sleeping on the event loop, until :attr:`LibsqlTarget.busy_timeout`.
* Every SDK error is a bare ``ValueError`` carrying SQLite's message: it is mapped to the DB-API
  classes here (constraint failures -> :class:`IntegrityError`, the rest -> :class:`OperationalError`,
  bad parameters -> :class:`ProgrammingError`).
* An SDK cursor's ``rowcount`` adds up over the statements run on it and is 0 for ``RETURNING``:
  each statement runs on a fresh SDK cursor, a DML statement that returns rows counts its rows,
  and a statement that is not DML reports -1, as ``sqlite3`` does.
* ``description`` is ``()`` for a statement without rows; reported as ``None``.
* Using a closed SDK connection panics (a ``BaseException``); a closed :class:`AsyncConnection`
  raises :class:`ProgrammingError` without calling the SDK.
* The auth token (Turso) is held as a :class:`~pydantic.SecretStr`, registered with
  :mod:`controlplane.redaction`, and never appears in reprs or error messages.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal, TypeVar

import libsql
from pydantic import SecretStr

from controlplane.private_files import restrict_umask
from controlplane.redaction import register_secret

T = TypeVar("T")

paramstyle = "qmark"
#: The SQLite version the SDK was built against (its engine reports 3.45.1 at run time).
sqlite_version_info: tuple[int, int, int] = tuple(libsql.sqlite_version_info)

#: Delays between retries of a statement refused with "database is locked" (the last repeats),
#: close to SQLite's own busy handler.
BUSY_DELAYS = (0.001, 0.002, 0.005, 0.01, 0.015, 0.02, 0.025)

Binary = bytes


class Error(Exception):
    """Base of the DB-API exceptions raised by this module."""


class Warning(Exception):
    pass


class InterfaceError(Error):
    pass


class DatabaseError(Error):
    pass


class DataError(DatabaseError):
    pass


class OperationalError(DatabaseError):
    pass


class IntegrityError(DatabaseError):
    pass


class InternalError(DatabaseError):
    pass


class ProgrammingError(DatabaseError):
    pass


class NotSupportedError(DatabaseError):
    pass


Kind = Literal["file", "memory", "remote", "replica"]


@dataclass(frozen=True)
class LibsqlTarget:
    """Where a connection goes: ``database`` is a file path, ``:memory:``, or a remote URL
    (``libsql://host``, ``http://host:port``); with ``sync_url`` the file is an embedded replica of
    that remote database."""

    database: str
    sync_url: str | None = None
    sync_interval: float | None = None
    auth_token: SecretStr | None = field(default=None, repr=False)
    busy_timeout: float = 30.0

    @property
    def kind(self) -> Kind:
        if self.database.startswith(("libsql://", "http://", "https://")):
            return "remote"
        if self.sync_url:
            return "replica"
        return "memory" if self.database == ":memory:" else "file"

    def setup_statements(self) -> tuple[str, ...]:
        """Statements run once on every new connection, outside any transaction."""
        if self.kind in ("file", "memory"):
            return (
                "PRAGMA journal_mode=WAL",
                "PRAGMA synchronous=NORMAL",
                "PRAGMA foreign_keys=ON",
            )
        # The server owns journaling, durability and lock waits; foreign keys are per connection.
        return ("PRAGMA foreign_keys=ON",)


_INTEGRITY = re.compile(r"constraint failed", re.IGNORECASE)
_BUSY = re.compile(r"database (?:table )?is (?:locked|busy)", re.IGNORECASE)
_PARAMETERS = re.compile(r"parameter", re.IGNORECASE)
_DML = frozenset({"INSERT", "UPDATE", "DELETE", "REPLACE"})
_FIRST_WORD = re.compile(r"\s*(?:(?:--[^\n]*\n|/\*.*?\*/)\s*)*([A-Za-z]+)", re.DOTALL)
_DML_WORD = re.compile(r"\b(?:INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)


def _is_dml(sql: str) -> bool:
    match = _FIRST_WORD.match(sql)
    if match is None:
        return False
    word = match.group(1).upper()
    if word == "WITH":  # a CTE in front of the statement
        return _DML_WORD.search(sql) is not None
    return word in _DML


def is_busy(error: BaseException) -> bool:
    return isinstance(error, OperationalError) and _BUSY.search(str(error)) is not None


class _Failed(Exception):
    """Carries a translated error out of the connection's thread, with whether a retry is safe."""

    def __init__(self, error: Error, *, retryable: bool) -> None:
        self.error = error
        self.retryable = retryable


def _translate(exc: BaseException, secret: str | None) -> Error:
    message = str(exc) or type(exc).__name__
    if secret:
        message = message.replace(secret, "***")
    if isinstance(exc, Error):
        return exc
    if type(exc).__name__ == "PanicException":  # pyo3: the SDK hit a bug; never leak the panic
        return InternalError(f"libsql SDK panicked: {message}")
    if isinstance(exc, (TypeError, OverflowError)) or (
        isinstance(exc, ValueError) and _PARAMETERS.search(message) and "SQL" not in message
    ):
        return ProgrammingError(message)
    if _INTEGRITY.search(message):
        return IntegrityError(message)
    return OperationalError(message)


@dataclass(slots=True)
class _Outcome:
    description: tuple[tuple[Any, ...], ...] | None
    rows: list[tuple[Any, ...]]
    rowcount: int
    lastrowid: int | None
    in_transaction: bool


def _run_statement(
    conn: Any, sql: str, parameters: Sequence[Sequence[Any]], many: bool, secret: str | None
) -> _Outcome:
    """Runs in the connection's thread: one statement on a fresh SDK cursor, all rows fetched."""
    was_in_transaction = bool(conn.in_transaction)
    try:
        cursor = conn.cursor()
        if many:
            cursor.executemany(sql, [tuple(p) for p in parameters])
        else:
            cursor.execute(sql, tuple(parameters[0]) if parameters else ())
        description = cursor.description or None
        rows = list(cursor.fetchall()) if description else []
        dml = _is_dml(sql)
        if not dml:
            rowcount = -1
        elif description:
            rowcount = len(rows)  # DML ... RETURNING: the SDK reports 0 (or a stale count)
        else:
            rowcount = int(cursor.rowcount)
        return _Outcome(description, rows, rowcount, cursor.lastrowid, bool(conn.in_transaction))
    except BaseException as exc:
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            raise
        error = _translate(exc, secret)
        raise _Failed(error, retryable=is_busy(error) and not was_in_transaction) from None


class AsyncConnection:
    """A libSQL connection owned by one thread; every method awaits work done on that thread."""

    def __init__(self, target: LibsqlTarget) -> None:
        self.target = target
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="libsql")
        self._conn: Any = None
        self._closed = False
        self._secret = target.auth_token.get_secret_value() if target.auth_token else None
        self.in_transaction = False
        self.busy_retries = 0  # statements retried because another connection held the lock
        # SQLAlchemy's pysqlite dialect reads and sets this; the SDK connection always runs in
        # autocommit mode and transactions are begun explicitly (see the dialect's do_begin).
        self.isolation_level: str | None = None

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<libsql AsyncConnection {self.target.kind} {state}>"

    async def _call(self, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")
        loop = asyncio.get_running_loop()
        try:
            return await loop.run_in_executor(self._executor, fn, *args)
        except _Failed as failed:
            raise failed.error from None

    async def _open(self) -> None:
        target = self.target

        def open_in_thread() -> Any:
            kwargs: dict[str, Any] = {"isolation_level": None, "timeout": 0.0}
            if self._secret:
                kwargs["auth_token"] = self._secret
            if target.sync_url:
                kwargs["sync_url"] = target.sync_url
                if target.sync_interval:
                    kwargs["sync_interval"] = target.sync_interval
                # The SDK writes the replica's files itself (a synced copy through a temporary
                # file and a rename, the -info file): private through the umask.
                restrict_umask()
            try:
                conn = libsql.connect(target.database, **kwargs)
                if target.kind == "replica":
                    conn.sync()  # read what the primary has before the first query
                return conn
            except BaseException as exc:
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    raise
                raise _Failed(_translate(exc, self._secret), retryable=False) from None

        self._conn = await self._call(open_in_thread)
        for statement in target.setup_statements():
            await self.execute_statement(statement, ())

    async def execute_statement(
        self, sql: str, parameters: Sequence[Sequence[Any]], *, many: bool = False
    ) -> _Outcome:
        """Run one statement; while the database is locked by another connection and this one has
        no transaction open, wait on the event loop and try again until the busy timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.target.busy_timeout
        attempt = 0
        while True:
            try:
                outcome = await self._run(sql, parameters, many)
            except _Failed as failed:
                if not failed.retryable or loop.time() >= deadline:
                    raise failed.error from None
                await asyncio.sleep(BUSY_DELAYS[min(attempt, len(BUSY_DELAYS) - 1)])
                attempt += 1
                self.busy_retries += 1
                continue
            self.in_transaction = outcome.in_transaction
            return outcome

    async def _run(self, sql: str, parameters: Sequence[Sequence[Any]], many: bool) -> _Outcome:
        if self._closed:
            raise ProgrammingError("Cannot operate on a closed database.")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, _run_statement, self._conn, sql, parameters, many, self._secret
        )

    def cursor(self) -> AsyncCursor:
        return AsyncCursor(self)

    async def commit(self) -> None:
        if self.in_transaction:
            await self.execute_statement("COMMIT", ())

    async def rollback(self) -> None:
        if self.in_transaction:
            await self.execute_statement("ROLLBACK", ())

    async def sync(self) -> None:
        """Pull the primary's new frames into an embedded replica (a no-op on other kinds)."""
        if self.target.kind == "replica":
            conn = self._conn
            await self._call(lambda: conn.sync())

    async def close(self) -> None:
        if self._closed:
            return
        conn, self._conn = self._conn, None
        try:
            if conn is not None:
                await self._call(conn.close)
        finally:
            self._closed = True
            self._executor.shutdown(wait=False)

    def stop(self) -> None:
        """Close without waiting (garbage collection, a terminated pool connection)."""
        if self._closed:
            return
        self._closed = True
        conn, self._conn = self._conn, None
        if conn is not None:
            self._executor.submit(conn.close)
        self._executor.shutdown(wait=False)


class AsyncCursor:
    """A cursor whose statement's rows are all fetched when it runs (no server-side cursors)."""

    def __init__(self, connection: AsyncConnection) -> None:
        self._connection = connection
        self.arraysize = 1
        self.description: tuple[tuple[Any, ...], ...] | None = None
        self.rowcount = -1
        self.lastrowid: int | None = None
        self._rows: list[tuple[Any, ...]] = []

    async def __aenter__(self) -> AsyncCursor:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.close()

    def _take(self, outcome: _Outcome) -> None:
        self.description = outcome.description
        self.rowcount = outcome.rowcount
        self.lastrowid = outcome.lastrowid
        self._rows = outcome.rows

    async def execute(self, sql: str, parameters: Sequence[Any] | None = None) -> AsyncCursor:
        self._take(await self._connection.execute_statement(sql, [parameters or ()]))
        return self

    async def executemany(self, sql: str, seq_of_parameters: Sequence[Sequence[Any]]) -> AsyncCursor:
        self._take(await self._connection.execute_statement(sql, list(seq_of_parameters), many=True))
        return self

    async def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows.pop(0) if self._rows else None

    async def fetchmany(self, size: int | None = None) -> list[tuple[Any, ...]]:
        count = self.arraysize if size is None else size
        taken, self._rows = self._rows[:count], self._rows[count:]
        return taken

    async def fetchall(self) -> list[tuple[Any, ...]]:
        taken, self._rows = self._rows, []
        return taken

    async def setinputsizes(self, *_: Any) -> None:
        return None

    async def close(self) -> None:
        self._rows = []


async def connect(
    database: str,
    *,
    sync_url: str | None = None,
    sync_interval: float | None = None,
    auth_token: SecretStr | None = None,
    busy_timeout: float = 30.0,
) -> AsyncConnection:
    """Open a libSQL connection on its own thread and configure it (see :class:`LibsqlTarget`)."""
    if auth_token is not None:
        register_secret(auth_token.get_secret_value())
    connection = AsyncConnection(LibsqlTarget(database, sync_url, sync_interval, auth_token, busy_timeout))
    try:
        await connection._open()
    except BaseException:
        await asyncio.shield(connection.close())
        raise
    return connection


__all__ = [
    "AsyncConnection",
    "AsyncCursor",
    "DataError",
    "DatabaseError",
    "Error",
    "IntegrityError",
    "InterfaceError",
    "InternalError",
    "LibsqlTarget",
    "NotSupportedError",
    "OperationalError",
    "ProgrammingError",
    "connect",
    "is_busy",
    "paramstyle",
    "sqlite_version_info",
]
