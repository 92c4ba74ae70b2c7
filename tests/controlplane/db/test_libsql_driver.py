"""The libSQL driver behaves like sqlite3 where SQLAlchemy and the control plane rely on it: lock waits
that leave the event loop running, DB-API error classes, rowcount and description, a closed
connection that raises instead of panicking; and it speaks only through the SDK's real engine."""

from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from controlplane.db import libsql_driver
from controlplane.db.libsql_driver import (
    IntegrityError,
    OperationalError,
    ProgrammingError,
    connect,
)

SCHEMA = "CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE, n INTEGER)"


async def test_a_second_writer_waits_on_the_event_loop_until_the_first_commits(tmp_path: Path) -> None:
    path = str(tmp_path / "locks.db")
    first, second = await connect(path), await connect(path)
    try:
        await first.execute_statement(SCHEMA, ())
        await first.execute_statement("BEGIN IMMEDIATE", ())
        await first.execute_statement("INSERT INTO t (name) VALUES (?)", [("first",)])

        waiting = asyncio.create_task(second.execute_statement("BEGIN IMMEDIATE", ()))
        # The second writer is refused ("database is locked") and retries; had it waited inside
        # SQLite's busy handler instead, the SDK would hold the GIL and this loop would not run.
        for _ in range(10_000):
            if second.busy_retries:
                break
            await asyncio.sleep(0.001)
        assert second.busy_retries > 0
        assert not waiting.done()
        await first.commit()
        await asyncio.wait_for(waiting, timeout=10)
        assert second.in_transaction
        cursor = second.cursor()
        await cursor.execute("SELECT name FROM t")
        assert await cursor.fetchall() == [("first",)]
        await second.rollback()
    finally:
        await first.close()
        await second.close()


async def test_a_writer_gives_up_after_the_busy_timeout(tmp_path: Path) -> None:
    path = str(tmp_path / "timeout.db")
    holder = await connect(path)
    impatient = await connect(path, busy_timeout=0.05)
    try:
        await holder.execute_statement("BEGIN IMMEDIATE", ())
        with pytest.raises(OperationalError, match="database is locked"):
            await impatient.execute_statement("BEGIN IMMEDIATE", ())
        assert not impatient.in_transaction
    finally:
        await holder.close()
        await impatient.close()


async def test_a_lock_inside_a_transaction_is_not_retried(tmp_path: Path) -> None:
    # Retrying is only safe when the refused statement did nothing; inside a transaction the caller
    # must decide (SQLAlchemy rolls back). A deferred reader that tries to write meets the lock.
    path = str(tmp_path / "inside.db")
    holder, reader = await connect(path), await connect(path)
    try:
        await holder.execute_statement(SCHEMA, ())
        await holder.execute_statement("BEGIN IMMEDIATE", ())
        await reader.execute_statement("BEGIN", ())
        await reader.execute_statement("SELECT count(*) FROM t", ())
        with pytest.raises(OperationalError, match="locked"):
            await reader.execute_statement("INSERT INTO t (name) VALUES ('x')", ())
        assert reader.busy_retries == 0
    finally:
        await holder.close()
        await reader.close()


def _sqlite3_view(path: str, statements: list[tuple[str, tuple[Any, ...]]]) -> list[tuple[Any, ...]]:
    conn = sqlite3.connect(path, isolation_level=None)
    seen = []
    for sql, params in statements:
        cursor = conn.execute(sql, params)
        rows = cursor.fetchall()
        seen.append((cursor.rowcount, cursor.description is None, rows))
    conn.close()
    return seen


STATEMENTS: list[tuple[str, tuple[Any, ...]]] = [
    (SCHEMA, ()),
    ("INSERT INTO t (name, n) VALUES ('a', 1), ('b', 2), ('c', 3)", ()),
    ("UPDATE t SET n = n + 1 WHERE n < ?", (3,)),
    ("UPDATE t SET n = 0 WHERE id < 0", ()),
    ("UPDATE t SET n = n + 1 WHERE n >= ? RETURNING id", (3,)),
    (
        "INSERT INTO t (name, n) VALUES ('a', 9) ON CONFLICT (name) DO UPDATE SET n = excluded.n RETURNING n",
        (),
    ),
    ("SELECT name, n FROM t ORDER BY id", ()),
    ("DELETE FROM t", ()),
]


async def test_rowcount_and_description_match_sqlite3(tmp_path: Path) -> None:
    expected = _sqlite3_view(str(tmp_path / "sqlite3.db"), STATEMENTS)
    conn = await connect(str(tmp_path / "libsql.db"))
    seen = []
    try:
        for sql, params in STATEMENTS:
            cursor = conn.cursor()
            await cursor.execute(sql, params)
            rows = await cursor.fetchall()
            seen.append((cursor.rowcount, cursor.description is None, rows))
    finally:
        await conn.close()
    assert seen == expected
    assert [count for count, _, _ in seen] == [-1, 3, 2, 0, 2, 1, -1, 3]


async def test_dml_behind_a_cte_counts_its_rows(tmp_path: Path) -> None:
    # sqlite3 reports -1 here (it looks at the first keyword only); the real count is more useful.
    conn = await connect(str(tmp_path / "cte.db"))
    try:
        await conn.execute_statement(SCHEMA, ())
        await conn.execute_statement("INSERT INTO t (name, n) VALUES ('a', 9), ('b', 9), ('c', 1)", ())
        cursor = conn.cursor()
        await cursor.execute("WITH doomed AS (SELECT id FROM t WHERE n = 9) DELETE FROM t WHERE id IN doomed")
        assert cursor.rowcount == 2
    finally:
        await conn.close()


async def test_executemany_counts_every_row(tmp_path: Path) -> None:
    conn = await connect(str(tmp_path / "many.db"))
    try:
        await conn.execute_statement(SCHEMA, ())
        cursor = conn.cursor()
        await cursor.executemany("INSERT INTO t (name) VALUES (?)", [("a",), ("b",), ("c",)])
        assert cursor.rowcount == 3
        await cursor.executemany("UPDATE t SET n = ? WHERE name = ?", [(1, "a"), (2, "nobody")])
        assert cursor.rowcount == 1
    finally:
        await conn.close()


async def test_errors_come_as_db_api_classes(tmp_path: Path) -> None:
    conn = await connect(str(tmp_path / "errors.db"))
    try:
        await conn.execute_statement(SCHEMA, ())
        await conn.execute_statement("INSERT INTO t (name) VALUES ('a')", ())
        with pytest.raises(IntegrityError, match="UNIQUE constraint failed"):
            await conn.execute_statement("INSERT INTO t (name) VALUES ('a')", ())
        await conn.execute_statement(
            "CREATE TABLE child (id INTEGER PRIMARY KEY, t_id REFERENCES t (id))", ()
        )
        with pytest.raises(IntegrityError, match="FOREIGN KEY"):  # foreign keys are on
            await conn.execute_statement("INSERT INTO child (t_id) VALUES (999)", ())
        with pytest.raises(OperationalError, match="no such table"):
            await conn.execute_statement("SELECT * FROM missing", ())
        with pytest.raises(OperationalError, match="syntax error"):
            await conn.execute_statement("SELEC 1", ())
        with pytest.raises(ProgrammingError):
            await conn.execute_statement("SELECT ?", [(object(),)])
        for error in (IntegrityError, OperationalError, ProgrammingError):
            assert issubclass(error, libsql_driver.DatabaseError)
    finally:
        await conn.close()


async def test_a_closed_connection_raises_instead_of_panicking(tmp_path: Path) -> None:
    conn = await connect(str(tmp_path / "closed.db"))
    await conn.close()
    await conn.close()  # twice is fine
    with pytest.raises(ProgrammingError, match="closed"):
        await conn.execute_statement("SELECT 1", ())
    with pytest.raises(ProgrammingError, match="closed"):
        await conn.cursor().execute("SELECT 1")


async def test_each_file_connection_gets_wal_foreign_keys_and_the_libsql_engine(tmp_path: Path) -> None:
    conn = await connect(str(tmp_path / "pragmas.db"))
    try:
        answers = {}
        for pragma in ("journal_mode", "foreign_keys", "synchronous", "busy_timeout"):
            cursor = conn.cursor()
            await cursor.execute(f"PRAGMA {pragma}")
            answers[pragma] = (await cursor.fetchone() or (None,))[0]
        # busy_timeout 0: lock waits happen on the event loop, not inside the SDK holding the GIL
        assert answers == {"journal_mode": "wal", "foreign_keys": 1, "synchronous": 1, "busy_timeout": 0}
        cursor = conn.cursor()
        await cursor.execute("SELECT sqlite_version()")
        (version,) = await cursor.fetchone() or ("0",)
        # RETURNING needs 3.35, ON CONFLICT ... DO UPDATE 3.24
        assert tuple(int(part) for part in version.split(".")) >= (3, 35, 0)
    finally:
        await conn.close()


async def test_an_unopenable_file_is_an_operational_error(tmp_path: Path) -> None:
    with pytest.raises(OperationalError):
        await connect(str(tmp_path / "no" / "such" / "dir" / "x.db"))
