"""Minimal ASGI plumbing: request parsing, JSON replies, a dropped-connection signal and a router that
knows each Fly operation's name (used by rate limits and fault injection)."""

from __future__ import annotations

import json
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from controlplane.fly.emulator.errors import bad_request

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
        """Parsed JSON body, None when empty. Invalid JSON -> 400."""
        if not self._json_parsed:
            self._json_parsed = True
            if self.body.strip():
                try:
                    self._json = json.loads(self.body)
                except ValueError as exc:
                    raise bad_request("invalid JSON body") from exc
        return self._json

    def json_object(self, *, required: bool = True) -> dict[str, Any]:
        body = self.json()
        if body is None and not required:
            return {}
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        return body


async def read_request(scope: Scope, receive: Receive) -> Request:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.request":
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        elif message["type"] == "http.disconnect":
            break
    query: dict[str, list[str]] = {}
    for key, value in parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True):
        query.setdefault(key, []).append(value)
    headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
    return Request(
        method=scope["method"].upper(),
        path=scope["path"],
        query=query,
        headers=headers,
        body=b"".join(chunks),
        inprocess=bool(scope.get(INPROCESS_SCOPE_KEY)),
    )


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
