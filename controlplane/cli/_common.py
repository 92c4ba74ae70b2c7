"""Helpers shared by CLI commands: settings loading, logging set-up, running coroutines."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any, TypeVar

from rich.console import Console

from controlplane.settings import Settings, get_settings

T = TypeVar("T")

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def settings() -> Settings:
    """Load settings once (raises SettingsError, which ``main`` turns into exit code 2) and
    configure logging from them."""
    from controlplane.logging import configure_logging

    s = get_settings()
    configure_logging(level=s.log_level, fmt=s.log_format)
    return s


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)
