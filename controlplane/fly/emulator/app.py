"""The emulator's ASGI application: request ids, gateway probes, auth, faults, rate limits, routing.

Hostile requests are refused before they cost anything: the route and the token are checked before
one byte of the body is read, the body is read up to ``EmulatorOptions.max_body_bytes`` (413
beyond, a declared ``Content-Length`` refused at once), parsed within depth and number limits and
type-checked against Fly's request schema (400, as Fly's Go decoder answers). An unexpected error is
one redacted log line and a bare 500 (no traceback in the answer); error answers never carry a
secret-shaped value.
"""

from __future__ import annotations

import hmac
from typing import Any

import structlog

from controlplane.fly.emulator.bodies import check_request_body
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import ApiError, error_body
from controlplane.fly.emulator.faults import FaultInjector, RequestInfo, fault_response
from controlplane.fly.emulator.http import (
    Call,
    ConnectionDropped,
    Receive,
    Reply,
    Request,
    Scope,
    Send,
    drop_connection,
    read_request_body,
    request_head,
    send_reply,
)
from controlplane.fly.emulator.probes import handle_probe, probe_target
from controlplane.fly.emulator.ratelimit import RateLimiter, retry_after_header
from controlplane.fly.emulator.routes import build_router
from controlplane.redaction import redact_text, redact_value

log = structlog.get_logger(__name__)


class EmulatorApp:
    """ASGI callable. One instance per emulator; all state lives in ``world``."""

    def __init__(self, world: World, faults: FaultInjector, limiter: RateLimiter) -> None:
        self.world = world
        self.faults = faults
        self.limiter = limiter
        self.router = build_router(world)
        self.request_count = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = request_head(scope)
        self.request_count += 1
        request_id = self.world.ids.ulid(self.world.wall()) + "-" + self.world.options.default_region
        try:
            reply = await self._handle(request, receive, send)
        except ConnectionDropped:
            raise
        except Exception:  # a bug in the emulator: a bare 500, the details in one redacted log line
            log.error(
                "fly_emulator.unexpected_error", method=request.method, path=request.path, exc_info=True
            )
            reply = Reply(500, error_body("internal error", "internal"))
        if reply is None:
            return  # connection dropped
        if reply.status >= 400:
            reply.body = redact_value(reply.body)
            reply.text = redact_text(reply.text) if reply.text is not None else None
        reply.headers["fly-request-id"] = request_id
        await send_reply(send, reply)
        if reply.status >= 400:
            log.debug(
                "fly_emulator.request",
                method=request.method,
                path=request.path,
                status=reply.status,
                request_id=request_id,
            )

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _handle(self, request: Request, receive: Receive, send: Send) -> Reply | None:
        target = probe_target(request)
        if target is not None:
            return handle_probe(self.world, target[0], target[1], request)
        route, params, path_exists = self.router.match(request.method, request.path)
        if route is None:
            if path_exists:
                return Reply(405, error_body("method not allowed", "method_not_allowed"))
            return Reply(404, error_body("not found", "not_found"))
        request.path_params = params
        if not self._authenticated(request):
            return Reply(401, error_body("unauthorized: missing or invalid token", "unauthorized"))
        try:
            await read_request_body(request, receive, self.world.options.max_body_bytes)
            info = RequestInfo(
                op=route.op,
                method=request.method,
                path=request.path,
                app=params.get("app_name"),
                region=self._region_of(request, params),
            )
        except ApiError as exc:
            return Reply(exc.http_status, exc.body, dict(exc.headers))
        decision = self.faults.decide(info)
        delay = self.world.profile.api_latency + decision.delay
        if delay > 0:
            await self.world.clock.sleep(delay)
        if decision.pre is not None:
            if decision.pre == "drop":
                await drop_connection(send, request.inprocess)
                return None
            status, body = fault_response(decision.pre, info, self.world.state.org)
            headers = {"retry-after": "1"} if status == 429 and self.world.options.retry_after else {}
            return Reply(status, body, headers)
        wait = None
        if route.scope != "none":
            wait = self.limiter.check(route.op, self._scope_id(route.scope, params), self.world.now())
        if wait is not None:
            headers = {"retry-after": retry_after_header(wait)} if self.world.options.retry_after else {}
            return Reply(429, error_body("rate limit exceeded", "rate_limited"), headers)
        try:
            check_request_body(request.method, route.template, request.json())
            reply = await route.handler(Call(request, route))
        except ApiError as exc:
            reply = Reply(exc.http_status, exc.body, dict(exc.headers))
        if decision.post is not None and reply.status < 400:
            log.info("fly_emulator.ambiguous_answer", op=route.op, fault=decision.post)
            if decision.post == "ambiguous_drop":
                await drop_connection(send, request.inprocess)
                return None
            status, body = fault_response(decision.post, info, self.world.state.org)
            return Reply(status, body)
        return reply

    def _authenticated(self, request: Request) -> bool:
        expected = self.world.options.token
        if expected is None:
            return True
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() not in ("bearer", "flyv1") or not token:
            return False
        return hmac.compare_digest(token.strip().encode(), expected.encode())

    def _region_of(self, request: Request, params: dict[str, str]) -> str | None:
        machine_id = params.get("machine_id")
        if machine_id is not None:
            machine = self.world.state.machines.get(machine_id)
            return machine.region if machine is not None else None
        if request.method in ("POST", "PUT") and request.body:
            try:
                body: Any = request.json()
            except ApiError:
                return None
            if isinstance(body, dict) and isinstance(body.get("region"), str):
                return str(body["region"])
        return self.world.options.default_region if request.method == "POST" else None

    def _scope_id(self, scope: str, params: dict[str, str]) -> str:
        if scope == "machine":
            return params.get("machine_id", "")
        if scope == "app":
            return params.get("app_name", "")
        if scope == "org":
            return self.world.state.org
        return ""
