"""Tenants as the API addresses them: by the operator's external id.

The id rules and the lookup are :mod:`controlplane.desired`'s (one rule for the CLI and the API,
which also refuses an id shaped like a key or token: a key pasted into a URL must not be looked up,
stored or logged); this module names the field as the API does (``external_id``) and says which
rule was broken. The value is never echoed.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.catalog import Plan, PlanCatalog, UnknownPlanError
from controlplane import desired
from controlplane.db.models import Tenant
from controlplane.errors import BadInput, NotFound, Unavailable
from controlplane.redaction import redact_text

EXTERNAL_ID_PATTERN = desired.EXTERNAL_ID.pattern
EXTERNAL_ID_RULE = "1-255 letters, digits and . _ @ + -, starting with a letter or digit"
FIELD = "external_id"


def check_external_id(value: str) -> str:
    """``value`` if it is a well-formed external id; :class:`BadInput` naming ``external_id``."""
    if redact_text(value) != value:  # said first: the caller may have pasted a key by mistake
        raise BadInput(FIELD, "looks like a key or token; secrets travel only in request bodies")
    try:
        return desired.check_external_id(value, FIELD)
    except BadInput:
        raise BadInput(FIELD, f"must be {EXTERNAL_ID_RULE}") from None


async def find_tenant(session: AsyncSession, external_id: str, *, lock: bool = False) -> Tenant:
    """The tenant with ``external_id`` (its row locked ``FOR UPDATE`` when ``lock``; SQLite's
    writers are already serialised by ``BEGIN IMMEDIATE``). :class:`NotFound` if there is none."""
    check_external_id(external_id)
    try:
        return await desired.find_tenant(session, external_id, for_update=lock)
    except NotFound:
        raise NotFound(FIELD, "no tenant with this external id") from None


def plan_of(catalog: PlanCatalog, plan_id: str) -> Plan:
    """A tenant's plan; a plan missing from the catalog is the operator's configuration problem
    (:class:`Unavailable`), not the caller's."""
    try:
        return catalog.plan(plan_id)
    except UnknownPlanError:
        raise Unavailable("plan catalog", "the tenant's plan is not in the plan catalog in effect") from None


__all__ = ["EXTERNAL_ID_PATTERN", "EXTERNAL_ID_RULE", "check_external_id", "find_tenant", "plan_of"]
