"""The key management service: what the dashboard API and the CLI call.

Every change follows the same shape: validate with the provider FIRST (no database transaction is
held across network calls), then ONE transaction that writes the ciphertext and metadata and calls
:func:`controlplane.desired.desired_state_changed` (desired_rev bump + audit row + reconcile mark).
The plaintext key leaves this module only encrypted (vault) or as a request header (validator);
views, audit rows, errors and logs carry provider, last four characters and fingerprint only.

Observations of a stored key (a re-check, or the same key saved again, even when the provider now
refuses it) follow :mod:`controlplane.byok.verdicts`: ``consecutive_failures`` counts definite bad
answers, a refusal marks the key broken only after ``BROKEN_AFTER`` of them, and a transient answer
only records when the key was checked and when it will be checked next — the last definite
verdict, message and key flags (``trial_key``, ``free_tier``, ``unproven`` ...) stay.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from agents_config.inputs import name_or_given
from controlplane.banners import clear_banners
from controlplane.billing.keygrace import USABLE_KEY_STATUSES, end_key_grace
from controlplane.byok.catalog import get_spec
from controlplane.byok.errors import (
    InvalidModelPreference,
    KeyFormatRefused,
    KeyNotFound,
    KeyRefused,
    TenantNotFound,
)
from controlplane.byok.formats import check_format
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.validate import KeyValidator
from controlplane.byok.verdicts import (
    Verdict,
    failures_after_check,
    next_check_delay,
    refusal_message,
    status_after_check,
    status_at_entry,
)
from controlplane.db.models import ProviderKey, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed
from controlplane.enums import BannerKind, KeyStatus, KeyVerdict, RoutingStrategy
from controlplane.redaction import registered_secret
from controlplane.secrets_store import (
    delete_secret,
    get_secret_row,
    provider_secret_name,
    put_secret,
    read_secret,
)
from controlplane.vault import Vault, VaultError

log = structlog.get_logger(__name__)

_MODEL_REF = re.compile(r"^(?P<provider>[a-z0-9-]+)/(?P<model>[A-Za-z0-9][A-Za-z0-9._:/@-]{0,200})$")


@dataclass(frozen=True, slots=True)
class KeyView:
    """What may be shown about a stored key: never the key."""

    provider: str
    display_name: str
    env_var: str
    last4: str
    fingerprint: str
    verdict: KeyVerdict
    status: KeyStatus
    message: str | None
    region: str | None
    last_checked_at: datetime | None
    next_check_at: datetime | None
    consecutive_failures: int
    flags: tuple[str, ...] = field(default=())  # key type flags: trial_key, free_tier, unproven ...

    @classmethod
    def of(cls, row: ProviderKey) -> KeyView:
        spec = get_spec(row.provider)
        return cls(
            provider=row.provider,
            display_name=spec.display_name,
            env_var=spec.env_var,
            last4=row.last4,
            fingerprint=row.fingerprint,
            verdict=row.verdict,
            status=row.status,
            message=row.message,
            region=row.region,
            last_checked_at=row.last_checked_at,
            next_check_at=row.next_check_at,
            consecutive_failures=row.consecutive_failures,
            flags=tuple(row.flags or ()),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "provider": self.provider,
            "display_name": self.display_name,
            "env_var": self.env_var,
            "last4": self.last4,
            "fingerprint": self.fingerprint,
            "verdict": self.verdict.value,
            "status": self.status.value,
            "message": self.message,
            "region": self.region,
            "last_checked_at": self.last_checked_at.isoformat() if self.last_checked_at else None,
            "next_check_at": self.next_check_at.isoformat() if self.next_check_at else None,
            "consecutive_failures": self.consecutive_failures,
            "flags": list(self.flags),
        }


@dataclass(frozen=True, slots=True)
class SaveResult:
    key: KeyView
    verdict: Verdict
    replaced: bool  # a different key for this provider was replaced
    unchanged: bool  # the same key was saved again (no desired-state change)
    format_warnings: tuple[str, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class CheckResult:
    key: KeyView
    verdict: Verdict
    recorded: bool  # False if the key was replaced or deleted while it was being checked


def _audit_view(row: ProviderKey) -> dict[str, Any]:
    return {
        "provider": row.provider,
        "last4": row.last4,
        "fingerprint": row.fingerprint[:16],
        "verdict": row.verdict.value,
        "status": row.status.value,
    }


class KeyService:
    """Save, delete, show and re-check tenants' provider keys; set the model preference."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        validator: KeyValidator,
        *,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._db = db
        self._vault = vault
        self._validator = validator
        self._clock = clock

    # -- save --------------------------------------------------------------------------------
    async def save(
        self, tenant_id: str, provider: str, key: str | ProviderKeyValue, *, actor: str
    ) -> SaveResult:
        """Check, validate, encrypt and store ``key`` as ``tenant_id``'s key for ``provider``.

        Raises :class:`KeyFormatRefused` (shape), :class:`KeyRefused` (invalid_key,
        revoked_or_blocked, permission: nothing stored — but if it is the key already stored, the
        refusal is recorded on it first, counted like a re-check), :class:`TenantNotFound`,
        :class:`UnknownProvider`.
        """
        spec = get_spec(provider)
        value = key if isinstance(key, ProviderKeyValue) else ProviderKeyValue(key)
        with registered_secret(value.reveal()):  # redacted from every log line while in memory
            return await self._save(tenant_id, spec.id, value, actor=actor)

    async def _save(
        self, tenant_id: str, provider: str, value: ProviderKeyValue, *, actor: str
    ) -> SaveResult:
        spec = get_spec(provider)
        async with self._db.transaction() as session:  # before calling the provider: cheap refusal
            if await session.get(Tenant, tenant_id) is None:
                raise TenantNotFound(f"no tenant {name_or_given(tenant_id)}")
        shape = check_format(spec.id, value)
        if not shape.accepted:
            raise KeyFormatRefused(spec.id, shape.reason or "the key was refused")

        verdict = await self._validator.validate(spec.id, value)  # network: before the transaction
        if verdict.refused:
            recorded = await self._record_refusal_of_stored_key(
                tenant_id, spec.id, value, verdict, actor=actor
            )
            log.info(
                "byok.key_refused",
                tenant_id=tenant_id,
                provider=spec.id,
                verdict=verdict.verdict.value,
                stored_key_observed=recorded,
                actor=actor,
            )
            raise KeyRefused(verdict)

        plaintext = value.reveal()
        fingerprint = self._vault.fingerprint(plaintext)
        last4 = self._vault.last4(plaintext)
        status = status_at_entry(verdict.verdict)
        now = self._clock()
        name = provider_secret_name(spec.id)

        async with self._db.transaction() as session:
            tenant = await _lock_tenant(session, tenant_id)
            row = await _find(session, tenant_id, spec.id)
            if row is not None and await self._same_key(session, row, fingerprint, plaintext):
                row.fingerprint = fingerprint  # refreshed if the fingerprint key changed
                await self._record(
                    session,
                    tenant,
                    row,
                    verdict,
                    now,
                    actor=actor,
                    reason=f"{spec.id} key re-saved: {verdict.verdict.value}",
                )
                view = KeyView.of(row)
                log.info(
                    "byok.key_saved",
                    tenant_id=tenant_id,
                    provider=spec.id,
                    unchanged=True,
                    verdict=verdict.verdict.value,
                    actor=actor,
                )
                return SaveResult(
                    view, verdict, replaced=False, unchanged=True, format_warnings=shape.warnings
                )

            secret = await put_secret(
                session, self._vault, tenant_id=tenant_id, name=name, plaintext=plaintext
            )
            before = _audit_view(row) if row is not None else None
            if row is None:
                row = ProviderKey(tenant_id=tenant_id, provider=spec.id, secret_id=secret.id)
                session.add(row)
            row.secret_id = secret.id
            row.last4 = last4
            row.fingerprint = fingerprint
            self._first_observation(row, verdict, status, now)
            await session.flush()
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="byok.key_replaced" if before is not None else "byok.key_saved",
                reason=f"{spec.id} key {verdict.verdict.value}",
                before=before,
                after=_audit_view(row),
            )
            # A new key starts from zero: what was seen of the old one (banners, bad observations
            # counted toward them) is cleared; the health sweep judges the new key afresh.
            await clear_banners(
                session,
                tenant_id,
                (BannerKind.key_invalid, BannerKind.key_no_credit),
                subject=spec.id,
                now=now,
                actor=actor,
                reason=f"{spec.id} key replaced",
            )
            if row.status in USABLE_KEY_STATUSES:  # a migrated user's key grace ends with their own key
                await end_key_grace(session, tenant, now, actor=actor, reason=f"{spec.id} key saved")
            view = KeyView.of(row)
        log.info(
            "byok.key_saved",
            tenant_id=tenant_id,
            provider=spec.id,
            unchanged=False,
            replaced=before is not None,
            verdict=verdict.verdict.value,
            actor=actor,
        )
        return SaveResult(
            view, verdict, replaced=before is not None, unchanged=False, format_warnings=shape.warnings
        )

    async def _same_key(
        self, session: AsyncSession, row: ProviderKey, fingerprint: str, plaintext: str
    ) -> bool:
        if hmac.compare_digest(row.fingerprint, fingerprint):
            return True
        # The fingerprint key may have changed (derived from a rotated vault key): decrypt to compare.
        try:
            stored = await read_secret(
                session, self._vault, tenant_id=row.tenant_id, name=provider_secret_name(row.provider)
            )
        except VaultError:
            return False
        return stored is not None and hmac.compare_digest(stored.encode(), plaintext.encode())

    async def _record_refusal_of_stored_key(
        self, tenant_id: str, provider: str, value: ProviderKeyValue, verdict: Verdict, *, actor: str
    ) -> bool:
        """The key being saved was refused: if it is the key already stored, that is an
        observation of the stored key (counted like a re-check). ``True`` if one was recorded."""
        plaintext = value.reveal()
        fingerprint = self._vault.fingerprint(plaintext)
        now = self._clock()
        async with self._db.transaction() as session:
            tenant = await _lock_tenant(session, tenant_id)
            row = await _find(session, tenant_id, provider)
            if row is None or not await self._same_key(session, row, fingerprint, plaintext):
                return False
            row.fingerprint = fingerprint
            await self._record(
                session,
                tenant,
                row,
                verdict,
                now,
                actor=actor,
                reason=f"{provider} key re-saved: {verdict.verdict.value}",
            )
        return True

    def _first_observation(
        self, row: ProviderKey, verdict: Verdict, status: KeyStatus, now: datetime
    ) -> None:
        """A newly saved key: everything comes from this check."""
        row.verdict = verdict.verdict
        row.status = status
        row.message = verdict.message
        row.flags = list(verdict.flags) or None
        row.last_checked_at = now
        row.next_check_at = now + next_check_delay(verdict, status)
        row.consecutive_failures = 0
        if verdict.region is not None:
            row.region = verdict.region
        row.updated_at = now

    async def _record(
        self,
        session: AsyncSession,
        tenant: Tenant,
        row: ProviderKey,
        verdict: Verdict,
        now: datetime,
        *,
        actor: str,
        reason: str,
    ) -> None:
        """Record one observation of a stored key; a change of its status changes which keys are
        usable (routing), so it is a desired-state change (rev bump, audit row, reconcile mark)."""
        before = _audit_view(row)
        old_status = row.status
        self._observe(row, verdict, now)
        await session.flush()
        if row.status is not old_status:
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="byok.key_status_changed",
                reason=reason,
                before=before,
                after=_audit_view(row),
            )

    def _observe(self, row: ProviderKey, verdict: Verdict, now: datetime) -> None:
        """One more observation of a stored key (policy: :mod:`controlplane.byok.verdicts`)."""
        row.last_checked_at = now
        row.updated_at = now
        if verdict.transient:  # keeps the last definite verdict, message, flags, status, failures
            row.next_check_at = now + next_check_delay(verdict, row.status)
            return
        failures = failures_after_check(verdict.verdict, row.consecutive_failures)
        status = status_after_check(verdict.verdict, row.status, failures)
        message = verdict.message
        if verdict.refused and status is not KeyStatus.broken:
            message = refusal_message(verdict, get_spec(row.provider).display_name, failures)
        row.verdict = verdict.verdict
        row.status = status
        row.message = message
        row.flags = list(verdict.flags) or None
        row.consecutive_failures = failures
        row.next_check_at = now + next_check_delay(verdict, status)
        if verdict.region is not None:
            row.region = verdict.region

    # -- delete ------------------------------------------------------------------------------
    async def delete(self, tenant_id: str, provider: str, *, actor: str) -> bool:
        """Delete the key (metadata row and ciphertext); the agent loses it at the next
        reconcile. ``False`` if there was none (no desired-state change)."""
        spec = get_spec(provider)
        async with self._db.transaction() as session:
            tenant = await _lock_tenant(session, tenant_id)
            row = await _find(session, tenant_id, spec.id)
            secret_row = await get_secret_row(
                session, tenant_id=tenant_id, name=provider_secret_name(spec.id)
            )
            if row is None and secret_row is None:
                return False
            before = _audit_view(row) if row is not None else {"provider": spec.id}
            if row is not None:
                await session.delete(row)
                await session.flush()
            await delete_secret(session, tenant_id=tenant_id, name=provider_secret_name(spec.id))
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="byok.key_deleted",
                reason=f"{spec.id} key deleted",
                before=before,
                after={"provider": spec.id, "deleted": True},
            )
        log.info("byok.key_deleted", tenant_id=tenant_id, provider=spec.id, actor=actor)
        return True

    # -- status ------------------------------------------------------------------------------
    async def status(self, tenant_id: str) -> list[KeyView]:
        """Every key of the tenant (provider, last4, fingerprint, verdict, when checked)."""
        async with self._db.read() as session:
            rows = (
                await session.scalars(
                    select(ProviderKey)
                    .where(ProviderKey.tenant_id == tenant_id)
                    .order_by(ProviderKey.provider)
                )
            ).all()
            return [KeyView.of(r) for r in rows]

    async def key_status(self, tenant_id: str, provider: str) -> KeyView | None:
        spec = get_spec(provider)
        async with self._db.read() as session:
            row = await _find(session, tenant_id, spec.id)
            return KeyView.of(row) if row is not None else None

    # -- re-check ----------------------------------------------------------------------------
    async def test_now(self, tenant_id: str, provider: str, *, actor: str) -> CheckResult:
        """Re-validate the stored key now and record the observation (verdict, status,
        consecutive_failures, flags). Transient verdicts change only the check times; a refusal
        marks the key broken only after ``BROKEN_AFTER`` bad checks in a row."""
        spec = get_spec(provider)
        async with self._db.read() as session:
            row = await _find(session, tenant_id, spec.id)
            plaintext = await read_secret(
                session, self._vault, tenant_id=tenant_id, name=provider_secret_name(spec.id)
            )
            if row is None or plaintext is None:
                raise KeyNotFound(f"tenant has no {spec.display_name} key")
            fingerprint, region = row.fingerprint, row.region
        value = ProviderKeyValue(plaintext)
        with registered_secret(plaintext):
            del plaintext
            verdict = await self._validator.validate(spec.id, value, region=region)  # no transaction held
        now = self._clock()
        async with self._db.transaction() as session:
            tenant = await _lock_tenant(session, tenant_id)
            row = await _find(session, tenant_id, spec.id)
            if row is None:
                raise KeyNotFound(f"tenant has no {spec.display_name} key")
            if row.fingerprint != fingerprint:  # replaced while we were checking: keep the new one
                return CheckResult(KeyView.of(row), verdict, recorded=False)
            await self._record(
                session,
                tenant,
                row,
                verdict,
                now,
                actor=actor,
                reason=f"{spec.id} key check: {verdict.verdict.value}",
            )
            view = KeyView.of(row)
        log.info(
            "byok.key_checked",
            tenant_id=tenant_id,
            provider=spec.id,
            verdict=verdict.verdict.value,
            status=view.status.value,
            consecutive_failures=view.consecutive_failures,
            actor=actor,
        )
        return CheckResult(view, verdict, recorded=True)

    async def due_for_check(self, *, now: datetime | None = None, limit: int = 100) -> list[tuple[str, str]]:
        """``(tenant_id, provider)`` of keys whose ``next_check_at`` has passed (for the poller)."""
        now = now or self._clock()
        async with self._db.read() as session:
            rows = await session.execute(
                select(ProviderKey.tenant_id, ProviderKey.provider)
                .where(ProviderKey.next_check_at <= now)
                .order_by(ProviderKey.next_check_at)
                .limit(limit)
            )
            return [(t, p) for t, p in rows.all()]

    # -- model preference --------------------------------------------------------------------
    async def set_model_preference(
        self,
        tenant_id: str,
        *,
        model: str | None,
        strategy: RoutingStrategy | str,
        actor: str,
    ) -> bool:
        """Set the tenant's preferred primary model (``<provider>/<model>``, or ``None`` for the
        plan's default) and routing strategy. ``False`` if nothing changed."""
        try:
            strategy = RoutingStrategy(strategy)
        except ValueError:
            known = ", ".join(s.value for s in RoutingStrategy)
            raise InvalidModelPreference(
                f"strategy: unknown strategy {name_or_given(strategy)}; known: {known}"
            ) from None
        if model is not None:
            model = model.strip()
            match = _MODEL_REF.match(model)
            if match is None:
                raise InvalidModelPreference(
                    "model: expected '<provider>/<model>', e.g. 'anthropic/claude-sonnet-4-5'"
                )
            get_spec(match["provider"])  # UnknownProvider names the known ids
        async with self._db.transaction() as session:
            tenant = await _lock_tenant(session, tenant_id)
            before = {
                "model_preference": tenant.model_preference,
                "routing_strategy": tenant.routing_strategy.value,
            }
            if tenant.model_preference == model and tenant.routing_strategy is strategy:
                return False
            tenant.model_preference = model
            tenant.routing_strategy = strategy
            await desired_state_changed(
                session,
                tenant,
                actor=actor,
                action="byok.model_preference",
                before=before,
                after={"model_preference": model, "routing_strategy": strategy.value},
            )
        return True


async def _lock_tenant(session: AsyncSession, tenant_id: str) -> Tenant:
    tenant = await session.scalar(select(Tenant).where(Tenant.id == tenant_id).with_for_update())
    if tenant is None:
        raise TenantNotFound(f"no tenant {name_or_given(tenant_id)}")
    return tenant


async def _find(session: AsyncSession, tenant_id: str, provider: str) -> ProviderKey | None:
    return await session.scalar(
        select(ProviderKey).where(ProviderKey.tenant_id == tenant_id, ProviderKey.provider == provider)
    )


__all__ = ["CheckResult", "KeyService", "KeyView", "SaveResult"]
