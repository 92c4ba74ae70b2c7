"""The fault drill (seeded): 300 tenants, the Fly emulator over HTTP with faults (10% 5xx, 5% 429,
5% ambiguous creates, random latency), three ``controlplane worker`` processes on PostgreSQL, one
SIGKILLed every 3 s (25 times) and restarted. Every tenant converges, with exactly one machine, no
orphan app or volume, no plaintext key in the database, the logs or any machine's config, and every
lifecycle transition audited."""

from __future__ import annotations

import asyncio
import base64
import random
import signal
import sys
import time
import uuid
from pathlib import Path

import pytest
from sqlalchemy import select, text

from controlplane.db import migrate
from controlplane.db.models import AuditLog, FlyResources, Tenant
from controlplane.db.session import Database
from controlplane.enums import LifecycleState
from tests.support.db import POSTGRES_URL, pg_admin
from tests.support.fleet import emulator, fake_key, seed_tenant, worker_env

TENANTS = 300
WORKERS = 3
SEED = 20261202
FAULTS = "5xx=0.1,429=0.05,ambiguous_create=0.05,latency=0.2:300ms"
SPEED = 20.0
# Kills stop after this many so that convergence is judged on a machine of any speed: on a loaded
# machine a worker needs seconds just to start, and an endless kill every 3 s starves the fleet.
MAX_KILLS = 25


@pytest.fixture
async def drill_database() -> str:
    name = f"cp_drill_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    url = POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def drill_env(database_url: str, fly_url: str) -> dict[str, str]:
    return worker_env(
        database_url,
        fly_url,
        CP_FLY_RATE_LIMIT_SCALE=str(SPEED / 2),  # the emulator runs 20x faster than real time
        CP_WORKER_CONCURRENCY="16",
        CP_WORKER_LEASE_SECONDS="10",
        CP_RESYNC_INTERVAL_SECONDS="5",
        CP_FULL_RESYNC_HOURS="0",
        CP_RECONCILE_WAIT_SECONDS="20",
        CP_LOG_LEVEL="INFO",
    )


async def converged(db: Database) -> int:
    async with db.read() as s:
        rows = (
            await s.execute(
                select(Tenant.lifecycle_state, Tenant.desired_rev, FlyResources.observed_rev).join(
                    FlyResources, FlyResources.tenant_id == Tenant.id
                )
            )
        ).all()
    return sum(1 for state, want, got in rows if state is LifecycleState.running and want == got)


@pytest.mark.slow
async def test_fault_drill_three_workers_one_killed_every_few_seconds(
    drill_database: str, tmp_path: Path
) -> None:
    migrate.upgrade(drill_database)
    db = Database.from_url(drill_database)
    from controlplane.vault import Vault
    from tests.support.db import TEST_RING

    vault = Vault(TEST_RING)
    keys: list[str] = []
    rng = random.Random(SEED)
    try:
        for n in range(TENANTS):
            provider = ("anthropic", "openai")[n % 2]
            tenant_id = await seed_tenant(
                db,
                vault,
                f"drill{n}@example.com",
                plan=("starter", "pro", "power")[n % 3],
                region=("iad", "ams", "fra")[n % 3],
                providers=(),
                channels=(),
            )
            from tests.support.fleet import add_key

            keys.append(await add_key(db, vault, tenant_id, provider, fake_key(provider)))

        emu = emulator(FAULTS, seed=SEED, clock_speed=SPEED, rate_limits=True)
        async with emu.serve() as fly_url:
            env = drill_env(drill_database, fly_url)
            logs: list[Path] = []
            procs: list[asyncio.subprocess.Process] = []

            async def start(slot: int) -> asyncio.subprocess.Process:
                log_path = tmp_path / f"worker-{slot}-{len(logs)}.log"
                logs.append(log_path)
                handle = log_path.open("wb")
                proc = await asyncio.create_subprocess_exec(
                    sys.executable, "-m", "controlplane", "worker", env=env, stdout=handle, stderr=handle
                )
                handle.close()
                return proc

            for slot in range(WORKERS):
                procs.append(await start(slot))
            kills = 0
            deadline = time.monotonic() + 420  # converges in ~100 s on an idle machine; slower when shared
            done = 0
            while time.monotonic() < deadline:
                await asyncio.sleep(3.0)
                done = await converged(db)
                if done >= TENANTS:
                    break
                if kills >= MAX_KILLS:
                    continue
                victim = rng.randrange(WORKERS)
                procs[victim].send_signal(signal.SIGKILL)
                await procs[victim].wait()
                kills += 1
                procs[victim] = await start(victim)
            for proc in procs:
                proc.send_signal(signal.SIGTERM)
            codes = [await asyncio.wait_for(proc.wait(), 60) for proc in procs]
            assert done == TENANTS, f"only {done}/{TENANTS} converged after {kills} kills"
            assert kills >= 3
            assert codes == [0] * WORKERS  # SIGTERM: clean exits

            # Exactly one live machine per tenant, each in the tenant's own app; no orphans.
            async with db.read() as s:
                rows = (
                    await s.execute(
                        select(
                            Tenant.id, FlyResources.app_name, FlyResources.machine_id, FlyResources.volume_id
                        ).join(FlyResources, FlyResources.tenant_id == Tenant.id)
                    )
                ).all()
                held = (
                    await s.execute(
                        text("SELECT count(*) FROM reconcile_queue WHERE lease_owner IS NOT NULL")
                    )
                ).scalar()
            assert held == 0  # SIGTERM left no lease behind
            apps = {r.app_name for r in rows}
            assert set(emu.apps) == apps  # no orphan app
            for r in rows:
                live = [m for m in emu.machines_in(r.app_name) if m.state not in ("destroyed", "destroying")]
                assert [m.id for m in live] == [r.machine_id], f"{r.app_name}: {[m.id for m in live]}"
            volumes = [
                v for v in emu.state.volumes.values() if v.state not in ("destroyed", "pending_destroy")
            ]
            assert sorted(v.id for v in volumes) == sorted(r.volume_id for r in rows)  # no orphan volume
            fired = emu.faults_fired
            kinds = {kind for _, kind in fired}
            assert "429" in kinds and kinds & {"500", "502", "503"}, kinds
            assert any(op == "create_machine" and kind.startswith("ambiguous") for op, kind in fired)
            print(f"drill: {kills} kills, {len(fired)} faults fired")

            # No plaintext key in the database, the workers' logs or any machine's config.
            async with db.read() as s:
                dump = []
                for table in (
                    "tenants",
                    "secrets",
                    "provider_keys",
                    "fly_resources",
                    "reconcile_queue",
                    "audit_log",
                ):
                    for row in (await s.execute(text(f"SELECT * FROM {table}"))).all():
                        dump.append(" ".join(str(v) for v in row))
            haystack_db = "\n".join(dump)
            haystack_logs = "\n".join(p.read_text(errors="replace") for p in logs)
            configs = []
            for machine in emu.machines.values():
                configs.append(str(machine.config.get("env")))
                for f in machine.config.get("files") or []:
                    configs.append(base64.b64decode(f.get("raw_value", "")).decode(errors="replace"))
            haystack_configs = "\n".join(configs)
            for key in keys:
                assert key not in haystack_db
                assert key not in haystack_logs
                assert key not in haystack_configs

            # Every lifecycle transition audited: each tenant went pending -> provisioning -> running.
            async with db.read() as s:
                audited = (
                    await s.execute(
                        select(AuditLog.tenant_id, AuditLog.after).where(AuditLog.action == "lifecycle")
                    )
                ).all()
            reached: dict[str, set[str]] = {}
            for tenant_id, after in audited:
                reached.setdefault(tenant_id, set()).add(after["lifecycle_state"])
            assert len(reached) == TENANTS
            assert all({"provisioning", "running"} <= states for states in reached.values())
    finally:
        await db.dispose()
