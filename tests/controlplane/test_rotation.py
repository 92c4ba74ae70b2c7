"""Key rotation: every secret ends on the primary key, nothing is lost, even with a concurrent writer."""

from __future__ import annotations

import asyncio
import random
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert, select

from controlplane.db.models import Secret, Tenant
from controlplane.db.session import Database
from controlplane.rotation import count_by_key, rotate_to_primary
from controlplane.secrets_store import put_secret, read_secret
from controlplane.vault import Vault

OLD = [("k1", bytes([1]) * 32)]
NEW = [("k2", bytes([2]) * 32), ("k1", bytes([1]) * 32)]


async def _seed(db: Database, n_tenants: int, per_tenant: int) -> dict[tuple[str, str], str]:
    """Insert secrets encrypted with the OLD key only; returns (tenant, name) -> plaintext."""
    old = Vault(OLD)
    expected: dict[tuple[str, str], str] = {}
    tenants = [
        {"id": f"{i:032x}", "external_id": f"u{i}", "plan": "pro", "region": "iad"} for i in range(n_tenants)
    ]
    rows = []
    for t in tenants:
        for j in range(per_tenant):
            name = f"provider:p{j}"
            value = f"secret-{t['id'][-6:]}-{j}-{random.random()}"
            expected[(t["id"], name)] = value
            rows.append(
                {
                    "id": f"{t['id'][-24:]}{j:08x}",
                    "tenant_id": t["id"],
                    "name": name,
                    "key_id": "k1",
                    "value": old.encrypt(value, tenant_id=t["id"], name=name),
                    "version": 1,
                }
            )
    async with db.transaction() as s:
        await s.execute(insert(Tenant), tenants)
        for start in range(0, len(rows), 2000):
            await s.execute(insert(Secret), rows[start : start + 2000])
    return expected


async def _all_plaintexts(db: Database, vault: Vault) -> dict[tuple[str, str], str]:
    async with db.transaction() as s:
        rows = (await s.execute(select(Secret.tenant_id, Secret.name, Secret.value))).all()
    return {(t, n): vault.decrypt(v, tenant_id=t, name=n) for t, n, v in rows}


@pytest.mark.slow
async def test_rotate_10000_secrets_with_a_concurrent_writer(db: Database) -> None:
    expected = await _seed(db, n_tenants=2500, per_tenant=4)
    assert len(expected) == 10_000
    vault = Vault(NEW)  # k2 promoted to primary everywhere; k1 decrypt-only
    rng = random.Random(7)
    targets = rng.sample(sorted(expected), 300)
    stop = asyncio.Event()

    async def writer() -> int:
        writes = 0
        for tenant_id, name in targets:
            if stop.is_set():
                break
            value = f"rewritten-{writes}-{rng.random()}"
            async with db.transaction() as s:
                await put_secret(s, vault, tenant_id=tenant_id, name=name, plaintext=value)
            expected[(tenant_id, name)] = value
            writes += 1
            await asyncio.sleep(0)
        return writes

    writer_task = asyncio.create_task(writer())
    progress: list[int] = []
    report = await rotate_to_primary(db, vault, batch_size=250, progress=progress.append)
    stop.set()
    writes = await writer_task

    assert writes > 0
    assert report.failed == []
    assert report.remaining == 0
    assert report.rewritten + report.skipped_concurrent >= 10_000 - writes
    assert sum(progress) >= report.rewritten
    assert await count_by_key(db) == {"k2": 10_000}
    assert await _all_plaintexts(db, vault) == expected  # nothing lost, latest writes kept


class Interrupted(Exception):
    pass


async def test_rotation_resumes_after_an_interruption(db: Database) -> None:
    expected = await _seed(db, n_tenants=50, per_tenant=2)
    vault = Vault(NEW)
    batches = []

    def stop_after_three(n: int) -> None:
        batches.append(n)
        if len(batches) == 3:
            raise Interrupted  # the operator hits ^C, or the process dies, after 3 batches

    with pytest.raises(Interrupted):
        await rotate_to_primary(db, vault, batch_size=10, progress=stop_after_three)
    assert await count_by_key(db) == {"k1": 70, "k2": 30}  # 3 committed batches, nothing else
    resumed = await rotate_to_primary(db, vault, batch_size=10)
    assert resumed.rewritten == 70 and resumed.remaining == 0
    assert await count_by_key(db) == {"k2": 100}
    again = await rotate_to_primary(db, vault, batch_size=10)
    assert again.rewritten == 0 and again.remaining == 0  # idempotent
    assert await _all_plaintexts(db, vault) == expected


@pytest.fixture
async def pg_db() -> Database:
    """PostgreSQL only: on SQLite every transaction takes the write lock up front (BEGIN
    IMMEDIATE), so no writer can commit between rotation's read and its swap there."""
    from tests.support.db import POSTGRES_URL, PostgresSchema, open_database

    schema = PostgresSchema(POSTGRES_URL, f"t_{uuid.uuid4().hex[:16]}")
    await schema.create()
    try:
        async with open_database(POSTGRES_URL, schema.schema) as database:
            database.pg_schema = schema.schema  # type: ignore[attr-defined]
            yield database
    finally:
        await schema.drop()


async def test_a_concurrent_old_ring_write_wins_the_race_and_is_rotated_next_pass(pg_db: Database) -> None:
    """Between rotation's read and its compare-and-swap, a process still running with the OLD key
    ring rewrites a row. The swap must not overwrite that write; the next pass rotates it."""
    import threading

    from tests.support.db import POSTGRES_URL

    db = pg_db

    expected = await _seed(db, n_tenants=5, per_tenant=1)
    old, new = Vault(OLD), Vault(NEW)
    victim_tenant, victim_name = sorted(expected)[0]
    raced = {"done": False}

    def old_ring_writer() -> None:
        async def write() -> None:
            from controlplane.db.session import create_engine

            engine = create_engine(POSTGRES_URL, pg_schema=db.pg_schema)  # type: ignore[attr-defined]
            try:
                other = Database(engine)
                async with other.transaction() as s:
                    await put_secret(
                        s,
                        old,
                        tenant_id=victim_tenant,
                        name=victim_name,
                        plaintext="written-by-an-old-process",
                    )
            finally:
                await engine.dispose()

        asyncio.run(write())

    class RacingVault(Vault):
        def reencrypt(self, stored: str, *, tenant_id: str, name: str) -> str:
            result = super().reencrypt(stored, tenant_id=tenant_id, name=name)
            if not raced["done"] and (tenant_id, name) == (victim_tenant, victim_name):
                raced["done"] = True
                t = threading.Thread(target=old_ring_writer)  # commits while rotation waits
                t.start()
                t.join()
            return result

    report = await rotate_to_primary(db, RacingVault(NEW), batch_size=10)
    assert raced["done"]
    assert report.skipped_concurrent == 1  # the swap lost, and said so
    assert report.passes >= 2 and report.remaining == 0
    expected[(victim_tenant, victim_name)] = "written-by-an-old-process"
    assert await count_by_key(db) == {"k2": 5}
    assert await _all_plaintexts(db, new) == expected


async def test_rows_with_unknown_keys_are_reported_not_lost(db: Database) -> None:
    expected = await _seed(db, n_tenants=3, per_tenant=2)
    stranger = Vault([("k9", bytes([9]) * 32)])
    tenant_id, name = sorted(expected)[0]
    async with db.transaction() as s:
        row = await s.scalar(select(Secret).where(Secret.tenant_id == tenant_id, Secret.name == name))
        row.value = stranger.encrypt("x" * 20, tenant_id=tenant_id, name=name)
        row.key_id = "k9"
        bad_id = row.id
    report = await rotate_to_primary(db, Vault(NEW), batch_size=2)
    assert report.failed == [bad_id]
    assert report.remaining == 1
    assert (await count_by_key(db)) == {"k2": 5, "k9": 1}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    values=st.lists(st.text(min_size=1, max_size=50), min_size=1, max_size=8),
    batch=st.integers(min_value=1, max_value=5),
)
async def test_rotation_preserves_any_values(db: Database, values: list[str], batch: int) -> None:
    old, new = Vault(OLD), Vault(NEW)
    async with db.transaction() as s:
        tenant = Tenant(external_id=f"h-{uuid.uuid4().hex}", plan="pro", region="iad")
        s.add(tenant)
        await s.flush()
        for i, v in enumerate(values):
            await put_secret(s, old, tenant_id=tenant.id, name=f"n{i}", plaintext=v)
    await rotate_to_primary(db, new, batch_size=batch)
    async with db.transaction() as s:
        for i, v in enumerate(values):
            assert await read_secret(s, new, tenant_id=tenant.id, name=f"n{i}") == v
        keys = set((await s.execute(select(Secret.key_id).where(Secret.tenant_id == tenant.id))).scalars())
    assert keys == {"k2"}
