"""Request limits, enforced before any route parses anything (an ASGI middleware).

* a query string that carries something shaped like a key or token → 422 at once (keys travel only
  in request bodies; a route would silently ignore an unknown query parameter);
* ``Content-Length`` over ``CP_API_MAX_BODY_BYTES`` → 413 at once, nothing read;
* a body without a length (chunked) is read until it passes the limit, then 413 (the rest is never
  read);
* a JSON body nested deeper than :data:`MAX_JSON_DEPTH` → 413 before the JSON parser recurses.

The body read here is handed on unchanged to the application (the route reads it from memory).
Rejections use the API's one error shape.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import unquote_plus

from controlplane.api.errors import error_response
from controlplane.redaction import redact_text

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MAX_JSON_DEPTH = 32
_METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class _TooLarge(Exception):
    pass


def json_depth_exceeds(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether ``body`` nests arrays/objects deeper than ``limit`` (strings skipped, escapes
    honoured; linear, no recursion). Malformed JSON is left to the parser."""
    depth = 0
    in_string = False
    escaped = False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):  # ] }
            depth -= 1
    return False


class BodyLimit:
    """ASGI middleware: see the module docstring."""

    def __init__(self, app: ASGIApp, *, max_bytes: int, max_depth: int = MAX_JSON_DEPTH) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.max_depth = max_depth

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
        declared = headers.get(b"content-length")
        if declared is not None:
            text = declared.decode("latin-1").strip()
            if not text.isdigit() or len(text) > 19:
                await self._refuse(scope, send, 422, "bad_input", "content-length: must be a number of bytes")
                return
            if int(text) > self.max_bytes:
                await self._too_large(scope, send)
                return
        try:
            body = await self._read(receive)
        except _TooLarge:
            await self._too_large(scope, send)
            return
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        if "json" in content_type and json_depth_exceeds(body, self.max_depth):
            await self._refuse(
                scope, send, 413, "too_large", f"body: nested deeper than {self.max_depth} levels", "body"
            )
            return

        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _read(self, receive: Receive) -> bytes:
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            if message["type"] != "http.request":
                continue
            chunk = message.get("body", b"") or b""
            size += len(chunk)
            if size > self.max_bytes:
                raise _TooLarge
            chunks.append(chunk)
            if not message.get("more_body"):
                break
        return b"".join(chunks)

    async def _too_large(self, scope: Scope, send: Send) -> None:
        await self._refuse(
            scope, send, 413, "too_large", f"body: larger than the limit of {self.max_bytes:,} bytes", "body"
        )

    async def _refuse(
        self, scope: Scope, send: Send, status: int, code: str, message: str, field: str | None = None
    ) -> None:
        response = error_response(status, code, message, field)

        async def no_body() -> Message:
            return {"type": "http.disconnect"}

        await response(scope, no_body, send)


__all__ = ["MAX_JSON_DEPTH", "BodyLimit", "json_depth_exceeds"]
