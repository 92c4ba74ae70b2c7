"""Logging with structlog: JSON lines when not on a terminal, readable otherwise; always redacted.

Both structlog loggers and the standard library's (httpx, uvicorn, alembic ...) go through one
handler whose last processors are :func:`redact_event` (secret values and secret shapes removed,
also from rendered tracebacks) and the renderer.

Every logger in the process ends there: the libraries' loggers (:data:`LIBRARY_LOGGERS`) lose any
handler of their own (uvicorn's default configuration installs some) and propagate to the root.
Bound SQL parameters never reach a log line, whatever the level: the engines hide them
(``hide_parameters``), and the handler's :class:`NoBoundParameters` filter drops the records that
carry them anyway (aiosqlite's DEBUG "executing" lines hold each statement's values; SQLAlchemy's
DEBUG lines hold result rows; stripe-python's hold whole request and response bodies). ``CP_DATABASE_ECHO`` logs statements (without parameters) at INFO
through the same handler (SQLAlchemy's own ``echo`` would add a handler that skips the redaction).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

from controlplane.redaction import redact_value


def redact_event(_logger: Any, _method: str, event_dict: MutableMapping[str, Any]) -> dict[str, Any]:
    """structlog processor: redact every value of the event (after tracebacks are rendered)."""
    redacted: dict[str, Any] = redact_value(dict(event_dict))
    return redacted


#: Library loggers routed through the root handler (their own handlers removed).
LIBRARY_LOGGERS = (
    "uvicorn",
    "uvicorn.error",
    "uvicorn.access",
    "uvicorn.asgi",
    "sqlalchemy",
    "sqlalchemy.engine",
    "sqlalchemy.engine.Engine",
    "sqlalchemy.pool",
    "aiosqlite",
    "asyncpg",
    "httpx",
    "httpcore",
    "alembic",
    "stripe",
    "libsql",
)

#: Loggers whose records below INFO carry bound values, result rows or whole request and response
#: bodies (stripe-python's DEBUG lines: customers' emails and addresses): never emitted.
_VALUE_CARRYING_DEBUG = ("aiosqlite", "sqlalchemy.engine", "sqlalchemy.orm", "stripe")


class NoBoundParameters(logging.Filter):
    """Drops the records that carry statement parameters or result rows (see the module docstring)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.INFO:
            return True
        name = record.name
        return not any(name == p or name.startswith(p + ".") for p in _VALUE_CARRYING_DEBUG)


def route_library_loggers() -> None:
    """Every library logger propagates to the root handler and has no handler of its own."""
    for name in LIBRARY_LOGGERS:
        logger = logging.getLogger(name)
        logger.handlers = []
        logger.propagate = True


def _want_json(fmt: str, stream: TextIO) -> bool:
    if fmt == "json":
        return True
    if fmt == "console":
        return False
    isatty = getattr(stream, "isatty", None)
    return not (isatty and isatty())


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever ``sys.stderr`` is when a record is emitted (as logging's own last-resort
    handler does), not the stream of the moment logging was configured: a runner that swaps and
    closes stderr (Click's test runner, a daemon redirecting output) never leaves a dead stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


def configure_logging(
    level: str = "INFO", fmt: str = "auto", stream: TextIO | None = None, *, sql_echo: bool = False
) -> None:
    """Configure structlog and the standard library logging for the whole process.

    ``sql_echo`` (``CP_DATABASE_ECHO``): SQL statements at INFO, their parameters hidden."""
    chosen = stream or sys.stderr
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    renderer: Any
    if _want_json(fmt, chosen):
        renderer = structlog.processors.JSONRenderer()
        tail: list[Any] = [structlog.processors.format_exc_info]
    else:
        renderer = structlog.dev.ConsoleRenderer(
            colors=False, exception_formatter=structlog.dev.plain_traceback
        )
        tail = [structlog.processors.format_exc_info]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=False,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            *tail,
            redact_event,
            renderer,
        ],
    )
    handler: logging.Handler = logging.StreamHandler(stream) if stream is not None else _StderrHandler()
    handler.setFormatter(formatter)
    handler.addFilter(NoBoundParameters())
    root = logging.getLogger()
    root.handlers = [handler]
    root.setLevel(level.upper())
    route_library_loggers()
    # httpx logs every request URL at INFO; keep it at WARNING unless debugging.
    logging.getLogger("httpx").setLevel(logging.DEBUG if level.upper() == "DEBUG" else logging.WARNING)
    logging.getLogger("httpcore").setLevel(logging.WARNING)
    logging.getLogger("aiosqlite").setLevel(logging.INFO)
    # Alembic announces each of its plugins at INFO whenever it is imported: noise on every command.
    logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
    set_sql_echo(sql_echo)


def set_sql_echo(on: bool) -> None:
    """SQL statements logged at INFO (parameters hidden by the engines) or not at all."""
    logging.getLogger("sqlalchemy.engine").setLevel(logging.INFO if on else logging.WARNING)


def configure_safe_default() -> None:
    """Until :func:`configure_logging` runs, make structlog's default output redacted too (for
    code that imports the control plane as a library or logs before start-up configuration)."""
    if structlog.is_configured():
        return
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            redact_event,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.PrintLoggerFactory(sys.stderr),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str | None = None) -> Any:
    return structlog.get_logger(name)


__all__ = [
    "LIBRARY_LOGGERS",
    "NoBoundParameters",
    "configure_logging",
    "configure_safe_default",
    "get_logger",
    "redact_event",
    "route_library_loggers",
    "set_sql_echo",
]
