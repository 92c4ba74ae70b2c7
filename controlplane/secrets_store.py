"""Vault-encrypted secrets in the ``secrets`` table (rows of :class:`~controlplane.db.models.Secret`).

All functions run inside the caller's transaction. Plaintext enters and leaves only as function
arguments and return values; nothing here logs it.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from controlplane.db.models import Secret, utcnow
from controlplane.vault import Vault

GATEWAY_TOKEN_SECRET = "gateway_token"


def provider_secret_name(provider_id: str) -> str:
    """The secret name of a tenant's BYOK key for ``provider_id``."""
    return f"provider:{provider_id}"


def channel_secret_name(kind: str, field: str = "token") -> str:
    """The secret name of a channel credential, e.g. ``channel:telegram:token``."""
    return f"channel:{kind}:{field}"


#: Which stored channel credential each agent environment variable carries (field of
#: :func:`channel_secret_name`); variables not listed carry the channel's ``token``.
CHANNEL_ENV_FIELDS: dict[str, str] = {
    "SLACK_APP_TOKEN": "app_token",
    "TELEGRAM_WEBHOOK_SECRET": "webhook_secret",
}


def channel_env_secret_name(kind: str, env_var: str) -> str:
    """The secret holding the value of channel ``kind``'s environment variable ``env_var``."""
    return channel_secret_name(kind, CHANNEL_ENV_FIELDS.get(env_var, "token"))


async def get_secret_row(session: AsyncSession, *, tenant_id: str, name: str) -> Secret | None:
    return await session.scalar(select(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name))


async def put_secret(
    session: AsyncSession, vault: Vault, *, tenant_id: str, name: str, plaintext: str
) -> Secret:
    """Insert or replace the secret ``name`` of ``tenant_id`` (encrypted with the primary key)."""
    if not plaintext:
        raise ValueError(f"secret {name!r}: value must not be empty")
    stored = vault.encrypt(plaintext, tenant_id=tenant_id, name=name)
    row = await get_secret_row(session, tenant_id=tenant_id, name=name)
    if row is None:
        row = Secret(tenant_id=tenant_id, name=name, key_id=vault.primary_key_id, value=stored, version=1)
        session.add(row)
    else:
        row.value = stored
        row.key_id = vault.primary_key_id
        row.version = row.version + 1
        row.updated_at = utcnow()
    await session.flush()
    return row


async def read_secret(session: AsyncSession, vault: Vault, *, tenant_id: str, name: str) -> str | None:
    """The plaintext of secret ``name``, or ``None`` if the tenant has none."""
    row = await get_secret_row(session, tenant_id=tenant_id, name=name)
    if row is None:
        return None
    return vault.decrypt(row.value, tenant_id=tenant_id, name=name)


async def ensure_secret(
    session: AsyncSession, vault: Vault, *, tenant_id: str, name: str, generate: Callable[[], str]
) -> str:
    """The plaintext of secret ``name``; if the tenant has none yet, ``generate()`` one and store it
    (for values the control plane owns: gateway tokens, webhook secrets)."""
    row = await get_secret_row(session, tenant_id=tenant_id, name=name)
    if row is not None:
        return vault.decrypt(row.value, tenant_id=tenant_id, name=name)
    value = generate()
    await put_secret(session, vault, tenant_id=tenant_id, name=name, plaintext=value)
    return value


async def delete_all_secrets(session: AsyncSession, *, tenant_id: str) -> int:
    """Delete every secret of the tenant (its resources are destroyed); returns how many."""
    result = await session.execute(delete(Secret).where(Secret.tenant_id == tenant_id))
    return int(getattr(result, "rowcount", 0) or 0)


async def delete_secret(session: AsyncSession, *, tenant_id: str, name: str) -> bool:
    """Delete the secret; ``True`` if a row was removed."""
    result = await session.execute(delete(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name))
    return bool(getattr(result, "rowcount", 0))


__all__ = [
    "GATEWAY_TOKEN_SECRET",
    "CHANNEL_ENV_FIELDS",
    "channel_env_secret_name",
    "channel_secret_name",
    "delete_all_secrets",
    "delete_secret",
    "ensure_secret",
    "get_secret_row",
    "provider_secret_name",
    "put_secret",
    "read_secret",
]
