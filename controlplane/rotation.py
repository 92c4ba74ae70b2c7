"""Re-encryption of every secret to the vault's primary key (``controlplane keys rotate``).

Resumable and safe while the API and workers run:
* it walks the rows not yet on the primary key in id order, in batches, each batch in its own short
  transaction (no long transaction pins the database);
* each row is rewritten with a compare-and-swap on its ``version``: if a concurrent writer changed
  the row since it was read, the rewrite is skipped (that writer already encrypted with the primary
  key; otherwise the next pass picks it up again);
* stopping at any point loses nothing: rows are only ever replaced by a re-encryption of the same
  plaintext, and running it again continues with what is left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Table, bindparam, func, select, update

from controlplane.db.models import Secret, utcnow
from controlplane.db.session import Database
from controlplane.vault import Vault, VaultError

SECRETS: Table = Secret.__table__  # type: ignore[assignment]  # Core statements: no ORM session synchronisation per row
_CAS_UPDATE = (
    update(SECRETS)
    .where(SECRETS.c.id == bindparam("b_id"), SECRETS.c.version == bindparam("b_version"))
    .values(value=bindparam("b_value"), key_id=bindparam("b_kid"), version=bindparam("b_next"))
)


@dataclass
class RotationReport:
    rewritten: int = 0  # rows now on the primary key (ours, or a concurrent primary-key write)
    skipped_concurrent: int = 0  # rows a concurrent old-ring writer changed first (retried next pass)
    failed: list[str] = field(default_factory=list)  # secret row ids (never values)
    remaining: int = 0
    passes: int = 0


async def count_by_key(db: Database) -> dict[str, int]:
    """How many secrets each key id protects."""
    async with db.read() as s:
        rows = await s.execute(select(Secret.key_id, func.count()).group_by(Secret.key_id))
        return {kid: n for kid, n in rows.all()}


async def count_not_on_primary(db: Database, vault: Vault) -> int:
    async with db.read() as s:
        return int(
            await s.scalar(
                select(func.count()).select_from(Secret).where(Secret.key_id != vault.primary_key_id)
            )
            or 0
        )


async def rotate_to_primary(
    db: Database,
    vault: Vault,
    *,
    batch_size: int = 500,
    max_passes: int = 5,
    progress: Callable[[int], None] | None = None,
) -> RotationReport:
    """Re-encrypt every secret not on the primary key. ``progress(n)`` is called after each batch
    with the number of rows handled in it."""
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    report = RotationReport()
    primary = vault.primary_key_id
    failed: set[str] = set()
    for _ in range(max_passes):
        report.passes += 1
        after_id = ""
        progressed = False
        while True:
            async with db.transaction() as s:
                batch = (
                    await s.execute(
                        select(Secret.id, Secret.tenant_id, Secret.name, Secret.value, Secret.version)
                        .where(Secret.key_id != primary, Secret.id > after_id)
                        .order_by(Secret.id)
                        .limit(batch_size)
                    )
                ).all()
                if not batch:
                    break
                updates = []
                for row_id, tenant_id, name, value, version in batch:
                    after_id = row_id
                    try:
                        new_value = vault.reencrypt(value, tenant_id=tenant_id, name=name)
                    except VaultError:
                        failed.add(row_id)
                        continue
                    updates.append(
                        {
                            "b_id": row_id,
                            "b_version": version,
                            "b_value": new_value,
                            "b_next": version + 1,
                            "b_kid": primary,
                        }
                    )
                if updates:
                    # One statement per batch; each row is still a compare-and-swap on its version.
                    await s.execute(_CAS_UPDATE.values(updated_at=utcnow()), updates)
                    ids = [u["b_id"] for u in updates]
                    lost = int(
                        await s.scalar(
                            select(func.count())
                            .select_from(SECRETS)
                            .where(SECRETS.c.id.in_(ids), SECRETS.c.key_id != primary)
                        )
                        or 0
                    )
                    # Rows still off the primary key were rewritten concurrently by a writer that
                    # used an older key ring: the next pass takes them again.
                    report.skipped_concurrent += lost
                    report.rewritten += len(updates) - lost
                    progressed = progressed or len(updates) > lost
            if progress is not None:
                progress(len(batch))
        remaining = await count_not_on_primary(db, vault)
        if remaining - len(failed) <= 0 or not progressed:
            break
    report.failed = sorted(failed)
    report.remaining = await count_not_on_primary(db, vault)
    return report


__all__ = ["RotationReport", "count_by_key", "count_not_on_primary", "rotate_to_primary"]
