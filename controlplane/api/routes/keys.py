"""Provider keys: save (validated first), test without saving, re-check, delete, status.

The key travels only in a request body (never a URL, a query string or a log line); responses carry
provider, last four characters, fingerprint, verdict and flags, never the key.
"""

from __future__ import annotations

from fastapi import APIRouter

from controlplane.api.context import Actor, Ctx, ExternalId
from controlplane.api.errors import error_responses
from controlplane.api.schemas import (
    DeletedOut,
    KeyBody,
    KeyRecheckOut,
    KeySaveOut,
    KeysOut,
    KeyStatusOut,
    KeyTestOut,
    ProviderId,
    VerdictOut,
    WouldStore,
)
from controlplane.byok.errors import KeyFormatRefused
from controlplane.byok.formats import check_format
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.verdicts import REFUSED, Verdict, status_at_entry
from controlplane.enums import KeyStatus
from controlplane.errors import NotFound
from controlplane.redaction import registered_secret

router = APIRouter(prefix="/v1/tenants/{external_id}/keys", tags=["keys"])
_ERRORS = error_responses(401, 404, 413, 422, 503)


_STORED_AS: dict[KeyStatus, WouldStore] = {
    KeyStatus.usable: "usable",
    KeyStatus.warning: "warning",
    KeyStatus.unverified: "unverified",
}


def _would_store(verdict: Verdict) -> WouldStore:
    if verdict.verdict in REFUSED:
        return "refused"
    return _STORED_AS.get(status_at_entry(verdict.verdict), "unverified")


@router.get("", response_model=KeysOut, responses=_ERRORS, summary="Every stored key (never the key)")
async def list_keys(ctx: Ctx, external_id: ExternalId) -> KeysOut:
    tenant_id = await ctx.tenant_id(external_id)
    return KeysOut(keys=[KeyStatusOut.model_validate(v) for v in await ctx.keys.status(tenant_id)])


@router.get("/{provider}", response_model=KeyStatusOut, responses=_ERRORS, summary="One stored key's status")
async def get_key(ctx: Ctx, external_id: ExternalId, provider: ProviderId) -> KeyStatusOut:
    tenant_id = await ctx.tenant_id(external_id)
    view = await ctx.keys.key_status(tenant_id, provider)
    if view is None:
        raise NotFound("provider", f"the tenant has no {provider} key")
    return KeyStatusOut.model_validate(view)


@router.put(
    "/{provider}",
    response_model=KeySaveOut,
    responses=_ERRORS,
    summary="Save a key: checked with the provider first, then encrypted and stored",
    description="Refused keys (invalid, revoked, without permission) answer 422 `key_refused` with "
    "the provider's verdict and a sentence; no credit / spend limit are stored with a warning; "
    "transient answers store the key as unverified (re-checked later).",
)
async def save_key(
    ctx: Ctx, external_id: ExternalId, provider: ProviderId, body: KeyBody, actor: Actor
) -> KeySaveOut:
    plaintext = body.key.get_secret_value()
    with registered_secret(plaintext):
        tenant_id = await ctx.tenant_id(external_id)
        result = await ctx.keys.save(tenant_id, provider, ProviderKeyValue(plaintext), actor=actor)
    return KeySaveOut(
        key=KeyStatusOut.model_validate(result.key),
        verdict=VerdictOut.model_validate(result.verdict),
        outcome=result.key.status,
        replaced=result.replaced,
        unchanged=result.unchanged,
        format_warnings=list(result.format_warnings),
    )


@router.post(
    "/{provider}/test",
    response_model=KeyTestOut,
    responses=_ERRORS,
    summary="Check a key with the provider without storing it",
)
async def test_key(ctx: Ctx, external_id: ExternalId, provider: ProviderId, body: KeyBody) -> KeyTestOut:
    value = ProviderKeyValue(body.key.get_secret_value())
    with registered_secret(value.reveal()):
        await ctx.tenant_id(external_id)
        shape = check_format(provider, value)
        if not shape.accepted:
            raise KeyFormatRefused(provider, shape.reason or "the key was refused")
        verdict = await ctx.validator.validate(provider, value)
    return KeyTestOut(
        verdict=VerdictOut.model_validate(verdict),
        would_store=_would_store(verdict),
        format_warnings=list(shape.warnings),
        last4=value.last4,
    )


@router.post(
    "/{provider}/recheck",
    response_model=KeyRecheckOut,
    responses=_ERRORS,
    summary="Check the stored key again now",
)
async def recheck_key(ctx: Ctx, external_id: ExternalId, provider: ProviderId, actor: Actor) -> KeyRecheckOut:
    tenant_id = await ctx.tenant_id(external_id)
    result = await ctx.keys.test_now(tenant_id, provider, actor=actor)
    return KeyRecheckOut(
        key=KeyStatusOut.model_validate(result.key),
        verdict=VerdictOut.model_validate(result.verdict),
        recorded=result.recorded,
    )


@router.delete(
    "/{provider}",
    response_model=DeletedOut,
    responses=_ERRORS,
    summary="Delete a key: gone from the database now, from the agent at the next reconcile",
)
async def delete_key(ctx: Ctx, external_id: ExternalId, provider: ProviderId, actor: Actor) -> DeletedOut:
    tenant_id = await ctx.tenant_id(external_id)
    return DeletedOut(deleted=await ctx.keys.delete(tenant_id, provider, actor=actor))
