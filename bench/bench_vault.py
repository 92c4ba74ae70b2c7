"""Vault and rotation benchmark: prints encrypt/decrypt throughput and re-encryption rates.

    .venv/bin/python bench/bench_vault.py [--rows 10000] [--postgres URL]

Rotation is measured on a temporary SQLite file, on the same through libSQL (the libsql SDK's engine)
and, if reachable, on PostgreSQL (a throw-away schema). Numbers depend on the machine; compare runs
on the same machine only.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from controlplane.db.models import Base, Secret, Tenant
from controlplane.db.session import Database, create_engine
from controlplane.rotation import rotate_to_primary
from controlplane.vault import Vault

OLD = Vault([("k1", bytes([1]) * 32)])
NEW = Vault([("k2", bytes([2]) * 32), ("k1", bytes([1]) * 32)])


def bench_crypto(n: int = 50_000) -> None:
    value = "sk-" + "x" * 61
    t0 = time.perf_counter()
    stored = [NEW.encrypt(value, tenant_id=f"t{i}", name="provider:openai") for i in range(n)]
    t1 = time.perf_counter()
    for i, s in enumerate(stored):
        NEW.decrypt(s, tenant_id=f"t{i}", name="provider:openai")
    t2 = time.perf_counter()
    for _ in range(n):
        NEW.fingerprint(value)
    t3 = time.perf_counter()
    print(f"vault encrypt      {n / (t1 - t0):>10,.0f} ops/s  ({(t1 - t0) / n * 1e6:.1f} µs/op)")
    print(f"vault decrypt      {n / (t2 - t1):>10,.0f} ops/s  ({(t2 - t1) / n * 1e6:.1f} µs/op)")
    print(f"vault fingerprint  {n / (t3 - t2):>10,.0f} ops/s  ({(t3 - t2) / n * 1e6:.1f} µs/op)")


async def bench_rotation(label: str, db: Database, rows: int) -> None:
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    tenants = [
        {"id": uuid.uuid4().hex, "external_id": f"u{i}", "plan": "pro", "region": "iad"} for i in range(rows)
    ]
    secrets = [
        {
            "id": uuid.uuid4().hex,
            "tenant_id": t["id"],
            "name": "provider:openai",
            "key_id": "k1",
            "value": OLD.encrypt("sk-" + "y" * 61, tenant_id=t["id"], name="provider:openai"),
            "version": 1,
        }
        for t in tenants
    ]
    async with db.transaction() as s:
        for i in range(0, rows, 2000):
            await s.execute(insert(Tenant), tenants[i : i + 2000])
            await s.execute(insert(Secret), secrets[i : i + 2000])
    tracemalloc.start()
    t0 = time.perf_counter()
    report = await rotate_to_primary(db, NEW, batch_size=500)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert report.remaining == 0 and report.rewritten == rows
    print(
        f"rotate {label:<10} {rows:,} secrets in {elapsed:.2f} s = {rows / elapsed:,.0f} rows/s, "
        f"peak Python memory {peak / 1e6:.1f} MB (batch 500)"
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    bench_crypto()
    for backend in ("sqlite", "libsql"):
        with tempfile.TemporaryDirectory() as tmp:
            db = Database.from_url(f"{backend}:///{tmp}/bench.db")
            try:
                await bench_rotation(backend, db, args.rows)
            finally:
                await db.dispose()
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.postgres)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"rotate postgresql  skipped: {type(exc).__name__} (is PostgreSQL running?)")
        await admin.dispose()
        return
    db = Database(create_engine(args.postgres, pg_schema=schema))
    try:
        await bench_rotation("postgresql", db, args.rows)
    finally:
        await db.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


if __name__ == "__main__":
    asyncio.run(main())
