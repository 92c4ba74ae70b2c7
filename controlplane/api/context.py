"""What every route needs, built once per app: the services, and the request's tenant and actor.

Routes take ``ctx: Ctx`` (the :class:`ApiContext`), ``external_id: ExternalId`` (validated: URL-safe,
not shaped like a secret) and ``actor: Actor`` (``api``, or ``api:<user>`` when the dashboard sends
``X-Dashboard-User``, written to the audit log). The dependencies are coroutines: FastAPI would run
plain functions in its thread pool, a thread hop per request for nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

from fastapi import Depends, Header, Path, Request
from sqlalchemy import select

from agents_config.catalog import PlanCatalog
from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.dashboard.caps import ServiceCaps
from controlplane.dashboard.channels import ChannelService
from controlplane.dashboard.tenants import EXTERNAL_ID_PATTERN, EXTERNAL_ID_RULE, check_external_id
from controlplane.db.models import Tenant
from controlplane.db.session import Database
from controlplane.errors import BadInput, NotFound
from controlplane.redaction import redact_text
from controlplane.settings import Settings
from controlplane.vault import Vault

USER_PATTERN = r"^[A-Za-z0-9._@-]{1,100}$"


@dataclass(frozen=True, slots=True)
class ApiContext:
    settings: Settings
    db: Database
    catalog: PlanCatalog
    vault: Vault
    validator: KeyValidator
    keys: KeyService
    channels: ChannelService
    caps: ServiceCaps
    clock: Callable[[], datetime]

    async def tenant_id(self, external_id: str) -> str:
        """The internal id of the tenant the operator calls ``external_id``."""
        async with self.db.read() as session:
            found = await session.scalar(select(Tenant.id).where(Tenant.external_id == external_id))
        if found is None:
            raise NotFound("external_id", "no tenant with this external id")
        return found


async def get_context(request: Request) -> ApiContext:
    ctx: ApiContext = request.app.state.ctx
    return ctx


async def _external_id(
    external_id: Annotated[
        str,
        Path(
            min_length=1,
            max_length=255,
            pattern=EXTERNAL_ID_PATTERN,
            description=f"The operator's id of the tenant: {EXTERNAL_ID_RULE}.",
        ),
    ],
) -> str:
    return check_external_id(external_id)


async def _actor(
    x_dashboard_user: Annotated[
        str | None,
        Header(
            pattern=USER_PATTERN,
            description="The dashboard's user id of whoever asked (recorded in the audit log).",
        ),
    ] = None,
) -> str:
    if x_dashboard_user and redact_text(x_dashboard_user) != x_dashboard_user:
        raise BadInput("x-dashboard-user", "looks like a key or token; send the dashboard's user id")
    return f"api:{x_dashboard_user}" if x_dashboard_user else "api"


Ctx = Annotated[ApiContext, Depends(get_context)]
ExternalId = Annotated[str, Depends(_external_id)]
Actor = Annotated[str, Depends(_actor)]

__all__ = ["USER_PATTERN", "Actor", "ApiContext", "Ctx", "ExternalId", "get_context"]
