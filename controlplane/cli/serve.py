"""``controlplane serve [--host] [--port]``: run the dashboard API with uvicorn.

Refuses to start (exit 2, naming the variable) without ``CP_API_TOKENS`` (every dashboard route
would refuse every request) or ``CP_VAULT_KEYS`` (keys and channel tokens cannot be stored). The
database must be migrated first (``controlplane db upgrade``, a release step). Access logs are the
API's own JSON lines; uvicorn's are off.
"""

from __future__ import annotations

import signal

import typer

from controlplane.settings import SettingsError


def serve(
    host: str = typer.Option("127.0.0.1", "--host", help="Interface to listen on (0.0.0.0 for all)."),
    port: int = typer.Option(8080, "--port", min=1, max=65535, help="TCP port."),
) -> None:
    """Run the dashboard API (and the routes mounted on it) until interrupted."""
    import uvicorn

    from controlplane.api import create_app
    from controlplane.cli._common import settings

    s = settings()
    if not s.api_tokens:
        raise SettingsError(
            "CP_API_TOKENS is not set: the dashboard API needs at least one service token "
            "(comma-separated, 16 characters or more each)"
        )
    s.key_ring()  # SettingsError naming CP_VAULT_KEYS when it is missing
    app = create_app(s)
    # uvicorn shuts down gracefully on SIGTERM/SIGINT, then re-raises the signal with the handlers it
    # found: with these, a graceful stop exits 0 (what process managers and the smoke test expect).
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: None)
    uvicorn.run(app, host=host, port=port, access_log=False, log_config=None, server_header=False)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
