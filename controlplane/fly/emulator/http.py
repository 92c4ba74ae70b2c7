"""Minimal ASGI plumbing: request parsing, JSON replies, a dropped-connection signal and a router that
knows each Fly operation's name (used by rate limits and fault injection)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from controlplane.fly.emulator.errors import ApiError, bad_request
from controlplane.limits import (
    InputRefused,
    TooLarge,
    body_limits,
    check_content_length,
    parse_json_body,
    read_body,
)

Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

INPROCESS_SCOPE_KEY = "fly_emulator.inprocess"


class ConnectionDropped(Exception):
    """Raised inside the in-process transport to simulate a connection reset after the side effect."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes
    inprocess: bool = False
    path_params: dict[str, str] = field(default_factory=dict)
    _json: Any = None
    _json_parsed: bool = False

    def query_one(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[-1] if values else None

    def flag(self, name: str) -> bool:
        value = self.query_one(name)
        return value is not None and value.lower() in ("true", "1", "yes", "")

    def json(self) -> Any:
        """Parsed JSON body, None when empty. Invalid JSON (syntax, not UTF-8, NaN/Infinity, nested
        deeper than 32, a number longer than 40 digits) -> 400, without quoting the body."""
        if not self._json_parsed:
            self._json_parsed = True
            try:
                self._json = parse_json_body(self.body, body_limits(max(len(self.body), 1)))
            except InputRefused as exc:
                raise bad_request(f"invalid JSON body: {exc.reason}") from None
        return self._json

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        body = self.json()
        if body is None and not required:
            return {}
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        return body


def request_head(scope: Scope) -> Request:
    """The request without its body (read later, after routing and authentication)."""
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        query.setdefault(key, []).append(value)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return Request(
        method=scope["method"].upper(),
        path=scope["path"],
        query=query,
        headers=headers,
        body=b"",
        inprocess=bool(scope.get(INPROCESS_SCOPE_KEY)),
    )


async def read_request_body(request: Request, receive: Receive, max_bytes: int) -> None:
    """Read the body into ``request``: a declared length over ``max_bytes`` is refused before one byte
    is read, a streamed body once it passes the limit (413); a malformed length is a 400."""
    try:
        check_content_length(request.headers.get("content-length"), max_bytes)
        request.body = await read_body(receive, max_bytes)
    except TooLarge as exc:
        raise ApiError(413, f"request body too large: {exc.reason}", "request_too_large") from None
    except InputRefused as exc:
        raise bad_request(f"invalid request: {exc}") from None


@dataclass
class Reply:
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    text: str | None = None  # plain-text body instead of JSON


async def send_reply(send: Send, reply: Reply) -> None:
    if reply.text is not None:
        payload = reply.text.encode()
        content_type = b"text/plain; charset=utf-8"
    elif reply.body is None and reply.status in (202, 204):
        payload, content_type = b"", b""
    else:
        payload = json.dumps(reply.body, separators=(",", ":")).encode()
        content_type = b"application/json; charset=utf-8"
    headers = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in reply.headers.items()]
    if content_type:
        headers.append((b"content-type", content_type))
    headers.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": reply.status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def drop_connection(send: Send, inprocess: bool) -> None:
    """Simulate a connection lost before the answer arrives.

    In process: raise, the transport turns it into httpx.RemoteProtocolError. Over a socket: announce
    a body and never send it, so the server closes the connection mid-response.
    """
    if inprocess:
        raise ConnectionDropped()
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-length", b"64"), (b"content-type", b"application/json")],
        }
    )


Handler = Callable[["Call"], Awaitable[Reply]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    op: str
    scope: str  # rate-limit scope: "machine", "app", "org" or "none"
    handler: Handler
    regex: re.Pattern[str]


@dataclass
class Call:
    """What a handler receives: the request and its route."""

    request: Request
    route: Route

    def param(self, name: str) -> str:
        return self.request.path_params[name]


class Router:
    def __init__(self) -> None:
        self._routes: list[Route] = []

    def add(self, method: str, template: str, op: str, scope: str, handler: Handler) -> None:
        pattern = "^" + re.sub(r"\{(\w+)\}", r"(?P<\1>[^/]+)", template) + "/?$"
        self._routes.append(Route(method, template, op, scope, handler, re.compile(pattern)))

    def match(self, method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
        """(route, path params, path_exists)."""
        path_exists = False
        for route in self._routes:
            found = route.regex.match(path)
            if found is None:
                continue
            path_exists = True
            if route.method == method:
                return route, found.groupdict(), True
        return None, {}, path_exists
