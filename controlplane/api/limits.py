"""Request limits, enforced before any route parses anything (an ASGI middleware).

* a query string that carries something shaped like a key or token → 422 at once (keys travel only
  in request bodies; a route would silently ignore an unknown query parameter);
* ``Content-Length`` over ``CP_API_MAX_BODY_BYTES`` → 413 at once, nothing read;
* a body without a length (chunked) is read until it passes the limit, then 413 (the rest is never
  read);
* a JSON body nested deeper than :data:`MAX_JSON_DEPTH`, or holding a number longer than
  :data:`controlplane.limits.MAX_NUMBER_DIGITS` digits → 413 before the JSON parser recurses.

The checks are :mod:`controlplane.limits`'s, shared with the Fly emulator and the CLI's files.

The body read here is handed on unchanged to the application (the route reads it from memory).
Rejections use the API's one error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

from controlplane.api.errors import error_response
from controlplane.limits import (
    InputRefused,
    Limits,
    TooLarge,
    body_limits,
    check_content_length,
    check_json_body,
    read_body,
    scan_json,
)
from controlplane.redaction import redact_text

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (see :func:`controlplane.limits.scan_json`)."""
    try:
        scan_json(
            body.decode("utf-8", "replace"),
            "body",
            Limits(max_bytes=len(body), max_depth=limit, max_number_digits=len(body) + 1),
        )
    except TooLarge:
        return True
    return False


class BodyLimit:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth
        self.limits = body_limits(max_bytes, max_depth=max_depth)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = unquote_plus(bytes(scope.get("query_string", b"")).decode("latin-1"))
        if query and redact_text(query) != query:
            await self._refuse(
                scope,
                send,
                422,
                "bad_input",
                "query: looks like it carries a key or token; secrets travel only in request bodies",
                "query",
            )
            return
        if scope.get("method") not in _METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = {k.lower(): v for k, v in scope.get("headers", ())}
        try:
            check_content_length(headers.get(b"content-length"), self.max_bytes)
            body = await read_body(receive, self.max_bytes)
            content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
            if "json" in content_type:
                check_json_body(body, self.limits)
        except TooLarge as exc:
            await self._refuse(scope, send, 413, "too_large", str(exc), exc.subject)
            return
        except InputRefused as exc:
            await self._refuse(scope, send, 422, "bad_input", str(exc), exc.subject)
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, code: str, message: str, field: str | None = None
    ) -> None:
        response = error_response(status, code, message, field)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


__all__ = ["MAX_JSON_DEPTH", "BodyLimit", "json_depth_exceeds"]
