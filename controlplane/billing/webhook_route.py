"""The Stripe webhook as a FastAPI ``APIRouter``, mounted by the API app
(``controlplane/api/app.py: mounted_routers``): ``webhook_router()`` serves the ingestor the app keeps
in ``app.state.stripe_webhook`` (``None`` when ``CP_STRIPE_WEBHOOK_SECRET`` is not set: 503
``not_configured``); ``webhook_router(ingestor)`` serves that one (tests, other apps).

``POST /webhooks/stripe``: the raw body (at most 1 MiB, checked before reading all of it) and the
``Stripe-Signature`` header go to :meth:`WebhookIngestor.ingest`. Answers: 200 ``{"received": true,
"duplicate": ...}`` once the event's transaction committed; 400 for a malformed, unsigned, forged or
stale delivery (nothing stored); 413 for an oversized body; 503 if the database is unavailable (Stripe
retries). Errors use the API's one shape ``{"error": {"code", "message", "field"}}``. The route is
authenticated by the signature, not by a service token, and not part of the dashboard's published
OpenAPI contract (Stripe calls it, not the dashboard; ``include_in_schema=True`` to list it).
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, OperationalError

from controlplane.billing.webhook import WebhookIngestor, WebhookRejected

MAX_BODY_BYTES = 1024 * 1024
PATH = "/webhooks/stripe"


class WebhookAck(BaseModel):
    received: bool
    duplicate: bool
    event_id: str


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


def _error(status: int, code: str, message: str, field: str | None) -> JSONResponse:
    return JSONResponse(
        status_code=status, content={"error": {"code": code, "message": message, "field": field}}
    )


async def _read_limited(request: Request, limit: int) -> bytes | None:
    """The body, or ``None`` once it exceeds ``limit`` bytes (stops reading there)."""
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_router(
    ingestor: WebhookIngestor | None = None,
    *,
    path: str = PATH,
    max_body: int = MAX_BODY_BYTES,
    include_in_schema: bool = False,
) -> APIRouter:
    """The router serving Stripe's deliveries at ``path`` (see the module docstring)."""
    router = APIRouter(tags=["billing"])

    @router.post(
        path,
        response_model=WebhookAck,
        include_in_schema=include_in_schema,
        summary="Stripe webhook endpoint (signed by Stripe; no service token)",
        responses={
            400: {"model": ErrorBody, "description": "malformed, unsigned, forged or stale delivery"},
            413: {"model": ErrorBody, "description": "body larger than 1 MiB"},
            503: {
                "model": ErrorBody,
                "description": "database unavailable or webhook not configured; Stripe retries",
            },
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"type": "object", "description": "a Stripe event"}}
                },
            }
        },
    )
    async def stripe_webhook(request: Request) -> JSONResponse:
        active = ingestor if ingestor is not None else getattr(request.app.state, "stripe_webhook", None)
        if active is None:
            return _error(
                503,
                "not_configured",
                "CP_STRIPE_WEBHOOK_SECRET: not set; deliveries cannot be verified",
                None,
            )
        body = await _read_limited(request, max_body)
        if body is None:
            return _error(413, "too_large", f"body: larger than {max_body} bytes", "body")
        try:
            result = await active.ingest(body, request.headers.get("stripe-signature"))
        except WebhookRejected as exc:
            field = "Stripe-Signature" if exc.code == "bad_signature" else "body"
            return _error(400, exc.code, f"{field}: {exc.message}", field)
        except (OperationalError, DBAPIError, OSError):
            return _error(503, "unavailable", "database: unavailable, retry later", None)
        return JSONResponse(
            status_code=200,
            content={"received": True, "duplicate": result.duplicate, "event_id": result.event_id},
        )

    return router


__all__ = ["MAX_BODY_BYTES", "PATH", "WebhookAck", "webhook_router"]
