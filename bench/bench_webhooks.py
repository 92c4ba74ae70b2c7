"""Stripe webhook ingestion benchmark: deliveries per second and p50/p99 latency from request to
acknowledged commit, on loopback, on SQLite and PostgreSQL, for unique events and for every event
delivered five times (concurrently, as Stripe's retries and duplicates arrive).

    .venv/bin/python bench/bench_webhooks.py [--events 1000] [--concurrency 1,8] [--postgres URL]

The webhook route (stripe-python's signature check, the event insert, the sync-queue mark and the
audit row in one transaction) runs under uvicorn in its own process, so client and server do not
share an event loop. Target: p99 < 50 ms on PostgreSQL on the development machine.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
from sqlalchemy import func, select, text

from controlplane.billing.deliveries import WebhookDelivery, make_event, sign_delivery
from controlplane.billing.webhook_route import PATH
from controlplane.db.models import Base, BillingSyncItem, StripeEvent
from controlplane.db.session import Database, create_engine

REPO = Path(__file__).resolve().parents[1]
SECRET = "whsec_" + "bench0webhook0secret0000000000"
TARGET_P99_MS = 50.0


def serve(url: str, schema: str | None, port: int) -> None:
    """The server process: the webhook router on a bare FastAPI app."""
    import logging

    import uvicorn
    from fastapi import FastAPI

    from controlplane.billing.webhook import WebhookIngestor
    from controlplane.billing.webhook_route import webhook_router

    logging.disable(logging.INFO)  # per-request log lines are not what is measured
    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))
    db = Database(create_engine(url, pg_schema=schema, pool_size=10))
    app = FastAPI()
    app.include_router(webhook_router(WebhookIngestor(db, [SECRET])))
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=port,
        log_level="warning",
        log_config=None,
        access_log=False,
        lifespan="off",
    )


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _deliveries(unique: int, copies: int, subscriptions: int) -> list[WebhookDelivery]:
    kinds = ("invoice.payment_failed", "invoice.paid", "customer.subscription.updated")
    signed = []
    for n in range(unique):
        sub = f"sub_bench{n % subscriptions:06d}"
        kind = kinds[n % len(kinds)]
        obj = (
            {"id": sub, "object": "subscription", "status": "active", "customer": f"cus_{n % subscriptions}"}
            if kind.startswith("customer.")
            else {"id": f"in_{uuid.uuid4().hex[:20]}", "object": "invoice", "subscription": sub}
        )
        signed.append(sign_delivery(make_event(kind, obj), SECRET))
    rows = [d for d in signed for _ in range(copies)]
    random.Random(7).shuffle(rows)  # duplicates of one event arrive interleaved and concurrently
    return rows


async def _run(
    base_url: str, deliveries: list[WebhookDelivery], concurrency: int
) -> tuple[float, list[float], int]:
    latencies: list[float] = []
    duplicates = 0
    queue: asyncio.Queue[WebhookDelivery] = asyncio.Queue()
    for d in deliveries:
        queue.put_nowait(d)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)

    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:

        async def worker() -> None:
            nonlocal duplicates
            while not queue.empty():
                d = queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.post(PATH, content=d.body, headers=d.headers)
                latencies.append((time.perf_counter() - t0) * 1000)
                if response.status_code != 200:
                    raise RuntimeError(f"HTTP {response.status_code}: {response.text[:200]}")
                duplicates += bool(response.json()["duplicate"])

        await asyncio.gather(*(client.get("/warm-up") for _ in range(concurrency)))  # connections up
        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        elapsed = time.perf_counter() - start
    return elapsed, latencies, duplicates


async def _baseline(label: str, base: str, db: Database) -> None:
    """What the host gives anything right now: an HTTP round trip to the same server (a 404, no
    database) and an empty write transaction from this process, one at a time, p50/p99 of 200."""
    http: list[float] = []
    async with httpx.AsyncClient(base_url=base) as client:
        for _ in range(200):
            t0 = time.perf_counter()
            await client.get("/baseline")
            http.append((time.perf_counter() - t0) * 1000)
    tx: list[float] = []
    for _ in range(200):
        t0 = time.perf_counter()
        async with db.transaction() as session:
            await session.execute(text("SELECT 1"))
        tx.append((time.perf_counter() - t0) * 1000)
    print(
        f"webhooks {label:<10} host baseline: HTTP 404 p50 {_pct(http, 50):.1f} / p99 {_pct(http, 99):.1f} ms, "
        f"empty write transaction p50 {_pct(tx, 50):.1f} / p99 {_pct(tx, 99):.1f} ms  (load average "
        f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
    )


def _pct(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(p / 100 * (len(ordered) - 1))))]


async def bench_backend(
    label: str, url: str, schema: str | None, events: int, concurrency: tuple[int, ...]
) -> None:
    db = Database(create_engine(url, pg_schema=schema))
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    args = [sys.executable, __file__, "--serve", url, "--port", str(port)] + (
        ["--schema", schema] if schema else []
    )
    server = await asyncio.create_subprocess_exec(*args, env=env, stdout=subprocess.DEVNULL)
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                async with httpx.AsyncClient() as probe:
                    await probe.get(base + "/")
                break
            except httpx.TransportError:
                await asyncio.sleep(0.05)
        subscriptions = max(1, events // 4)
        stored_expected = 0
        warm = _deliveries(100, 1, subscriptions)  # connection pools, statement caches: not measured
        await _run(base, warm, concurrency[-1])
        stored_expected += len(warm)
        await _baseline(label, base, db)
        for level in concurrency:
            for name, unique, copies in (("unique events", events, 1), ("5x duplicated", events // 5, 5)):
                deliveries = _deliveries(unique, copies, subscriptions)
                elapsed, latencies, duplicates = await _run(base, deliveries, level)
                stored_expected += unique
                p50, p99 = _pct(latencies, 50), _pct(latencies, 99)
                target = (
                    f"   target p99 < {TARGET_P99_MS:.0f} ms: {'met' if p99 < TARGET_P99_MS else 'MISSED'}"
                    if label == "postgresql"
                    else ""
                )
                print(
                    f"webhooks {label:<10} {level:>2} at once  {name:<14} {len(deliveries):>5} deliveries  "
                    f"{len(deliveries) / elapsed:>7,.0f} /s   p50 {p50:6.1f} ms   p99 {p99:6.1f} ms   "
                    f"duplicates acknowledged {duplicates:>4}{target}"
                )
                assert duplicates == len(deliveries) - unique, "a duplicate was stored twice"
        async with db.transaction() as s:
            stored = await s.scalar(select(func.count()).select_from(StripeEvent))
            queued = await s.scalar(select(func.count()).select_from(BillingSyncItem))
        assert stored == stored_expected and queued == subscriptions, (stored, queued)
    finally:
        server.terminate()
        await asyncio.wait_for(server.wait(), timeout=10)
        await db.dispose()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=1000)
    parser.add_argument(
        "--concurrency", default="1,8", help="deliveries in flight at once, comma-separated levels"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    levels = tuple(int(level) for level in args.concurrency.split(","))
    with tempfile.TemporaryDirectory() as tmp:
        await bench_backend("sqlite", f"sqlite:///{tmp}/bench.db", None, args.events, levels)
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.postgres)
    try:
        async with admin.begin() as conn:
            await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    except Exception as exc:
        print(f"webhooks postgresql skipped: {type(exc).__name__} (is PostgreSQL running?)")
        await admin.dispose()
        return
    try:
        await bench_backend("postgresql", args.postgres, schema, args.events, levels)
    finally:
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--serve":
        port = int(sys.argv[sys.argv.index("--port") + 1])
        schema = sys.argv[sys.argv.index("--schema") + 1] if "--schema" in sys.argv else None
        serve(sys.argv[2], schema, port)
    else:
        asyncio.run(main())
