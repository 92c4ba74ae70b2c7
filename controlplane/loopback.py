"""Serve an ASGI app on a real loopback socket inside the caller's event loop (uvicorn).

For the Fly emulator, the local fake of Stripe's API and the demo's dashboard API: one way to bind,
start, wait for readiness and shut down.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from collections.abc import AsyncIterator
from typing import Any, Literal

import uvicorn


def bind(host: str, port: int) -> socket.socket:
    # proto=IPPROTO_TCP matters: asyncio only sets TCP_NODELAY on accepted sockets whose proto says
    # TCP, and without it every response waits ~40 ms on Nagle + delayed ACK.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind((host, port))
    sock.listen(512)
    sock.setblocking(False)
    return sock


@contextlib.asynccontextmanager
async def serve_asgi(
    app: Any, host: str = "127.0.0.1", port: int = 0, *, lifespan: Literal["on", "off"] = "off"
) -> AsyncIterator[str]:
    """Serve ``app`` until the block exits; yields the base URL (``http://127.0.0.1:PORT``)."""
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        interface="asgi3",  # every app here is ASGI 3 (bound methods fool uvicorn's detection)
        log_level=logging.WARNING,
        log_config=None,  # uvicorn's own handlers would bypass the redaction (controlplane.logging)
        access_log=False,
        lifespan=lifespan,
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("the loopback server exited during startup")
            await asyncio.sleep(0.01)
        yield f"http://{host}:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await task
        sock.close()


__all__ = ["bind", "serve_asgi"]
