"""Tenants as the operator addresses them: by external id (the dashboard's own user id).

An external id is URL-safe by construction; anything else is refused naming the field and never
echoed, and a value shaped like a key or token is refused too (a key pasted into a URL must not be
looked up, stored or logged).
"""

from __future__ import annotations

import re

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import Plan, PlanCatalog, UnknownPlanError
from controlplane.db.models import Tenant
from controlplane.errors import BadInput, NotFound, Unavailable
from controlplane.redaction import redact_text

EXTERNAL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._~@+-]{0,254}$"
EXTERNAL_ID_RULE = (
    "must be 1-255 characters: letters, digits and . _ ~ @ + - (starting with a letter or digit)"
)
_EXTERNAL_ID = re.compile(EXTERNAL_ID_PATTERN)


def check_external_id(value: str, *, field: str = "external_id") -> str:
    """``value`` if it is a well-formed external id; :class:`BadInput` naming ``field`` otherwise."""
    if not _EXTERNAL_ID.match(value):
        raise BadInput(field, EXTERNAL_ID_RULE)
    if redact_text(value) != value:
        raise BadInput(field, "looks like a key or token; secrets travel only in request bodies")
    return value


async def find_tenant(session: AsyncSession, external_id: str, *, lock: bool = False) -> Tenant:
    """The tenant with ``external_id`` (its row locked ``FOR UPDATE`` when ``lock``; SQLite's
    writers are already serialised by ``BEGIN IMMEDIATE``). :class:`NotFound` if there is none."""
    stmt = select(Tenant).where(Tenant.external_id == external_id)
    if lock:
        stmt = stmt.with_for_update()
    tenant = await session.scalar(stmt)
    if tenant is None:
        raise NotFound("external_id", "no tenant with this external id")
    return tenant


def plan_of(catalog: PlanCatalog, plan_id: str) -> Plan:
    """A tenant's plan; a plan missing from the catalog is the operator's configuration problem
    (:class:`Unavailable`), not the caller's."""
    try:
        return catalog.plan(plan_id)
    except UnknownPlanError:
        raise Unavailable("plan catalog", "the tenant's plan is not in the plan catalog in effect") from None


__all__ = ["EXTERNAL_ID_PATTERN", "EXTERNAL_ID_RULE", "check_external_id", "find_tenant", "plan_of"]
