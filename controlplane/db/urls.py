"""Database URL handling: pick the async driver for each backend and hide passwords and auth tokens
for display."""

from __future__ import annotations

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

from agents_config.inputs import name_or_given, path_part
from controlplane.url_redaction import redact_url

#: The libSQL dialect's driver name (controlplane.db.libsql_dialect; not imported here so that
#: reading settings never loads the libSQL SDK).
LIBSQL_DRIVERNAME = "sqlite+libsql_async"
#: libSQL URL options: ``tls=0`` (remote over plain HTTP), ``syncUrl`` and ``syncInterval`` (an
#: embedded replica), ``authToken`` (Turso; a secret, never shown).
LIBSQL_OPTIONS = frozenset({"tls", "syncUrl", "syncInterval", "authToken"})
AUTH_TOKEN = "authToken"

#: URL schemes accepted, mapped to the async driver the control plane uses.
_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "sqlite+aiosqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
    "postgresql+asyncpg": "postgresql+asyncpg",
    "libsql": LIBSQL_DRIVERNAME,
    "sqlite+libsql": LIBSQL_DRIVERNAME,
    LIBSQL_DRIVERNAME: LIBSQL_DRIVERNAME,
}


def normalise_database_url(raw: str) -> str:
    """Return ``raw`` with the async driver set; raise ``ValueError`` (no password or token echoed)
    if the URL is malformed or its backend is not supported."""
    raw = raw.strip()
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ValueError(
            "is not a database URL (expected sqlite:///path, libsql://... or postgresql://...)"
        ) from None
    driver = _DRIVERS.get(url.drivername)
    if driver is None:
        raise ValueError(
            f"unsupported database backend {name_or_given(url.drivername)} (use sqlite, libsql or postgresql)"
        )
    if url.port is not None and not 0 < url.port < 65536:
        raise ValueError("the port must be a number from 1 to 65535")
    url = url.set(drivername=driver)
    if driver == LIBSQL_DRIVERNAME:
        _check_libsql(url)
    return url.render_as_string(hide_password=False)


def _check_libsql(url: URL) -> None:
    unknown = sorted(set(url.query) - LIBSQL_OPTIONS)
    if unknown:
        raise ValueError(
            f"unknown libSQL URL option(s) {', '.join(path_part(u) for u in unknown)} (known: {', '.join(sorted(LIBSQL_OPTIONS))})"
        )
    if url.username or url.password:
        raise ValueError("a libSQL URL takes its auth token as ?authToken=..., not user:password@")
    if url.host:
        if url.database:
            raise ValueError("a remote libSQL URL has no path (libsql://<db>.turso.io)")
        if "syncUrl" in url.query:
            raise ValueError("syncUrl needs a local file: libsql:///replica.db?syncUrl=libsql://...")
    elif not url.database:
        raise ValueError("a libSQL URL needs a file (libsql:///file.db) or a host (libsql://<db>.turso.io)")
    sync_url = url.query.get("syncUrl")
    if sync_url is not None and not str(sync_url).startswith(("libsql://", "https://", "http://")):
        raise ValueError("syncUrl must be a libsql://, https:// or http:// URL")
    interval = url.query.get("syncInterval")
    if interval is not None:
        try:
            seconds = float(str(interval))
        except ValueError:
            seconds = -1.0
        if seconds <= 0 or "syncUrl" not in url.query:
            raise ValueError("syncInterval must be a positive number of seconds, beside a syncUrl")
    if url.query.get("tls") not in (None, "0", "1"):
        raise ValueError("tls must be 0 or 1")


def split_auth_token(url: str) -> tuple[str, str | None]:
    """The URL without its ``authToken`` query option, and the token (or None)."""
    parsed = make_url(url)
    token = parsed.query.get(AUTH_TOKEN)
    if token is None:
        return url, None
    rest = parsed.difference_update_query([AUTH_TOKEN])
    return rest.render_as_string(hide_password=False), str(token)


def redact_database_url(url: str) -> str:
    """The URL for logs and ``settings show``: :func:`controlplane.url_redaction.redact_url` (userinfo,
    every query value, the fragment masked)."""
    return redact_url(url)


def is_libsql(url: str) -> bool:
    return url.startswith(LIBSQL_DRIVERNAME)


def is_sqlite(url: str) -> bool:
    """True for every SQLite engine: sqlite3 (aiosqlite) and libSQL (local, replica or remote)."""
    return url.startswith("sqlite")
