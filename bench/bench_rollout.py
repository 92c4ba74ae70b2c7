"""Image rollout benchmark: the real worker (reconciler + rollout driver) rolls N emulated machines to
a new image with K updates in flight, beside the ideal N x U / K (target: within 1.2x).

    .venv/bin/python bench/bench_rollout.py [--machines 10000] [--k 50] [--batch 1000] [--speed 4]

U, the update time of one machine, is measured first the same way: a rollout of a few machines one at
a time (K = 1), each item's time from its desired-image change to the driver seeing it started on the
new image with /readyz 200 (so U holds the reconcile, the emulator's replace and gateway boot of the
``realistic`` profile, and the driver's checks). Then the whole fleet rolls in batches of ``--batch``
with ``--max-in-flight K``; the emulator's own record gives the most updates that were in flight at
once (must be <= K) and proves no machine was updated twice.

The fleet is seeded straight into the database and the emulator as the reconciler leaves a running
tenant (app, app secrets with their digests recorded, volume, a started machine on the old image),
so setting up 10,000 machines takes seconds instead of a full provisioning. Times are wall seconds;
the emulator runs ``--speed`` times faster than real time. The load average is printed beside the
figures: on a shared machine the worker's CPU, not the design, sets the pace (one process, one core).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from sqlalchemy import insert, select, text

from agents_config import TenantSpec, load_catalog, render_openclaw_config
from agents_config.machine_config import VOLUME_NAME
from controlplane.db import rollouts as store
from controlplane.db.models import (
    Base,
    FlyResources,
    ProviderKey,
    Rollout,
    RolloutItem,
    Secret,
    Tenant,
    utcnow,
)
from controlplane.db.session import Database, create_engine
from controlplane.enums import KeyStatus, KeyVerdict, LifecycleState, RolloutState
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from controlplane.fly.emulator import apps as app_ops
from controlplane.fly.emulator import machines as machine_ops
from controlplane.fly.emulator import volumes as volume_ops
from controlplane.fly.emulator.state import AppRecord
from controlplane.logging import configure_logging
from controlplane.secrets_store import GATEWAY_TOKEN_SECRET, provider_secret_name
from controlplane.settings import load_settings
from controlplane.vault import Vault
from workers.process import WorkerProcess

KEYS = "k1:" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # 32 bytes of 0x01: a throw-away bench ring
TOKEN = "bench-token-" + "0" * 20
ORG = "bench-org"
PLAN = "pro"
OLD = "ghcr.io/openclaw/openclaw:2026.9.6"
NEW = "ghcr.io/openclaw/openclaw:2026.10.1"
PREFIX = "oc-"


def secret_env_names(catalog: Any) -> list[tuple[str, str]]:
    """(env var, kind) of the app secrets a pro tenant with an Anthropic key gets."""
    spec = TenantSpec(
        tenant_id="0" * 32,
        app_name=PREFIX + "0" * 32,
        plan=PLAN,
        byok_providers=("anthropic",),
        region="iad",
        image=OLD,
        desired_rev=1,
    )
    return [(env.env_var, env.kind) for env in render_openclaw_config(spec, catalog).secret_env]


async def seed(db: Database, vault: Vault, emu: FlyEmulator, catalog: Any, n: int, cohort: str) -> None:
    """``n`` running pro tenants on the old image, as the reconciler leaves them."""
    now = utcnow()
    world = emu.world
    size = catalog.plan(PLAN).machine.volume_size_gb
    names = secret_env_names(catalog)
    key = "sk-ant-api03-" + "b" * 93 + "AA"
    rows: dict[Any, list[dict[str, Any]]] = {Tenant: [], Secret: [], ProviderKey: [], FlyResources: []}
    for i in range(n):
        tid = uuid.uuid4().hex
        app = PREFIX + tid
        token = uuid.uuid4().hex * 2
        plain = {env: (token if kind == "gateway" else key) for env, kind in names}
        rows[Tenant].append(
            {
                "id": tid,
                "external_id": f"{cohort}{i}@example.com",
                "plan": PLAN,
                "region": "iad",
                "desired_rev": 1,
                "lifecycle_state": LifecycleState.running,
                "cohort": cohort,
                "created_at": now,
                "updated_at": now,
            }
        )
        for name, value in ((provider_secret_name("anthropic"), key), (GATEWAY_TOKEN_SECRET, token)):
            sid = uuid.uuid4().hex
            rows[Secret].append(
                {
                    "id": sid,
                    "tenant_id": tid,
                    "name": name,
                    "key_id": vault.primary_key_id,
                    "value": vault.encrypt(value, tenant_id=tid, name=name),
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
            )
            if name != GATEWAY_TOKEN_SECRET:
                rows[ProviderKey].append(
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
        world.state.apps[app] = AppRecord(  # as apps.create_app records it, without rendering the answer
            name=app,
            org=ORG,
            network=app,
            id=world.ids.app_id(),
            internal_numeric_id=world.ids.numeric(),
            created_wall=world.wall(),
            created_mono=world.now(),
        )
        pushed = app_ops.set_secrets(world, app, {"values": plain})
        volume = volume_ops.create_volume(world, app, {"name": VOLUME_NAME, "region": "iad", "size_gb": size})
        machine = machine_ops.create_machine(
            world,
            app,
            {
                "region": "iad",
                "config": {
                    "image": OLD,
                    "guest": {"cpu_kind": "shared", "cpus": 1, "memory_mb": 1024},
                    "mounts": [{"volume": volume["id"], "path": "/data"}],
                },
            },
        )
        rows[FlyResources].append(
            {
                "tenant_id": tid,
                "app_name": app,
                "volume_id": volume["id"],
                "volume_size_gb": size,
                "machine_id": machine.id,
                "instance_id": machine.instance_id,
                "observed_rev": 1,
                "config_hash": "seeded",
                "secrets_version": pushed["version"],
                "secrets_digest": vault.fingerprint("\n".join(f"{k}={v}" for k, v in sorted(plain.items()))),
                "secret_digests": {s["name"]: s["digest"] for s in pushed["secrets"]},
                "observed_state": "started",
                "image_ref": OLD,
                "updated_at": now,
            }
        )
    async with db.engine.begin() as conn:
        for table in (Tenant, Secret, ProviderKey, FlyResources):
            for start in range(0, len(rows[table]), 1000):
                await conn.execute(insert(table), rows[table][start : start + 1000])


async def roll(process: WorkerProcess, db: Database, cohort: str, batch: int, k: int) -> tuple[float, str]:
    view = await store.start_rollout(
        db, image=NEW, default_image=OLD, batch_size=batch, max_in_flight=k, actor="cli:bench", cohort=cohort
    )
    started = time.perf_counter()
    while True:
        await asyncio.sleep(0.5)
        async with db.read() as s:
            state = await s.scalar(select(Rollout.state).where(Rollout.id == view.id))
        if state is not RolloutState.running:
            return time.perf_counter() - started, view.id


async def item_seconds(db: Database, rollout_id: str) -> list[float]:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(RolloutItem.started_at, RolloutItem.finished_at).where(
                    RolloutItem.rollout_id == rollout_id
                )
            )
        ).all()
    return [(done - began).total_seconds() for began, done in rows if began and done]


async def bench(
    n: int, k: int, batch: int, speed: float, probes: int, postgres: str | None
) -> dict[str, float]:
    configure_logging(level="WARNING", fmt="json")
    catalog = load_catalog()
    profile = LatencyProfile.realistic().with_(
        list_consistency=0.0, secrets_visibility=0.0, api_latency=0.0, destroyed_retention=1.0
    )
    emu = FlyEmulator(EmulatorOptions(latency=profile, seed=7, org=ORG, token=TOKEN, clock_speed=speed))
    with tempfile.TemporaryDirectory() as tmp:
        schema = None
        if postgres is not None:
            url, schema = postgres, f"bench_{uuid.uuid4().hex[:10]}"
            admin = create_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
            await admin.dispose()
        else:
            url = f"sqlite:///{Path(tmp) / 'bench.db'}"
        db = Database(create_engine(url, pg_schema=schema))
        async with db.engine.begin() as conn:
            await conn.run_sync(Base.metadata.create_all)
        vault = Vault([("k1", bytes([1]) * 32)])
        t0 = time.perf_counter()
        await seed(db, vault, emu, catalog, probes, "probe")
        await seed(db, vault, emu, catalog, n, "fleet")
        emu.advance(60.0)  # every seeded machine started, its gateway booted
        print(f"seeded {n:,} + {probes} running tenants in {time.perf_counter() - t0:.1f} s", flush=True)
        settings = load_settings(
            database_url=url,
            vault_keys=KEYS,
            fly_api_token=TOKEN,
            fly_api_url="http://fly-emulator",
            fly_org=ORG,
            gateway_url_template="http://fly-emulator/gateway/{app}",
            openclaw_image=OLD,
            worker_metrics_port=0,
            resync_interval_seconds=3600,
            full_resync_hours=0,
            fly_max_concurrency=256,
            rollout_tick_seconds=0.25,
            rollout_health_timeout_seconds=600,
        )
        async with WorkerProcess.open(
            settings,
            fly_transport=emu.transport(),
            probe_transport=emu.transport(),
            fly_clock=emu.client_clock(jump=False),
            concurrency=k + 8,
            database=db,
            poll_seconds=0.5,
            reconciler_overrides={"probe_interval_seconds": 0.5},
        ) as process:
            stop = asyncio.Event()
            assert process.rollouts is not None
            tasks = [
                asyncio.create_task(process.worker.run(stop)),
                asyncio.create_task(process.rollouts.run(stop)),
            ]
            try:
                _, probe_id = await roll(process, db, "probe", 1, 1)
                per_item = await item_seconds(db, probe_id)
                update = sum(per_item) / len(per_item)
                print(f"U = {update:.2f} s wall per update alone (mean of {len(per_item)}, K=1)", flush=True)
                since = emu.clock.now()
                load_before = os.getloadavg()
                cpu_before = time.process_time()
                elapsed, fleet_id = await roll(process, db, "fleet", batch, k)
                cpu = time.process_time() - cpu_before
                load_after = os.getloadavg()
                status = await store.read_status(db, fleet_id)
            finally:
                stop.set()
                await asyncio.gather(*tasks)
        records = [r for r in emu.updates if r.started_mono >= since]
        await db.dispose()
        if schema is not None:
            admin = create_engine(url)
            async with admin.begin() as conn:
                await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
            await admin.dispose()
    touched = Counter(r.machine_id for r in records)
    return {
        "n": n,
        "done": status.done,
        "failed": status.failed_count,
        "elapsed": elapsed,
        "update": update,
        "ideal": n * update / k,
        "peak": emu.max_concurrent_updates(since_mono=since),
        "updates": len(records),
        "twice": sum(1 for c in touched.values() if c > 1),
        "cpu": cpu,
        "load_before": load_before[0],
        "load_after": load_after[0],
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--k", type=int, default=50, help="--max-in-flight")
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--speed", type=float, default=4.0, help="Emulated seconds per real second.")
    parser.add_argument("--probes", type=int, default=5, help="Machines rolled one at a time to measure U.")
    parser.add_argument(
        "--database",
        choices=("postgresql", "sqlite"),
        default="postgresql",
        help="PostgreSQL (production; CP_TEST_POSTGRES_URL) or a temporary SQLite file.",
    )
    args = parser.parse_args()
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)")
    postgres = (
        os.environ.get("CP_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")
        if args.database == "postgresql"
        else None
    )
    r = asyncio.run(bench(args.machines, args.k, args.batch, args.speed, args.probes, postgres))
    ratio = r["elapsed"] / r["ideal"]
    print(
        f"\n{int(r['n']):,} machines on {args.database}, batches of {args.batch}, K={args.k}, emulator x{args.speed:g} "
        f"(realistic profile: replace 4 s + gateway boot 8 s emulated)"
    )
    print(f"  rolled          {int(r['done']):,} done, {int(r['failed'])} failed")
    print(
        f"  time            {r['elapsed']:,.1f} s wall   ideal N x U / K = {r['ideal']:,.1f} s   "
        f"actual/ideal {ratio:.2f}   target <= 1.2: {'met' if ratio <= 1.2 else 'MISSED'}"
    )
    print(
        f"  in flight       at most {int(r['peak'])} updates at once (emulator's record; K={args.k})   "
        f"{int(r['updates']):,} updates, {int(r['twice'])} machines updated twice"
    )
    per = r["cpu"] / max(1, r["n"])
    print(
        f"  CPU             {r['cpu']:,.0f} s for the worker and the in-process emulator together, "
        f"{per * 1000:.0f} ms per machine: K={args.k} updates in flight need {args.k * per / r['update']:.2f} "
        "of a core (when the process gets less, CPU and not the rollout sets the pace)"
    )
    print(f"  load average    {r['load_before']:.2f} at the start, {r['load_after']:.2f} at the end")


if __name__ == "__main__":
    main()
