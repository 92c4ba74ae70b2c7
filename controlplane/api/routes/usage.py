"""AI usage (tokens and cost by provider and model per day) and service caps."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Annotated

from fastapi import APIRouter, Path, Query

from controlplane.api.context import Ctx, ExternalId
from controlplane.api.errors import error_responses
from controlplane.api.schemas import (
    CapOut,
    CapReportBody,
    CapReportOut,
    CapsOut,
    UsageOut,
    UsageRowOut,
    UsageTotalOut,
)
from controlplane.dashboard.caps import MAX_AMOUNT
from controlplane.dashboard.tenants import find_tenant
from controlplane.dashboard.usage import micro_to_usd, usage_between
from controlplane.enums import UsageService
from controlplane.errors import BadInput

router = APIRouter(prefix="/v1/tenants/{external_id}", tags=["usage"])
DEFAULT_DAYS = 30
MAX_DAYS = 366


@router.get(
    "/usage",
    response_model=UsageOut,
    responses=error_responses(401, 404, 422, 503),
    summary="Tokens and cost by provider and model per UTC day, as the agent counted them",
)
async def get_usage(
    ctx: Ctx,
    external_id: ExternalId,
    since: Annotated[date | None, Query(description="First UTC day (default: 29 days before until).")] = None,
    until: Annotated[date | None, Query(description="Last UTC day, inclusive (default: today).")] = None,
) -> UsageOut:
    last = until or ctx.clock().date()
    first = since or last - timedelta(days=DEFAULT_DAYS - 1)
    if first > last:
        raise BadInput("since", "must not be after until")
    if (last - first).days >= MAX_DAYS:
        raise BadInput("since", f"the range may cover at most {MAX_DAYS} days")
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        rows = await usage_between(session, tenant.id, first, last)
    totals: dict[tuple[str, str], tuple[int, int | None]] = {}
    days = []
    for day, row in rows:
        days.append(
            UsageRowOut(
                day=day,
                provider=row.provider,
                model=row.model,
                input_tokens=row.input_tokens,
                output_tokens=row.output_tokens,
                cache_read_tokens=row.cache_read_tokens,
                cache_write_tokens=row.cache_write_tokens,
                total_tokens=row.total_tokens,
                cost_usd=micro_to_usd(row.cost_microusd) if row.cost_microusd is not None else None,
            )
        )
        seen_tokens, seen_cost = totals.get((row.provider, row.model), (0, None))
        cost = seen_cost if row.cost_microusd is None else (seen_cost or 0) + row.cost_microusd
        totals[(row.provider, row.model)] = (seen_tokens + row.total_tokens, cost)
    return UsageOut(
        since=first,
        until=last,
        days=days,
        totals=[
            UsageTotalOut(
                provider=provider,
                model=model,
                total_tokens=tokens,
                cost_usd=micro_to_usd(cost) if cost is not None else None,
            )
            for (provider, model), (tokens, cost) in sorted(totals.items())
        ],
    )


Service = Annotated[UsageService, Path(description="The metered service.")]


@router.get(
    "/caps",
    response_model=CapsOut,
    responses=error_responses(401, 404, 422, 503),
    summary="This month's allowance of every metered service",
    tags=["caps"],
)
async def get_caps(ctx: Ctx, external_id: ExternalId) -> CapsOut:
    states = await ctx.caps.overview(external_id)
    return CapsOut(period=states[0].period, caps=[CapOut.model_validate(s) for s in states])


@router.get(
    "/caps/{service}",
    response_model=CapOut,
    responses=error_responses(401, 404, 422, 503),
    summary="May the tenant use this much more of a service now? (one indexed read)",
    tags=["caps"],
)
async def check_cap(
    ctx: Ctx,
    external_id: ExternalId,
    service: Service,
    amount: Annotated[int, Query(ge=1, le=MAX_AMOUNT, description="How much the proxy is about to use.")] = 1,
) -> CapOut:
    return CapOut.model_validate(await ctx.caps.check(external_id, service, amount))


@router.post(
    "/caps/{service}/reports",
    response_model=CapReportOut,
    responses=error_responses(401, 404, 409, 413, 422, 503),
    summary="Report usage of a service (idempotent per report id)",
    tags=["caps"],
)
async def report_usage(
    ctx: Ctx, external_id: ExternalId, service: Service, body: CapReportBody
) -> CapReportOut:
    result = await ctx.caps.report(
        external_id, service, report_id=body.report_id, amount=body.amount, occurred_at=body.occurred_at
    )
    return CapReportOut(counted=result.counted, cap=CapOut.model_validate(result.state))
