"""Database URL handling: pick the async driver for each backend and hide passwords for display."""

from __future__ import annotations

from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

#: URL schemes accepted, mapped to the async driver the control plane uses.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
}

LIBSQL_UNSUPPORTED = (
    "libsql:// URLs are not supported: no maintained libSQL driver works with SQLAlchemy's async "
    "engine yet (see docs/decisions/libsql-2026-11.md). Use PostgreSQL, or a local SQLite file."
)


def normalise_database_url(raw: str) -> str:
    """Return ``raw`` with the async driver set; raise ``ValueError`` (no password echoed) if the
    URL is malformed or its backend is not supported."""
    raw = raw.strip()
    if raw.startswith(("libsql://", "sqlite+libsql://", "wss://", "turso://")):
        raise ValueError(LIBSQL_UNSUPPORTED)
    try:
        url = make_url(raw)
    except ArgumentError:
        raise ValueError("is not a database URL (expected sqlite:///path or postgresql://...)") from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(f"unsupported database backend {url.drivername!r} (use sqlite or postgresql)")
    return url.set(drivername=driver).render_as_string(hide_password=False)


def redact_database_url(url: str) -> str:
    """The URL with its password replaced by ``***`` (for logs and ``settings show``)."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return "(unparseable)"


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")
