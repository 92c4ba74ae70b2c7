"""Reconcile queue benchmark: claims + finishes per second, beside the same workload on procrastinate.

    .venv/bin/python bench/bench_queue.py [--tenants 5000] [--batch 16] [--postgres URL]

One "item" is one tenant claimed (with its lease) and finished (lease released, conditional on the
fencing generation): the queue work of one reconcile. Measured on SQLite and on libSQL (a local file
through the libsql SDK), 1 worker each (one writer; libSQL also with 2 processes on one file), and
on PostgreSQL with 1 and 4 worker processes; then the same number of no-op jobs through
procrastinate (a bench-only dependency, ``pip install -e '.[bench]'``) on the same PostgreSQL with 4
worker processes, so the choice of our own queue stands on a number. Targets (issue 9): >= 500/s on
SQLite (and libSQL), >= 2,000/s on PostgreSQL with 4 workers.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, text

from controlplane.db.models import Base, ReconcileItem, Tenant, utcnow
from controlplane.db.queue import ReconcileQueue
from controlplane.db.session import Database, create_engine

POSTGRES = os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
#: libSQL embeds SQLite's engine: it is held to SQLite's target.
TARGETS = {"sqlite": 500.0, "libsql": 500.0, "postgresql x4": 2000.0}


async def prepare(url: str, schema: str | None, tenants: int) -> None:
    engine = create_engine(url, pg_schema=schema)
    async with engine.begin() as conn:
        if schema:
            await conn.execute(text(f'CREATE SCHEMA IF NOT EXISTS "{schema}"'))
        await conn.run_sync(Base.metadata.create_all)
        now = utcnow()
        ids = [uuid.uuid4().hex for _ in range(tenants)]
        for start in range(0, tenants, 1000):
            chunk = ids[start : start + 1000]
            await conn.execute(
                insert(Tenant), [{"id": i, "external_id": i, "plan": "pro", "region": "iad"} for i in chunk]
            )
            await conn.execute(
                insert(ReconcileItem),
                [
                    {
                        "tenant_id": i,
                        "due_at": now,
                        "priority": 0,
                        "marked_at": now,
                        "requeue": False,
                        "attempts": 0,
                        "lease_generation": 0,
                    }
                    for i in chunk
                ],
            )
    await engine.dispose()


async def drain(url: str, schema: str | None, batch: int, owner: str, ready: Any, go: Any) -> int:
    """Claim and finish until nothing is due; returns how many tenants this worker handled."""
    db = Database(create_engine(url, pg_schema=schema, pool_size=4))
    queue = ReconcileQueue(db)
    await queue.stats()  # connect before the clock starts
    ready.put(owner)
    await asyncio.get_running_loop().run_in_executor(None, go.wait)
    handled = 0
    try:
        while True:
            claims = await queue.claim(owner, limit=batch)
            if not claims:
                return handled
            for claim in claims:
                await queue.finish(claim)
            handled += len(claims)
    finally:
        await db.dispose()


def _drain_process(
    url: str, schema: str | None, batch: int, owner: str, ready: Any, go: Any, out: Any
) -> None:
    out.put(asyncio.run(drain(url, schema, batch, owner, ready, go)))


def run_workers(url: str, schema: str | None, batch: int, workers: int) -> tuple[int, float]:
    """Start ``workers`` processes, time them from when all are connected to when all are done."""
    ctx = multiprocessing.get_context("spawn")
    ready, results, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    procs = [
        ctx.Process(target=_drain_process, args=(url, schema, batch, f"w{i}", ready, go, results))
        for i in range(workers)
    ]
    for proc in procs:
        proc.start()
    for _ in procs:
        ready.get()
    start = time.perf_counter()
    go.set()
    handled = sum(results.get() for _ in procs)
    elapsed = time.perf_counter() - start
    for proc in procs:
        proc.join()
    return handled, elapsed


def report(label: str, handled: int, elapsed: float, tenants: int) -> None:
    rate = handled / elapsed
    target = TARGETS.get(label)
    verdict = (
        "" if target is None else f"   target >= {target:,.0f}/s: {'met' if rate >= target else 'MISSED'}"
    )
    print(f"{label:<26} {handled:>6} claims+finishes in {elapsed:6.2f} s = {rate:>8,.0f}/s{verdict}")
    assert handled == tenants, f"{label}: {handled} != {tenants}"


async def pg_drop(url: str, schema: str) -> None:
    engine = create_engine(url)
    async with engine.begin() as conn:
        await conn.execute(text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
    await engine.dispose()


def bench_procrastinate(url: str, tenants: int, workers: int) -> None:
    try:
        import procrastinate  # noqa: F401
    except ImportError:
        print("procrastinate              not installed (pip install -e '.[bench]'): skipped")
        return
    schema = f"bench_pq_{uuid.uuid4().hex[:8]}"
    conninfo = url.replace("postgresql+asyncpg://", "postgresql://")
    asyncio.run(_procrastinate_setup(conninfo, schema, tenants))
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_procrastinate_worker, args=(conninfo, schema)) for _ in range(workers)]
    start = time.perf_counter()
    for proc in procs:
        proc.start()
    for proc in procs:
        proc.join()
    elapsed = time.perf_counter() - start
    done = asyncio.run(_procrastinate_count(conninfo, schema))
    rate = done / elapsed
    print(
        f"{'procrastinate x' + str(workers):<26} {done:>6} jobs (fetch+finish)  in {elapsed:6.2f} s = {rate:>8,.0f}/s"
    )
    asyncio.run(pg_drop(url, schema))


def _procrastinate_app(conninfo: str, schema: str):  # type: ignore[no-untyped-def]
    import procrastinate

    connector = procrastinate.PsycopgConnector(
        conninfo=conninfo, kwargs={"options": f"-c search_path={schema}"}
    )
    app = procrastinate.App(connector=connector)

    @app.task(name="reconcile", queue="reconcile")
    async def reconcile(tenant_id: str) -> None:
        return None

    return app, reconcile


async def _procrastinate_setup(conninfo: str, schema: str, tenants: int) -> None:
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo, autocommit=True) as conn:
        await conn.execute(f'CREATE SCHEMA "{schema}"')
    app, reconcile = _procrastinate_app(conninfo, schema)
    async with app.open_async():
        await app.schema_manager.apply_schema_async()
        ids = [uuid.uuid4().hex for _ in range(tenants)]
        for start in range(0, tenants, 1000):
            await reconcile.batch_defer_async(*({"tenant_id": i} for i in ids[start : start + 1000]))


def _procrastinate_worker(conninfo: str, schema: str) -> None:
    async def go() -> None:
        app, _ = _procrastinate_app(conninfo, schema)
        async with app.open_async():
            await app.run_worker_async(
                queues=["reconcile"], concurrency=16, wait=False, install_signal_handlers=False
            )

    asyncio.run(go())


async def _procrastinate_count(conninfo: str, schema: str) -> int:
    import psycopg

    async with await psycopg.AsyncConnection.connect(conninfo, options=f"-c search_path={schema}") as conn:
        cur = await conn.execute("SELECT count(*) FROM procrastinate_jobs WHERE status = 'succeeded'")
        row = await cur.fetchone()
        return int(row[0]) if row else 0


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", type=int, default=5000)
    parser.add_argument(
        "--batch", type=int, default=16, help="Tenants claimed per claim (a worker's free slots)."
    )
    parser.add_argument("--postgres", default=POSTGRES)
    args = parser.parse_args()
    print(f"reconcile queue: {args.tenants} due tenants, claims of up to {args.batch}")

    # libSQL x2: two processes sharing one local file (they queue on its write lock).
    for backend, workers in (("sqlite", 1), ("libsql", 1), ("libsql", 2)):
        with tempfile.TemporaryDirectory() as tmp:
            url = f"{backend}:///{Path(tmp) / 'bench.db'}"
            asyncio.run(prepare(url, None, args.tenants))
            handled, elapsed = run_workers(url, None, args.batch, workers)
            report(backend if workers == 1 else f"{backend} x{workers}", handled, elapsed, args.tenants)

    for workers in (1, 4):
        schema = f"bench_q_{uuid.uuid4().hex[:8]}"
        asyncio.run(prepare(args.postgres, schema, args.tenants))
        try:
            handled, elapsed = run_workers(args.postgres, schema, args.batch, workers)
            report(f"postgresql x{workers}", handled, elapsed, args.tenants)
        finally:
            asyncio.run(pg_drop(args.postgres, schema))
    bench_procrastinate(args.postgres, args.tenants, 4)


if __name__ == "__main__":
    main()
