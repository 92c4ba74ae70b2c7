"""Open routes: liveness, readiness (the database answers), Prometheus metrics."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from controlplane.api.context import Ctx
from controlplane.api.errors import error_responses
from controlplane.api.schemas import HealthOut, ReadyOut
from controlplane.api.telemetry import ApiMetrics
from controlplane.errors import Unavailable

router = APIRouter(tags=["health"])
READY_TIMEOUT_S = 2.0


@router.get("/healthz", response_model=HealthOut, summary="The process answers")
async def healthz() -> HealthOut:
    return HealthOut(status="ok")


@router.get(
    "/readyz", response_model=ReadyOut, responses=error_responses(503), summary="The database is reachable"
)
async def readyz(ctx: Ctx) -> ReadyOut:
    try:
        async with asyncio.timeout(READY_TIMEOUT_S), ctx.db.read() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any failure to answer (refused, timed out, broken) means "not ready"
        raise Unavailable("database", f"not reachable ({type(exc).__name__})") from None
    return ReadyOut(status="ready", database="ok")


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {CONTENT_TYPE_LATEST.split(";")[0]: {"schema": {"type": "string"}}}}},
    summary="Prometheus metrics",
)
async def metrics(request: Request) -> Response:
    registry: ApiMetrics = request.app.state.metrics
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)
