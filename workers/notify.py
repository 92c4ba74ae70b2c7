"""PostgreSQL ``LISTEN`` for the reconcile queue's wake-ups (marks ``NOTIFY`` on commit).

The notification only signals "something may be due": the worker then claims as usual, and polling
stays the fallback (a lost connection costs at most a poll interval; the listener reconnects).
"""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from controlplane.db.queue import WAKE_CHANNEL
from controlplane.db.urls import is_sqlite, normalise_database_url
from controlplane.redaction import redact_text

log = structlog.get_logger(__name__)


def _asyncpg_dsn(url: str) -> str:
    return normalise_database_url(url).replace("postgresql+asyncpg://", "postgresql://", 1)


async def listen_for_marks(
    database_url: str, wake: asyncio.Event, stop: asyncio.Event, *, reconnect_seconds: float = 5.0
) -> None:
    """Set ``wake`` on every mark until ``stop``; a no-op on SQLite (one process polls)."""
    if is_sqlite(normalise_database_url(database_url)):
        return
    import asyncpg

    def notified(*_: Any) -> None:
        wake.set()

    while not stop.is_set():
        connection = None
        try:
            connection = await asyncpg.connect(_asyncpg_dsn(database_url))
            await connection.add_listener(WAKE_CHANNEL, notified)
            log.info("notify.listening", channel=WAKE_CHANNEL)
            await stop.wait()
        except Exception as exc:
            log.warning("notify.listen_failed", error=redact_text(f"{type(exc).__name__}: {exc}"))
            try:
                await asyncio.wait_for(stop.wait(), timeout=reconnect_seconds)
            except TimeoutError:
                pass
        finally:
            if connection is not None:
                await connection.close()


__all__ = ["listen_for_marks"]
