"""Key re-validation in bulk: the keys whose ``next_check_at`` passed (the worker's periodic job),
or every key of one tenant (``controlplane keys revalidate --tenant``), each through
:meth:`KeyService.test_now` — the one policy (free checks first, credit checks where a provider has
one; broken only after the policy's consecutive refusals)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from controlplane.byok.errors import KeyNotFound
from controlplane.byok.service import KeyService
from controlplane.enums import KeyStatus, KeyVerdict


@dataclass(frozen=True, slots=True)
class Rechecked:
    tenant_id: str
    provider: str
    verdict: KeyVerdict
    status: KeyStatus
    consecutive_failures: int


async def revalidate_keys(
    keys: KeyService, *, now: datetime, limit: int, actor: str, tenant_id: str | None = None
) -> list[Rechecked]:
    """Re-check the due keys (at most ``limit``), or every key of ``tenant_id``."""
    if tenant_id is not None:
        due = [(tenant_id, view.provider) for view in await keys.status(tenant_id)]
    else:
        due = await keys.due_for_check(now=now, limit=limit)
    done = []
    for tenant, provider in due:
        try:
            result = await keys.test_now(tenant, provider, actor=actor)
        except KeyNotFound:  # deleted meanwhile
            continue
        done.append(
            Rechecked(
                tenant,
                provider,
                result.verdict.verdict,
                result.key.status,
                result.key.consecutive_failures,
            )
        )
    return done


__all__ = ["Rechecked", "revalidate_keys"]
