"""The key service on SQLite AND PostgreSQL (the ``db`` fixture runs each test on both)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from controlplane.byok.errors import (
    InvalidModelPreference,
    KeyFormatRefused,
    KeyNotFound,
    KeyRefused,
    TenantNotFound,
    UnknownProvider,
)
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.service import KeyService
from controlplane.byok.verdicts import BROKEN_AFTER, UNPROVEN_MESSAGE, Verdict, message_for
from controlplane.db.models import (
    AuditLog,
    KeyStatus,
    ProviderKey,
    ReconcileItem,
    RoutingStrategy,
    Secret,
    Tenant,
)
from controlplane.db.models import (
    KeyVerdict as V,
)
from controlplane.db.session import Database
from controlplane.vault import Vault
from tests.support.byok_fakes import valid_key


class FakeValidator:
    """Answers with queued verdicts (a bare verdict or a whole :class:`Verdict`); records that no
    DB connection is checked out meanwhile."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.answers: list[V | Verdict] = []
        self.calls: list[tuple[str, str | None]] = []
        self.connections_during_validation: list[int] = []
        self.hook: Callable[[], Awaitable[None]] | None = None
        self.retry_after: float | None = None

    async def validate(self, provider: str, key: ProviderKeyValue, *, region: str | None = None) -> Verdict:
        assert isinstance(key, ProviderKeyValue)
        self.calls.append((provider, region))
        self.connections_during_validation.append(self.db.engine.sync_engine.pool.checkedout())
        if self.hook is not None:
            hook, self.hook = self.hook, None
            await hook()
        verdict = self.answers.pop(0) if self.answers else V.ok
        if isinstance(verdict, Verdict):
            return verdict
        return Verdict(
            provider=provider,
            verdict=verdict,
            message=message_for(verdict, provider),
            retry_after=self.retry_after,
        )


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> datetime:
        self.now += timedelta(**delta)
        return self.now


@pytest.fixture
def validator(db: Database) -> FakeValidator:
    return FakeValidator(db)


@pytest.fixture
def service(db: Database, vault: Vault, validator: FakeValidator) -> KeyService:
    return KeyService(db, vault, validator)  # type: ignore[arg-type]


async def _tenant(db: Database, tenant_id: str) -> Tenant:
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        return tenant


async def _rows(db: Database, tenant_id: str) -> tuple[list[ProviderKey], list[Secret]]:
    async with db.transaction() as s:
        keys = (await s.scalars(select(ProviderKey).where(ProviderKey.tenant_id == tenant_id))).all()
        secrets = (await s.scalars(select(Secret).where(Secret.tenant_id == tenant_id))).all()
        return list(keys), list(secrets)


async def _audit_text(db: Database) -> str:
    async with db.transaction() as s:
        rows = (await s.scalars(select(AuditLog))).all()
        return json.dumps([[r.actor, r.action, r.reason, r.before, r.after] for r in rows])


async def test_save_encrypts_stores_metadata_and_changes_desired_state(
    db: Database, vault: Vault, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    key = valid_key("anthropic")
    result = await service.save(tenant.id, "anthropic", key, actor="api")

    assert result.verdict.verdict is V.ok and not result.unchanged and not result.replaced
    assert result.key.status is KeyStatus.usable and result.key.last4 == key[-4:]
    assert result.key.fingerprint == vault.fingerprint(key) and len(result.key.fingerprint) == 64
    assert validator.connections_during_validation == [0]  # no transaction held across the call

    keys, secrets = await _rows(db, tenant.id)
    assert len(keys) == 1 and len(secrets) == 1
    assert keys[0].secret_id == secrets[0].id and secrets[0].name == "provider:anthropic"
    assert key not in secrets[0].value
    assert vault.decrypt(secrets[0].value, tenant_id=tenant.id, name="provider:anthropic") == key
    assert keys[0].next_check_at is not None and keys[0].last_checked_at is not None

    assert (await _tenant(db, tenant.id)).desired_rev == tenant.desired_rev + 1
    async with db.transaction() as s:
        assert await s.get(ReconcileItem, tenant.id) is not None
    audit = await _audit_text(db)
    assert "byok.key_saved" in audit and key not in audit
    assert key not in repr(result) and key not in json.dumps(result.key.to_dict())


async def test_saving_the_same_key_twice_is_idempotent(
    db: Database, service: KeyService, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    key = valid_key("openai")
    first = await service.save(tenant.id, "openai", key, actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev
    (keys1, secrets1) = await _rows(db, tenant.id)

    second = await service.save(tenant.id, "openai", "  " + key + "\n", actor="api")
    assert second.unchanged and not second.replaced
    assert (await _tenant(db, tenant.id)).desired_rev == rev
    (keys2, secrets2) = await _rows(db, tenant.id)
    assert [k.id for k in keys2] == [k.id for k in keys1]
    assert [(s.id, s.version, s.value) for s in secrets2] == [(s.id, s.version, s.value) for s in secrets1]
    assert second.key.fingerprint == first.key.fingerprint


async def test_same_key_is_recognised_after_the_fingerprint_key_changed(
    db: Database, vault: Vault, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    key = valid_key("groq")
    await KeyService(db, vault, validator).save(tenant.id, "groq", key, actor="api")  # type: ignore[arg-type]
    rev = (await _tenant(db, tenant.id)).desired_rev
    rotated = Vault([("k2", bytes([2]) * 32), ("k1", bytes([1]) * 32)], fingerprint_key=bytes([9]) * 32)
    again = await KeyService(db, rotated, validator).save(tenant.id, "groq", key, actor="api")  # type: ignore[arg-type]
    assert again.unchanged and again.key.fingerprint == rotated.fingerprint(key)
    assert (await _tenant(db, tenant.id)).desired_rev == rev


async def test_a_new_key_replaces_the_old_one_atomically(
    db: Database, vault: Vault, service: KeyService, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    old, new = valid_key("xai", seed=1), valid_key("xai", seed=2)
    await service.save(tenant.id, "xai", old, actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev
    result = await service.save(tenant.id, "xai", new, actor="cli:ops")

    assert result.replaced and not result.unchanged and result.key.last4 == new[-4:]
    keys, secrets = await _rows(db, tenant.id)
    assert len(keys) == 1 and len(secrets) == 1  # never both, never neither
    assert secrets[0].version == 2 and keys[0].secret_id == secrets[0].id
    assert vault.decrypt(secrets[0].value, tenant_id=tenant.id, name="provider:xai") == new
    assert keys[0].fingerprint == vault.fingerprint(new)
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1
    audit = await _audit_text(db)
    assert "byok.key_replaced" in audit and old not in audit and new not in audit


@pytest.mark.parametrize("refused", [V.invalid_key, V.revoked_or_blocked, V.permission])
async def test_refused_verdicts_store_nothing(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any, refused: V
) -> None:
    tenant = await tenant_factory()
    validator.answers = [refused]
    key = valid_key("google")
    with pytest.raises(KeyRefused) as info:
        await service.save(tenant.id, "google", key, actor="api")
    assert info.value.verdict.verdict is refused
    assert str(info.value) == info.value.verdict.message and key not in str(info.value)
    assert await _rows(db, tenant.id) == ([], [])
    assert (await _tenant(db, tenant.id)).desired_rev == tenant.desired_rev


async def test_refused_new_key_leaves_the_old_key_in_place(
    db: Database, vault: Vault, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    old = valid_key("deepseek", seed=1)
    await service.save(tenant.id, "deepseek", old, actor="api")
    validator.answers = [V.invalid_key]
    with pytest.raises(KeyRefused):
        await service.save(tenant.id, "deepseek", valid_key("deepseek", seed=2), actor="api")
    keys, secrets = await _rows(db, tenant.id)
    assert vault.decrypt(secrets[0].value, tenant_id=tenant.id, name="provider:deepseek") == old
    assert keys[0].status is KeyStatus.usable
    assert (keys[0].verdict, keys[0].consecutive_failures) == (V.ok, 0)  # a different key: not observed


async def test_re_entering_the_stored_key_when_it_is_now_refused_records_the_refusal(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    key = valid_key("deepseek")
    await service.save(tenant.id, "deepseek", key, actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev

    validator.answers = [V.invalid_key, V.invalid_key, V.invalid_key]
    for n in (1, 2):
        with pytest.raises(KeyRefused) as info:
            await service.save(tenant.id, "deepseek", key, actor="api")
        assert info.value.verdict.verdict is V.invalid_key and key not in str(info.value)
        view = await service.key_status(tenant.id, "deepseek")
        assert view is not None
        assert (view.status, view.verdict, view.consecutive_failures) == (KeyStatus.usable, V.invalid_key, n)
        assert view.message is not None and f"({n} of 3 checks)" in view.message
    assert (await _tenant(db, tenant.id)).desired_rev == rev

    with pytest.raises(KeyRefused):
        await service.save(tenant.id, "deepseek", key, actor="api")
    view = await service.key_status(tenant.id, "deepseek")
    assert view is not None and (view.status, view.consecutive_failures) == (KeyStatus.broken, 3)
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1  # no longer usable: routing input
    audit = await _audit_text(db)
    assert "byok.key_status_changed" in audit and key not in audit
    keys, secrets = await _rows(db, tenant.id)
    assert len(keys) == 1 and len(secrets) == 1  # the stored key itself is kept


async def test_re_entering_the_stored_key_after_a_vault_fingerprint_change_is_still_recognised(
    db: Database, validator: FakeValidator, vault: Vault, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    key = valid_key("groq")
    await KeyService(db, vault, validator).save(tenant.id, "groq", key, actor="api")  # type: ignore[arg-type]
    rotated = Vault([("k2", bytes([2]) * 32), ("k1", bytes([1]) * 32)], fingerprint_key=bytes([9]) * 32)
    validator.answers = [V.revoked_or_blocked]
    with pytest.raises(KeyRefused):
        await KeyService(db, rotated, validator).save(tenant.id, "groq", key, actor="api")  # type: ignore[arg-type]
    keys, _ = await _rows(db, tenant.id)
    assert (keys[0].verdict, keys[0].consecutive_failures) == (V.revoked_or_blocked, 1)


async def test_format_refusal_never_reaches_the_provider(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    admin = "sk-ant-" + "admin01-" + "x" * 90
    with pytest.raises(KeyFormatRefused) as info:
        await service.save(tenant.id, "anthropic", admin, actor="api")
    assert "Admin" in str(info.value) and admin not in str(info.value)
    with pytest.raises(UnknownProvider):
        await service.save(tenant.id, "nope", valid_key("openai"), actor="api")
    assert validator.calls == [] and await _rows(db, tenant.id) == ([], [])


@pytest.mark.parametrize(
    ("verdict", "status"),
    [
        (V.no_credit, KeyStatus.warning),
        (V.spend_limit, KeyStatus.warning),
        (V.rate_limited, KeyStatus.unverified),
        (V.overloaded, KeyStatus.unverified),
        (V.unknown, KeyStatus.unverified),
    ],
)
async def test_warning_and_transient_verdicts_are_stored(
    db: Database,
    service: KeyService,
    validator: FakeValidator,
    tenant_factory: Any,
    verdict: V,
    status: KeyStatus,
) -> None:
    tenant = await tenant_factory()
    validator.answers = [verdict]
    validator.retry_after = 3600.0 if verdict is V.rate_limited else None
    result = await service.save(tenant.id, "mistral", valid_key("mistral"), actor="api")
    assert result.key.status is status and result.key.verdict is verdict
    assert result.key.message == result.verdict.message
    assert result.key.last_checked_at is not None and result.key.next_check_at is not None
    delay = result.key.next_check_at - result.key.last_checked_at
    if status is KeyStatus.unverified:
        assert delay == (timedelta(hours=1) if verdict is V.rate_limited else timedelta(minutes=10))
    due = await service.due_for_check(now=result.key.next_check_at)
    assert (tenant.id, "mistral") in due


async def test_delete_is_complete(db: Database, service: KeyService, tenant_factory: Any) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "cohere", valid_key("cohere"), actor="api")
    await service.save(tenant.id, "groq", valid_key("groq"), actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev

    assert await service.delete(tenant.id, "cohere", actor="api") is True
    keys, secrets = await _rows(db, tenant.id)
    assert [k.provider for k in keys] == ["groq"]
    assert [s.name for s in secrets] == ["provider:groq"]  # no ciphertext left for cohere
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1
    assert "byok.key_deleted" in await _audit_text(db)

    assert await service.delete(tenant.id, "cohere", actor="api") is False
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1


async def test_status_lists_several_providers_without_keys(
    db: Database, service: KeyService, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    other = await tenant_factory()
    keys = {p: valid_key(p) for p in ("openrouter", "anthropic", "moonshot")}
    for provider, key in keys.items():
        await service.save(tenant.id, provider, key, actor="api")
    await service.save(other.id, "openai", valid_key("openai"), actor="api")

    views = await service.status(tenant.id)
    assert [v.provider for v in views] == ["anthropic", "moonshot", "openrouter"]
    dumped = json.dumps([v.to_dict() for v in views])
    for key in keys.values():
        assert key not in dumped and key not in repr(views)
    assert {v.env_var for v in views} == {"ANTHROPIC_API_KEY", "MOONSHOT_API_KEY", "OPENROUTER_API_KEY"}
    assert (await service.key_status(tenant.id, "openai")) is None


async def test_test_now_counts_consecutive_failures_and_resets_on_ok(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "openai", valid_key("openai"), actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev

    validator.answers = [V.invalid_key, V.rate_limited, V.invalid_key, V.ok, V.overloaded]
    r1 = await service.test_now(tenant.id, "openai", actor="poller")
    assert (r1.key.status, r1.key.consecutive_failures, r1.recorded) == (KeyStatus.usable, 1, True)
    assert r1.key.verdict is V.invalid_key and r1.key.message is not None
    assert r1.key.message.startswith("OpenAI refused the key (1 of 3 checks)")
    assert (await _tenant(db, tenant.id)).desired_rev == rev  # one refusal: status unchanged

    r2 = await service.test_now(tenant.id, "openai", actor="poller")  # transient: nothing changes
    assert (r2.key.status, r2.key.consecutive_failures, r2.key.verdict) == (
        KeyStatus.usable,
        1,
        V.invalid_key,
    )
    assert r2.key.message == r1.key.message
    r3 = await service.test_now(tenant.id, "openai", actor="poller")
    assert (r3.key.status, r3.key.consecutive_failures) == (KeyStatus.usable, 2)
    assert r3.key.message is not None and "(2 of 3 checks)" in r3.key.message
    assert (await _tenant(db, tenant.id)).desired_rev == rev

    r4 = await service.test_now(tenant.id, "openai", actor="api")
    assert (r4.key.status, r4.key.consecutive_failures, r4.key.verdict) == (KeyStatus.usable, 0, V.ok)
    assert (await _tenant(db, tenant.id)).desired_rev == rev
    r5 = await service.test_now(tenant.id, "openai", actor="poller")  # transient never marks bad
    assert (r5.key.status, r5.key.consecutive_failures, r5.key.verdict) == (KeyStatus.usable, 0, V.ok)
    assert validator.connections_during_validation == [0] * 6


@pytest.mark.parametrize("refused", [V.invalid_key, V.revoked_or_blocked, V.permission])
async def test_a_key_is_broken_only_after_three_refusals_in_a_row(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any, refused: V
) -> None:
    assert BROKEN_AFTER == 3
    tenant = await tenant_factory()
    await service.save(tenant.id, "groq", valid_key("groq"), actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev

    validator.answers = [refused, refused, V.overloaded, V.unknown, refused]
    seen = [await service.test_now(tenant.id, "groq", actor="poller") for _ in range(5)]
    assert [(r.key.status, r.key.consecutive_failures) for r in seen] == [
        (KeyStatus.usable, 1),
        (KeyStatus.usable, 2),
        (KeyStatus.usable, 2),
        (KeyStatus.usable, 2),
        (KeyStatus.broken, 3),
    ]
    assert seen[-1].key.message == seen[-1].verdict.message  # broken: the provider's sentence
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1  # only the change to broken
    assert "byok.key_status_changed" in await _audit_text(db)

    validator.answers = [V.ok]
    back = await service.test_now(tenant.id, "groq", actor="poller")
    assert (back.key.status, back.key.consecutive_failures) == (KeyStatus.usable, 0)
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 2


async def test_a_refusal_between_two_oks_never_breaks_the_key(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "groq", valid_key("groq"), actor="api")
    validator.answers = [V.invalid_key, V.ok, V.invalid_key, V.invalid_key, V.ok, V.invalid_key]
    statuses = [(await service.test_now(tenant.id, "groq", actor="poller")).key.status for _ in range(6)]
    assert set(statuses) == {KeyStatus.usable}


@pytest.mark.parametrize("warning", [V.no_credit, V.spend_limit])
async def test_a_warning_verdict_applies_at_once_and_counts_as_a_bad_observation(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any, warning: V
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "deepseek", valid_key("deepseek"), actor="api")
    rev = (await _tenant(db, tenant.id)).desired_rev
    validator.answers = [warning, V.rate_limited, warning, V.ok]
    r1 = await service.test_now(tenant.id, "deepseek", actor="poller")
    assert (r1.key.status, r1.key.consecutive_failures, r1.key.verdict) == (KeyStatus.warning, 1, warning)
    assert r1.key.message == r1.verdict.message
    assert (await _tenant(db, tenant.id)).desired_rev == rev + 1
    r2 = await service.test_now(tenant.id, "deepseek", actor="poller")
    assert (r2.key.status, r2.key.consecutive_failures, r2.key.verdict) == (KeyStatus.warning, 1, warning)
    r3 = await service.test_now(tenant.id, "deepseek", actor="poller")
    assert (r3.key.status, r3.key.consecutive_failures) == (KeyStatus.warning, 2)
    r4 = await service.test_now(tenant.id, "deepseek", actor="poller")
    assert (r4.key.status, r4.key.consecutive_failures) == (KeyStatus.usable, 0)


async def test_a_refusal_after_a_run_of_warnings_completes_the_bad_run(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "deepseek", valid_key("deepseek"), actor="api")
    validator.answers = [V.no_credit, V.invalid_key, V.invalid_key]
    seen = [await service.test_now(tenant.id, "deepseek", actor="poller") for _ in range(3)]
    assert [(r.key.status, r.key.consecutive_failures) for r in seen] == [
        (KeyStatus.warning, 1),
        (KeyStatus.warning, 2),
        (KeyStatus.broken, 3),
    ]


async def test_a_transient_recheck_keeps_the_last_definite_answer_and_checks_again_soon(
    db: Database, vault: Vault, validator: FakeValidator, tenant_factory: Any
) -> None:
    clock = Clock()
    service = KeyService(db, vault, validator, clock=clock)  # type: ignore[arg-type]
    tenant = await tenant_factory()
    validator.answers = [
        Verdict(
            provider="openrouter",
            verdict=V.no_credit,
            message="no credit left",
            region=None,
            flags=("free_tier",),
        )
    ]
    saved = await service.save(tenant.id, "openrouter", valid_key("openrouter"), actor="api")
    assert saved.key.status is KeyStatus.warning and saved.key.next_check_at == clock.now + timedelta(hours=6)

    checked_at = clock.advance(hours=7)
    validator.answers = [
        Verdict(provider="openrouter", verdict=V.rate_limited, message="busy", retry_after=3600.0)
    ]
    r1 = await service.test_now(tenant.id, "openrouter", actor="poller")
    assert (r1.key.verdict, r1.key.message, r1.key.status, r1.key.flags) == (
        V.no_credit,
        "no credit left",
        KeyStatus.warning,
        ("free_tier",),
    )
    assert r1.key.consecutive_failures == 0
    assert r1.key.last_checked_at == checked_at and r1.key.next_check_at == checked_at + timedelta(hours=1)

    checked_at = clock.advance(hours=1)
    validator.answers = [Verdict(provider="openrouter", verdict=V.unknown, message="?", preview="<html>")]
    r2 = await service.test_now(tenant.id, "openrouter", actor="poller")
    assert (r2.key.verdict, r2.key.message) == (V.no_credit, "no credit left")
    assert r2.key.last_checked_at == checked_at and r2.key.next_check_at == checked_at + timedelta(minutes=10)
    assert (tenant.id, "openrouter") in await service.due_for_check(now=checked_at + timedelta(minutes=10))


async def test_flags_are_stored_replaced_by_definite_checks_and_shown(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    validator.answers = [
        Verdict(provider="cohere", verdict=V.ok, message="ok", flags=("trial_key", "credit_unchecked"))
    ]
    saved = await service.save(tenant.id, "cohere", valid_key("cohere"), actor="api")
    assert saved.key.flags == ("trial_key", "credit_unchecked")
    assert saved.key.to_dict()["flags"] == ["trial_key", "credit_unchecked"]
    keys, _ = await _rows(db, tenant.id)
    assert keys[0].flags == ["trial_key", "credit_unchecked"]
    views = await service.status(tenant.id)
    assert views[0].flags == ("trial_key", "credit_unchecked")

    validator.answers = [Verdict(provider="cohere", verdict=V.overloaded, message="busy", flags=("x",))]
    r1 = await service.test_now(tenant.id, "cohere", actor="poller")
    assert r1.key.flags == ("trial_key", "credit_unchecked")  # transient: kept
    validator.answers = [Verdict(provider="cohere", verdict=V.ok, message="ok", flags=("trial_key",))]
    r2 = await service.test_now(tenant.id, "cohere", actor="poller")
    assert r2.key.flags == ("trial_key",)
    validator.answers = [V.ok]
    r3 = await service.test_now(tenant.id, "cohere", actor="poller")
    assert r3.key.flags == () and r3.key.to_dict()["flags"] == []
    keys, _ = await _rows(db, tenant.id)
    assert keys[0].flags is None


async def test_an_unproven_minimax_key_is_stored_unverified_with_its_flag(
    db: Database, vault: Vault, validator: FakeValidator, tenant_factory: Any
) -> None:
    clock = Clock()
    service = KeyService(db, vault, validator, clock=clock)  # type: ignore[arg-type]
    tenant = await tenant_factory()
    unproven = Verdict(
        provider="minimax",
        verdict=V.unknown,
        message=UNPROVEN_MESSAGE.format(name="MiniMax"),
        http_status=200,
        region="global",
        flags=("unproven",),
    )
    validator.answers = [unproven]
    saved = await service.save(tenant.id, "minimax", valid_key("minimax"), actor="api")
    assert (saved.key.status, saved.key.verdict, saved.key.flags, saved.key.region) == (
        KeyStatus.unverified,
        V.unknown,
        ("unproven",),
        "global",
    )
    assert saved.key.message is not None and "does not confirm keys on its free endpoint" in saved.key.message
    assert saved.key.next_check_at == clock.now + timedelta(hours=24)  # re-asking sooner proves nothing

    clock.advance(hours=24)
    validator.answers = [
        Verdict(provider="minimax", verdict=V.ok, message="MiniMax accepted the key.", region="global")
    ]
    proven = await service.test_now(tenant.id, "minimax", actor="poller")
    assert (proven.key.status, proven.key.flags) == (KeyStatus.usable, ())
    validator.answers = [unproven]  # later checks without the paid probe do not un-prove it
    again = await service.test_now(tenant.id, "minimax", actor="poller")
    assert (again.key.status, again.key.verdict) == (KeyStatus.usable, V.ok)


async def test_test_now_uses_the_stored_region_and_missing_keys_raise(
    db: Database, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "moonshot", valid_key("moonshot"), actor="api")
    async with db.transaction() as s:
        row = await s.scalar(select(ProviderKey))
        assert row is not None
        row.region = "cn"
    await service.test_now(tenant.id, "moonshot", actor="api")
    assert validator.calls[-1] == ("moonshot", "cn")
    with pytest.raises(KeyNotFound):
        await service.test_now(tenant.id, "openai", actor="api")
    with pytest.raises(TenantNotFound):
        await service.save("no-such-tenant", "openai", valid_key("openai"), actor="api")


async def test_test_now_discards_its_result_if_the_key_was_replaced_meanwhile(
    db: Database, vault: Vault, service: KeyService, validator: FakeValidator, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    await service.save(tenant.id, "groq", valid_key("groq", seed=1), actor="api")
    other = KeyService(db, vault, FakeValidator(db))  # type: ignore[arg-type]

    async def replace_key() -> None:
        await other.save(tenant.id, "groq", valid_key("groq", seed=2), actor="api")

    validator.hook = replace_key
    validator.answers = [V.invalid_key]
    result = await service.test_now(tenant.id, "groq", actor="poller")
    assert not result.recorded and result.verdict.verdict is V.invalid_key
    assert result.key.status is KeyStatus.usable and result.key.last4 == valid_key("groq", seed=2)[-4:]


async def test_model_preference_goes_through_desired_state(
    db: Database, service: KeyService, tenant_factory: Any
) -> None:
    tenant = await tenant_factory()
    assert (
        await service.set_model_preference(
            tenant.id, model="anthropic/claude-sonnet-4-5", strategy="quality_first", actor="api"
        )
        is True
    )
    t = await _tenant(db, tenant.id)
    assert (t.model_preference, t.routing_strategy, t.desired_rev) == (
        "anthropic/claude-sonnet-4-5",
        RoutingStrategy.quality_first,
        tenant.desired_rev + 1,
    )
    assert (
        await service.set_model_preference(
            tenant.id,
            model="anthropic/claude-sonnet-4-5",
            strategy=RoutingStrategy.quality_first,
            actor="api",
        )
        is False
    )
    assert (await _tenant(db, tenant.id)).desired_rev == tenant.desired_rev + 1
    assert (
        await service.set_model_preference(tenant.id, model=None, strategy="aggressive", actor="api") is True
    )
    with pytest.raises(InvalidModelPreference, match="model"):
        await service.set_model_preference(tenant.id, model="claude", strategy="balanced", actor="api")
    with pytest.raises(InvalidModelPreference, match="strategy"):
        await service.set_model_preference(tenant.id, model=None, strategy="cheap", actor="api")
    with pytest.raises(UnknownProvider):
        await service.set_model_preference(tenant.id, model="acme/model-1", strategy="balanced", actor="api")
    async with db.transaction() as s:
        assert (
            await s.scalar(
                select(func.count()).select_from(AuditLog).where(AuditLog.action == "byok.model_preference")
            )
            == 2
        )
