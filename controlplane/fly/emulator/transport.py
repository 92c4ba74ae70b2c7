"""In-process httpx transport: the emulator's ASGI app without sockets. A dropped-connection fault
surfaces as ``httpx.RemoteProtocolError`` after the side effect, like a reset on a real socket."""

from __future__ import annotations

import httpx

from controlplane.fly.emulator.app import EmulatorApp
from controlplane.fly.emulator.http import INPROCESS_SCOPE_KEY, ConnectionDropped, Receive, Scope, Send


class _InProcessApp:
    def __init__(self, app: EmulatorApp) -> None:
        self._app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self._app({**scope, INPROCESS_SCOPE_KEY: True}, receive, send)


class EmulatorTransport(httpx.AsyncBaseTransport):
    def __init__(self, app: EmulatorApp) -> None:
        self._inner = httpx.ASGITransport(app=_InProcessApp(app), raise_app_exceptions=True)  # type: ignore[arg-type]  # dict-typed ASGI scope

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        try:
            return await self._inner.handle_async_request(request)
        except ConnectionDropped as exc:
            raise httpx.RemoteProtocolError(
                "Server disconnected without sending a response.", request=request
            ) from exc

    async def aclose(self) -> None:
        await self._inner.aclose()
