"""Model choice and routing strategy, from the plan's allowed providers and models."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from controlplane.api.context import Actor, Ctx, ExternalId
from controlplane.api.errors import error_responses
from controlplane.api.schemas import ModelBody, ModelOut, ModelSetOut
from controlplane.dashboard.model_choice import ModelChoice, check_model, model_choice
from controlplane.dashboard.tenants import find_tenant, plan_of
from controlplane.db.models import ProviderKey

router = APIRouter(prefix="/v1/tenants/{external_id}/model", tags=["model"])


async def _choice(ctx: Ctx, external_id: str) -> ModelChoice:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        plan = plan_of(ctx.catalog, tenant.plan)
        rows = await session.execute(
            select(ProviderKey.provider, ProviderKey.status).where(ProviderKey.tenant_id == tenant.id)
        )
        keys = {provider: status for provider, status in rows}
        offered = ctx.settings.platform_key_map().keys()
        return model_choice(plan, keys, tenant.model_preference, tenant.routing_strategy, offered)


@router.get(
    "",
    response_model=ModelOut,
    responses=error_responses(401, 404, 422, 503),
    summary="Model choice and options",
)
async def get_model(ctx: Ctx, external_id: ExternalId) -> ModelOut:
    return ModelOut.model_validate(await _choice(ctx, external_id))


@router.put(
    "",
    response_model=ModelSetOut,
    responses=error_responses(401, 404, 413, 422, 503),
    summary="Choose the primary model (or the plan's default) and the routing strategy",
)
async def set_model(ctx: Ctx, external_id: ExternalId, body: ModelBody, actor: Actor) -> ModelSetOut:
    async with ctx.db.read() as session:
        tenant = await find_tenant(session, external_id)
        check_model(plan_of(ctx.catalog, tenant.plan), body.model)
        tenant_id = tenant.id
    changed = await ctx.keys.set_model_preference(
        tenant_id, model=body.model, strategy=body.strategy, actor=actor
    )
    return ModelSetOut(
        **ModelOut.model_validate(await _choice(ctx, external_id)).model_dump(), changed=changed
    )
