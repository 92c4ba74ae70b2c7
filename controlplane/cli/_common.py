"""Helpers shared by CLI commands: settings loading, logging set-up, running coroutines."""

from __future__ import annotations

import asyncio
import getpass
import re
import sys
from collections.abc import AsyncIterator, Coroutine
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import typer
from rich.console import Console

from controlplane.errors import BadInput
from controlplane.settings import Settings, get_settings

if TYPE_CHECKING:
    from controlplane.db.session import Database

T = TypeVar("T")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    """Load settings once (raises SettingsError, which ``main`` turns into exit code 2) and
    configure logging from them."""
    from controlplane.logging import configure_logging

    s = get_settings()
    configure_logging(level=s.log_level, fmt=s.log_format, sql_echo=s.database_echo)
    return s


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


def cli_actor() -> str:
    """``cli:<user>`` for the audit log: the login name, reduced to the audit log's safe alphabet."""
    try:
        user = getpass.getuser()
    except Exception:  # no passwd entry (containers): still say it was the CLI
        user = "unknown"
    return "cli:" + (re.sub(r"[^A-Za-z0-9._@-]", "_", user)[:100] or "unknown")


@asynccontextmanager
async def open_database(s: Settings) -> AsyncIterator[Database]:
    from controlplane.db.session import Database

    db = Database.from_url(s.database_url, echo=s.database_echo, pool_size=s.database_pool_size)
    try:
        yield db
    finally:
        await db.dispose()


#: The most characters read from standard input for one secret (keys and tokens are far shorter):
#: ``< /dev/zero`` is refused after this many, not read until memory runs out.
MAX_STDIN_SECRET_CHARS = 16_384


def read_stdin_bounded(what: str, max_chars: int = MAX_STDIN_SECRET_CHARS) -> str:
    """Standard input (not a terminal), at most ``max_chars`` characters; more is refused."""
    try:
        value = sys.stdin.read(max_chars + 1)
    except UnicodeDecodeError:
        raise BadInput(f"{what.lower()} (stdin)", "not UTF-8 text") from None
    if len(value) > max_chars:
        raise BadInput(f"{what.lower()} (stdin)", f"longer than {max_chars:,} characters")
    return value


def read_secret_from_stdin(what: str) -> str:
    """A secret read from standard input (a hidden prompt on a terminal), never from argv."""
    if sys.stdin.isatty():
        value = str(typer.prompt(what, hide_input=True, default="", show_default=False))
    else:
        value = read_stdin_bounded(what)
    value = value.strip()
    if not value:
        raise BadInput(f"{what.lower()} (stdin)", "nothing was given on standard input")
    return value
