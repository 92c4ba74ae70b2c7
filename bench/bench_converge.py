"""Fleet convergence benchmark: the real worker process converging N new tenants on the in-process Fly
emulator with Fly's rate limits on, then a resync of the unchanged fleet.

    .venv/bin/python bench/bench_converge.py [--tenants 1000,10000] [--speed 25] [--concurrency 32]

Time is the emulator's (emulated seconds: Fly-like latencies from the ``realistic`` profile, run
``--speed`` times faster than real time so 10,000 tenants fit in minutes); CPU seconds and memory are
the process's own. Printed beside the targets (issue 9):

* ideal / actual >= 0.75 at 10,000 tenants. The ideal is what the emulator's latencies and Fly's
  published rate limits allow: ``max(N x C / K, N / app_create_rate)`` where C is the critical path of
  one tenant alone (measured first), K the worker's concurrency, and app creates share one org-wide
  bucket of 1/s (the emulator's conservative reading of Fly's limits; the client paces at 90% of it);
* at most 10 Fly API calls per new tenant;
* a resync of the unchanged fleet in at most 12 Fly API calls (for 10,000 tenants);
* peak RSS under 200 MB at 10,000 tenants (the emulator's state lives in the same process, so the
  figure includes it).
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert

from controlplane.db.models import Base, ProviderKey, ReconcileItem, Secret, Tenant, utcnow
from controlplane.db.session import Database, create_engine
from controlplane.enums import KeyStatus, KeyVerdict
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from controlplane.fly.emulator.ratelimit import ACTION
from controlplane.logging import configure_logging
from controlplane.secrets_store import provider_secret_name
from controlplane.settings import load_settings
from controlplane.vault import Vault
from workers.process import WorkerProcess
from workers.resync import resync_once

KEYS = "k1:" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # 32 bytes of 0x01: a throw-away bench ring
TOKEN = "bench-token-" + "0" * 20
ORG = "bench-org"
PLANS = ("starter", "pro", "power")


async def seed(db: Database, vault: Vault, n: int) -> None:
    now = utcnow()
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    rows_t, rows_s, rows_k, rows_q = [], [], [], []
    for i in range(n):
        tid = uuid.uuid4().hex
        sid = uuid.uuid4().hex
        key = "sk-ant-api03-" + uuid.uuid4().hex * 3 + "AA"
        name = provider_secret_name("anthropic")
        rows_t.append(
            {
                "id": tid,
                "external_id": f"bench{i}@example.com",
                "plan": PLANS[i % 3],
                "region": "iad",
                "desired_rev": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        rows_s.append(
            {
                "id": sid,
                "tenant_id": tid,
                "name": name,
                "key_id": vault.primary_key_id,
                "value": vault.encrypt(key, tenant_id=tid, name=name),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
        rows_k.append(
            {
                "id": uuid.uuid4().hex,
                "tenant_id": tid,
                "provider": "anthropic",
                "secret_id": sid,
                "last4": key[-4:],
                "fingerprint": vault.fingerprint(key),
                "verdict": KeyVerdict.ok,
                "status": KeyStatus.usable,
                "consecutive_failures": 0,
                "created_at": now,
                "updated_at": now,
            }
        )
        rows_q.append(
            {
                "tenant_id": tid,
                "due_at": now,
                "priority": 1,
                "marked_at": now,
                "requeue": False,
                "attempts": 0,
                "lease_generation": 0,
                "reason": "bench",
            }
        )
    async with db.engine.begin() as conn:
        for table, rows in (
            (Tenant, rows_t),
            (Secret, rows_s),
            (ProviderKey, rows_k),
            (ReconcileItem, rows_q),
        ):
            for start in range(0, n, 1000):
                await conn.execute(insert(table), rows[start : start + 1000])


def rusage() -> tuple[float, float]:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024.0  # CPU s, peak RSS MB (Linux: KB)


async def converge(n: int, speed: float, concurrency: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(create_engine(url))
        vault = Vault([("k1", bytes([1]) * 32)])  # the ring of KEYS
        await seed(db, vault, n)
        emu = FlyEmulator(
            EmulatorOptions(
                latency=LatencyProfile.realistic(), seed=7, org=ORG, token=TOKEN, clock_speed=speed
            )
        )
        settings = load_settings(
            database_url=url,
            vault_keys=KEYS,
            fly_api_token=TOKEN,
            fly_api_url="http://fly-emulator",
            fly_org=ORG,
            gateway_url_template="http://fly-emulator/gateway/{app}",
            worker_metrics_port=0,
            resync_interval_seconds=3600,
            full_resync_hours=0,
            fly_max_concurrency=256,
        )
        async with WorkerProcess.open(
            settings,
            fly_transport=emu.transport(),
            probe_transport=emu.transport(),
            fly_clock=emu.client_clock(jump=False),
            concurrency=concurrency,
            database=db,
            poll_seconds=0.05,
        ) as process:
            cpu0, _ = rusage()
            wall0, emu0 = time.perf_counter(), emu.clock.now()
            await process.worker.run(asyncio.Event(), until_idle=True, idle_horizon_seconds=2.0)
            emu_elapsed, wall = emu.clock.now() - emu0, time.perf_counter() - wall0
            cpu1, rss = rusage()
            calls_new = process.fly_calls.total()
            live = sum(1 for m in emu.machines.values() if m.state == "started")
            before = process.fly_calls.total()
            report = await resync_once(db, process.fly, process.catalog, now=utcnow())
            resync_calls = process.fly_calls.total() - before
        await db.dispose()
    return {
        "tenants": n,
        "started": live,
        "emulated_s": emu_elapsed,
        "wall_s": wall,
        "cpu_s": cpu1 - cpu0,
        "rss_mb": rss,
        "calls_per_tenant": calls_new / n,
        "resync_calls": resync_calls,
        "resync_marked": report.marked_total,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tenants", default="1000,10000")
    parser.add_argument("--speed", type=float, default=25.0, help="Emulated seconds per real second.")
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    # Warnings only: the worker's per-reconcile INFO/DEBUG lines would be measured as its work.
    configure_logging("WARNING")
    one = asyncio.run(converge(1, args.speed, 1))
    critical = one["emulated_s"]
    print(
        f"critical path of one tenant alone: {critical:.1f} emulated s, {one['calls_per_tenant']:.0f} Fly calls"
    )
    app_rate = ACTION.rate  # org-wide app creates (emulator); the client paces at 90% of it
    for n in (int(x) for x in args.tenants.split(",")):
        r = asyncio.run(converge(n, args.speed, args.concurrency))
        ideal = max(critical, n * critical / args.concurrency, n / app_rate)
        ratio = ideal / r["emulated_s"]
        print(
            f"\n{n:,} new tenants (concurrency {args.concurrency}, emulator x{args.speed:g}): {int(r['started']):,} started"
        )
        print(
            f"  time            {r['emulated_s']:>10,.0f} emulated s   ideal {ideal:,.0f} s "
            f"(max of C={critical:.1f} s x N/K = {n * critical / args.concurrency:,.0f} s and N / app-create rate "
            f"= {n / app_rate:,.0f} s)   ideal/actual {ratio:.2f}"
            + ("   target >= 0.75: " + ("met" if ratio >= 0.75 else "MISSED") if n >= 10_000 else "")
        )
        print(f"  wall            {r['wall_s']:>10,.1f} s        worker CPU {r['cpu_s']:,.1f} s")
        print(
            f"  Fly calls       {r['calls_per_tenant']:>10.2f} per new tenant   target <= 10: "
            + ("met" if r["calls_per_tenant"] <= 10 else "MISSED")
        )
        print(
            f"  resync          {int(r['resync_calls']):>10} Fly calls for {n:,} unchanged tenants "
            f"({int(r['resync_marked'])} marked)"
            + ("   target <= 12: " + ("met" if r["resync_calls"] <= 12 else "MISSED") if n >= 10_000 else "")
        )
        print(
            f"  peak RSS        {r['rss_mb']:>10,.0f} MB (worker + in-process emulator)"
            + ("   target < 200: " + ("met" if r["rss_mb"] < 200 else "MISSED") if n >= 10_000 else "")
        )


if __name__ == "__main__":
    main()
