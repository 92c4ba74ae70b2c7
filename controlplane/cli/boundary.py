"""The one error boundary of every ``controlplane`` command (the workers' commands included: they
register on the same app).

Whatever a command raises ends here as ONE line on stderr and an exit code from one table:

=========================================================  ====  ===================================
what                                                       exit  line
=========================================================  ====  ===================================
bad input: ``BadInput``/``NotFound``, ``InputRefused``,     2     ``error: <field or file>: <reason>``
settings, catalog, usage errors, unknown revision
a dependency unreachable: ``Unavailable``, the database     1     ``error: database <url>: <reason>``
refusing the connection, a wrong database name, an
unresolvable host, a timeout, Fly/provider unreachable
a safety check said no: ``Refused``                        3     ``error: <subject>: <reason>``
anything else (a bug)                                      1     ``error: unexpected <Type>: ...``
                                                                 ``; details in <debug log>``
=========================================================  ====  ===================================

Every line goes through :func:`controlplane.redaction.redact_text` (secret shapes, registered
secrets, URLs' userinfo/query/fragment). An unexpected failure's traceback never reaches the
terminal: it is written, redacted, to the debug log (``CP_DEBUG_LOG``; default
``$XDG_STATE_HOME/controlplane/debug.log``), a file created 0600.
"""

from __future__ import annotations

import contextvars
import datetime as dt
import os
import socket
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
from typer._click import exceptions as click_exceptions

from agents_config.inputs import InputRefused, describe_given, is_plain_name
from controlplane.errors import ControlPlaneError
from controlplane.private_files import append_private
from controlplane.redaction import redact_text

EXIT_OK = 0
EXIT_UNAVAILABLE = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130

_MAX_LINE = 2000
#: The command line :func:`run` is running (what :func:`report` scrubs when a command reports).
_ARGS: contextvars.ContextVar[list[str] | None] = contextvars.ContextVar(
    "controlplane_cli_args", default=None
)


@dataclass(frozen=True)
class Failure:
    """What the boundary reports: the exit code, the one line, and whether it is a bug."""

    exit_code: int
    line: str
    unexpected: bool = False


def run(app: typer.Typer, args: Sequence[str] | None = None, *, prog_name: str = "controlplane") -> int:
    """Run ``app`` with ``args`` behind the boundary and return the exit code (never raises, except
    ``SystemExit`` codes a command chose, returned as codes too)."""
    given = list(args) if args is not None else sys.argv[1:]
    token = _ARGS.set(given)
    try:
        return _run(app, given, prog_name)
    finally:
        _ARGS.reset(token)


def _run(app: typer.Typer, given: list[str], prog_name: str) -> int:
    try:
        result = app(args=given, prog_name=prog_name, standalone_mode=False)
    except SystemExit as exc:
        return _system_exit_code(exc)
    except BaseException as exc:  # the boundary: everything is reported, nothing escapes
        try:
            failure = classify(exc)
        except Exception:  # a bug while describing the failure must not become a traceback either
            failure = Failure(EXIT_UNAVAILABLE, f"unexpected {type(exc).__name__}", True)
        if failure.unexpected:
            where = write_debug_log(exc)
            pointer = f"; details in {where}" if where else ""
            report(failure.line, given, suffix=pointer)
        elif failure.line:
            report(failure.line, given)
        return failure.exit_code
    return result if isinstance(result, int) and not isinstance(result, bool) else EXIT_OK


def _system_exit_code(exc: SystemExit) -> int:
    code = exc.code
    if code is None:
        return EXIT_OK
    if isinstance(code, int):
        return code
    report(str(code))
    return EXIT_UNAVAILABLE


def report(line: str, args: Sequence[str] | None = None, *, suffix: str = "") -> None:
    """Print ``error: <line>`` on stderr: redacted, one line, bounded, the command line's non-plain
    values scrubbed (``args``, default: the command line being run). Commands that print their own
    refusal use it too."""
    if args is None:
        args = _ARGS.get() if _ARGS.get() is not None else sys.argv[1:]
    text = one_line(scrub(line, args or []))
    typer.secho(f"error: {text}{suffix}", err=True, fg=typer.colors.RED)


def one_line(text: str) -> str:
    """``text`` redacted, its lines joined with "; ", cut to a readable length."""
    flat = "; ".join(part.strip() for part in redact_text(str(text)).splitlines() if part.strip())
    return flat if len(flat) <= _MAX_LINE else flat[: _MAX_LINE - 1] + "…"


def scrub(line: str, args: Sequence[str]) -> str:
    """``line`` with every command-line value that is not plain (a plain name, an option name, a
    number, an existing path) replaced by its description: a key pasted where a name or a number was
    expected never comes back, whatever library wrote the message."""
    hidden: set[str] = set()
    for arg in args:
        value = arg.partition("=")[2] if arg.startswith("--") and "=" in arg else arg
        if not _plain_arg(value):  # the value and its last part (messages often name a file by it)
            hidden.update(
                part
                for part in (value, os.path.basename(value))
                if len(part) >= 4 and not is_plain_name(part)
            )
    for value in sorted(hidden, key=len, reverse=True):
        line = line.replace(value, f"<{describe_given(value)}>")
    return line


def _plain_arg(value: str) -> bool:
    if is_plain_name(value) or (value.isdigit() and len(value) <= 12):
        return True
    if value.startswith("-") and is_plain_name(value.lstrip("-")):
        return True  # an option name
    try:
        return os.path.exists(value)
    except (OSError, ValueError):
        return False


# --- classification -------------------------------------------------------------------------------


def classify(exc: BaseException) -> Failure:
    """The exit code and line for ``exc`` (see the module's table)."""
    from agents_config.catalog import CatalogError, UnknownPlanError
    from controlplane.settings import SettingsError

    if isinstance(exc, BaseExceptionGroup):  # a task group's failures: reported by their first leaf,
        leaves = [classify(leaf) for leaf in _leaves(exc)]  # a bug among them wins
        if leaves:
            return next((leaf for leaf in leaves if leaf.unexpected), leaves[0])
    if isinstance(exc, typer.Exit):
        return Failure(exc.exit_code, "")
    if isinstance(exc, click_exceptions.NoArgsIsHelpError):
        typer.echo(exc.format_message(), err=True)
        return Failure(EXIT_BAD_INPUT, "")
    if isinstance(exc, click_exceptions.UsageError):
        return Failure(EXIT_BAD_INPUT, _usage_line(exc))
    if isinstance(exc, click_exceptions.ClickException):
        return Failure(exc.exit_code, exc.format_message())
    if isinstance(exc, (typer.Abort, KeyboardInterrupt)):
        return Failure(EXIT_INTERRUPTED, "interrupted")
    if isinstance(exc, ControlPlaneError):
        return Failure(exc.exit_code, str(exc))
    if isinstance(exc, (SettingsError, InputRefused, CatalogError, UnknownPlanError)):
        return Failure(EXIT_BAD_INPUT, str(exc))
    by_name = _by_class_name(exc)
    if by_name is not None:
        return by_name
    migration = _migration_refusal(exc)
    if migration is not None:
        return Failure(EXIT_BAD_INPUT, migration)
    unreachable = _unreachable(exc)
    if unreachable is not None:
        return Failure(EXIT_UNAVAILABLE, unreachable)
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return Failure(
        EXIT_UNAVAILABLE, f"unexpected {type(exc).__name__}" + (f": {first}" if first else ""), True
    )


#: Expected failures of the layers below, by class name (imports stay lazy): exit code and subject.
_BAD_INPUT_CLASSES = frozenset(
    {
        "FlyConfigError",
        "UnknownProvider",
        "KeyFormatRefused",
        "InvalidModelPreference",
        "KeyNotFound",
        "TenantNotFound",
    }
)


def _by_class_name(exc: BaseException) -> Failure | None:
    names = {cls.__name__ for cls in type(exc).__mro__}
    if names & _BAD_INPUT_CLASSES:
        return Failure(EXIT_BAD_INPUT, str(exc))
    if "KeyRefused" in names:
        return Failure(3, f"key (stdin): {exc}")
    if "FlyError" in names:
        return Failure(EXIT_UNAVAILABLE, f"Fly API: {exc}")
    return None


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    leaves: list[BaseException] = []
    for item in group.exceptions:
        leaves.extend(_leaves(item) if isinstance(item, BaseExceptionGroup) else [item])
    return leaves


def _usage_line(exc: click_exceptions.UsageError) -> str:
    hint = ""
    if exc.ctx is not None:
        hint = f" (try '{exc.ctx.command_path} --help')"
    return exc.format_message() + hint


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, its causes and contexts, and SQLAlchemy's wrapped driver errors (``.orig``)."""
    seen: set[int] = set()
    todo: list[BaseException] = [exc]
    while todo:
        item = todo.pop()
        if id(item) in seen:
            continue
        seen.add(id(item))
        yield item
        for linked in (item.__cause__, item.__context__, getattr(item, "orig", None)):
            if isinstance(linked, BaseException):
                todo.append(linked)
        if isinstance(item, BaseExceptionGroup):
            todo.extend(item.exceptions)


def _migration_refusal(exc: BaseException) -> str | None:
    try:
        from alembic.util.exc import CommandError
    except ImportError:  # pragma: no cover - alembic is a dependency
        return None
    for item in _chain(exc):
        if isinstance(item, CommandError):
            text = str(item)
            if "Can't locate revision" in text or "No such revision" in text or "not present" in text:
                return "--revision: no such revision in this project's migrations"
            if "Relative revision" in text or "is not a valid" in text:
                return "--revision: not a revision this project can move to"
            return f"database migration refused: {text}"
    return None


def _unreachable(exc: BaseException) -> str | None:
    """The line for a dependency that could not be reached (the database, an HTTP service), or None."""
    reason: str | None = None
    database = False
    http_url: str | None = None
    for item in _chain(exc):
        module = type(item).__module__
        if module.startswith(("sqlalchemy", "asyncpg", "sqlite3", "aiosqlite", "controlplane.db")):
            database = True
        if module.startswith("httpx") and reason is None:
            request = _httpx_request(item)
            if request is not None:
                http_url = str(request.url)
        found = _reason(item)
        if found is not None and reason is None:
            reason = found
    if reason is None:
        return None
    if database or http_url is None:
        return f"database {_database_display()}: {reason}"
    from controlplane.url_redaction import redact_url

    return f"{redact_url(http_url)}: {reason}"


def _httpx_request(item: BaseException) -> Any:
    try:
        return getattr(item, "request", None)
    except RuntimeError:  # httpx raises when an error carries no request
        return None


def _reason(item: BaseException) -> str | None:
    name = type(item).__name__
    if isinstance(item, BrokenPipeError):  # our own output closed (``| head``): not a dependency
        return None
    if isinstance(item, ConnectionRefusedError):
        return "connection refused"
    if isinstance(item, socket.gaierror):
        return "host not found"
    if name == "InvalidCatalogNameError":
        return "the database does not exist"
    if name in ("InvalidPasswordError", "InvalidAuthorizationSpecificationError"):
        return "authentication failed"
    if name in ("ConnectError", "ConnectTimeout"):  # httpx
        return "cannot connect"
    if isinstance(item, TimeoutError) or name in ("ReadTimeout", "PoolTimeout", "TimeoutException"):
        return "timed out"
    if isinstance(item, ConnectionError) or (
        isinstance(item, OSError) and item.errno in (101, 111, 113, 110)  # unreachable, refused, timeout
    ):
        return f"cannot connect ({item.strerror or name})"
    if name == "OperationalError" and "unable to open database file" in str(item):
        return "cannot open the database file"
    if name in ("OperationalError", "ProgrammingError", "UndefinedTableError") and (
        "no such table" in str(item) or ("does not exist" in str(item) and "relation" in str(item))
    ):
        return "the schema is missing or out of date (run `controlplane db upgrade`)"
    if name == "CannotConnectNowError":
        return "the server is starting or shutting down"
    return None


def _database_display() -> str:
    """The configured database URL, redacted (or nothing when settings do not load)."""
    try:
        from controlplane.db.urls import redact_database_url
        from controlplane.settings import get_settings

        return redact_database_url(get_settings().database_url)
    except Exception:
        return "(from CP_DATABASE_URL)"


# --- the debug log --------------------------------------------------------------------------------


def debug_log_path() -> Path:
    """``CP_DEBUG_LOG``, else ``$XDG_STATE_HOME/controlplane/debug.log`` (``~/.local/state``)."""
    configured = os.environ.get("CP_DEBUG_LOG")
    if configured:
        return Path(configured)
    try:  # set in .env: only when the settings load (the failure may be that they do not)
        from controlplane.settings import get_settings

        from_settings = get_settings().debug_log
    except Exception:
        from_settings = None
    if from_settings is not None:
        return from_settings
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "controlplane" / "debug.log"


def write_debug_log(exc: BaseException) -> Path | None:
    """Append the redacted traceback of ``exc`` to the debug log (created 0600, its directory 0700);
    the path, or None when it cannot be written."""
    path = debug_log_path()
    text = "".join(traceback.format_exception(exc))
    stamp = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    entry = f"--- {stamp} controlplane {_command_words()}\n{redact_text(text)}\n"
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        append_private(path, entry)
    except OSError:
        return None
    return path


def _command_words() -> str:
    """The command's words from argv (options and their values left out: they may be secrets)."""
    words = []
    for arg in sys.argv[1:4]:
        if arg.startswith("-"):
            break
        words.append(arg if arg.replace("-", "").isalpha() and len(arg) <= 30 else describe_given(arg))
    return " ".join(words)


__all__ = [
    "EXIT_BAD_INPUT",
    "EXIT_UNAVAILABLE",
    "Failure",
    "classify",
    "debug_log_path",
    "one_line",
    "report",
    "run",
]
