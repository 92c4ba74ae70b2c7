"""Run the emulator on a real loopback socket with uvicorn (inside the caller's event loop)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import uvicorn

from controlplane.fly.emulator.app import EmulatorApp
from controlplane.loopback import serve_asgi


@contextlib.asynccontextmanager
async def serve(app: EmulatorApp, host: str = "127.0.0.1", port: int = 0) -> AsyncIterator[str]:
    """Serve ``app`` until the block exits; yields the base URL (``http://127.0.0.1:PORT``)."""
    async with serve_asgi(app, host, port) as url:
        yield url


def run_forever(app: EmulatorApp, host: str, port: int) -> None:
    """Blocking server for the CLI."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        log_level="info",
        log_config=None,  # uvicorn's own handlers would bypass the redaction (controlplane.logging)
        access_log=False,
        lifespan="off",
    )
