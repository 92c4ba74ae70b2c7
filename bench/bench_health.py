"""Health sweep benchmark: 10,000 emulated machines (8,000 running always-on agents, 2,000 sleeping
starter agents), on SQLite, in process (emulator transport for Fly's API and for the probes).

    .venv/bin/python bench/bench_health.py [--machines 10000] [--sleeping-share 0.2]

Prints, beside the issue's targets:
* Fly API calls and seconds of one sweep (the first of a process: the full listing; the next: only
  what changed) vs a naive per-machine poll (one GET per machine) of the same fleet;
* /readyz probes sent (to the agents through Fly's proxy, not to Fly's API) — running vs sleeping;
* exec introspection: calls per sweep and per hour at the default cadence, and per machine per
  hour vs Fly's per-machine limit (1 req/s, burst 3).
The machine's load average is printed too (the machine may be shared).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import httpx
import structlog
from sqlalchemy import insert

from agents_config import load_catalog
from controlplane.db.models import Base, FlyResources, Secret, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.enums import LifecycleState
from controlplane.fly import FlyClient
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator
from controlplane.fly.emulator import apps as app_ops
from controlplane.fly.emulator import machines as machine_ops
from controlplane.secrets_store import GATEWAY_TOKEN_SECRET
from controlplane.settings import load_settings
from controlplane.vault import Vault
from workers.health import HealthConfig, HealthSweeper, SweepReport
from workers.reconciler import META_MACHINE_HASH

KEYS = "k1:" + "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="  # a throw-away bench ring
TOKEN = "bench-token-" + "0" * 20
ORG = "bench-org"
IMAGE = "ghcr.io/openclaw/openclaw:2026.9.6"
TARGET_CALLS = 12
TARGET_RATIO = 500
TARGET_SECONDS = 30.0
EXEC_COMMANDS_DUE = 3  # models status, channels status, sessions.usage


async def seed(db: Database, vault: Vault, emu: FlyEmulator, machines: int, sleeping: int) -> None:
    catalog = load_catalog(None)
    now = utcnow()
    async with db.engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    tenants, fly_rows, secrets = [], [], []
    world = emu.world
    for i in range(machines):
        tid = uuid.uuid4().hex
        asleep = i < sleeping
        plan = catalog.plan("starter" if asleep else "pro")
        app = f"oc-{tid}"
        app_ops.create_app(world, {"app_name": app, "org_slug": ORG})
        record = machine_ops.create_machine(
            world,
            app,
            {
                "region": "iad",
                "config": {
                    "image": IMAGE,
                    "guest": {
                        "cpu_kind": plan.machine.cpu_kind,
                        "cpus": plan.machine.cpus,
                        "memory_mb": plan.machine.memory_mb,
                    },
                    "metadata": {META_MACHINE_HASH: "sha256:bench", "tenant_id": tid},
                },
            },
        )
        if asleep:
            machine_ops.stop_machine(world, app, record.id, {}, nonce=None)
        tenants.append(
            {
                "id": tid,
                "external_id": f"bench{i}@example.com",
                "plan": plan.id,
                "region": "iad",
                "desired_rev": 1,
                "lifecycle_state": (LifecycleState.sleeping if asleep else LifecycleState.running).value,
                "created_at": now,
                "updated_at": now,
            }
        )
        fly_rows.append(
            {
                "tenant_id": tid,
                "app_name": app,
                "machine_id": record.id,
                "observed_rev": 1,
                "config_hash": "sha256:bench",
                "image_ref": IMAGE,
                "observed_state": "stopped" if asleep else "started",
                "updated_at": now,
            }
        )
        token = uuid.uuid4().hex * 2
        secrets.append(
            {
                "id": uuid.uuid4().hex,
                "tenant_id": tid,
                "name": GATEWAY_TOKEN_SECRET,
                "key_id": vault.primary_key_id,
                "value": vault.encrypt(token, tenant_id=tid, name=GATEWAY_TOKEN_SECRET),
                "version": 1,
                "created_at": now,
                "updated_at": now,
            }
        )
    async with db.engine.begin() as conn:
        for table, rows in ((Tenant, tenants), (FlyResources, fly_rows), (Secret, secrets)):
            for start in range(0, len(rows), 1000):
                await conn.execute(insert(table), rows[start : start + 1000])


class TimedTransport(httpx.AsyncBaseTransport):
    """The in-process emulator's own CPU time, kept apart from the control plane's."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.cpu = 0.0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        started = time.process_time()
        try:
            return await self.inner.handle_async_request(request)
        finally:
            self.cpu += time.process_time() - started


async def naive_poll(fly: FlyClient, emu: FlyEmulator) -> tuple[int, float]:
    """One GET per machine, 64 at once: what a poller without the org listing would do."""
    targets = [(m.app, m.id) for m in emu.machines.values()]
    gate = asyncio.Semaphore(64)
    started = time.perf_counter()

    async def get(app: str, machine_id: str) -> None:
        async with gate:
            await fly.get_machine(app, machine_id)

    await asyncio.gather(*(get(a, m) for a, m in targets))
    return len(targets), time.perf_counter() - started


async def main(machines: int, sleeping_share: float) -> None:
    logging.disable(logging.WARNING)
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR))
    sleeping = int(machines * sleeping_share)
    running = machines - sleeping
    emu = FlyEmulator(EmulatorOptions(latency="zero", rate_limits=False, org=ORG, token=TOKEN, seed=3))
    vault = Vault.from_settings(load_settings(vault_keys=KEYS))
    defaults = HealthConfig()
    config = HealthConfig(gateway_url_template="http://fly-emulator/gateway/{app}")
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.from_url(f"sqlite:///{Path(tmp) / 'bench.db'}")
        started = time.perf_counter()
        await seed(db, vault, emu, machines, sleeping)
        seeded = time.perf_counter() - started
        print(f"seeded {machines} machines and tenants in {seeded:.1f} s", flush=True)
        fly_transport, probe_transport = TimedTransport(emu.transport()), TimedTransport(emu.transport())
        fly = FlyClient(token=TOKEN, base_url="http://fly-emulator", org=ORG, transport=fly_transport)
        probes = httpx.AsyncClient(transport=probe_transport, timeout=5.0)

        async def timed_sweep(name: str) -> tuple[SweepReport, float, float]:
            emulator_before = fly_transport.cpu + probe_transport.cpu
            cpu_before = time.process_time()
            report = await sweeper.sweep()
            cpu = time.process_time() - cpu_before
            emulated = fly_transport.cpu + probe_transport.cpu - emulator_before
            print(
                f"{name}: {report.seconds:.1f} s wall, {cpu:.1f} s CPU of which the emulator {emulated:.1f} s",
                flush=True,
            )
            return report, cpu - emulated, emulated

        sweeper = HealthSweeper(db, vault, fly, load_catalog(None), probes, config)
        try:
            first, first_cp, _ = await timed_sweep("first sweep")
            second, second_cp, _ = await timed_sweep("second sweep")
            emulator_before = fly_transport.cpu
            cpu_before = time.process_time()
            naive_calls, naive_seconds = await naive_poll(fly, emu)
            naive_cp = time.process_time() - cpu_before - (fly_transport.cpu - emulator_before)
        finally:
            await probes.aclose()
            await fly.aclose()
            await db.dispose()
    asleep_now = sum(1 for m in emu.machines.values() if m.state == "stopped")
    exec_per_hour = running * EXEC_COMMANDS_DUE * 3600 / defaults.introspect_interval_seconds
    per_machine_hour = EXEC_COMMANDS_DUE * 3600 / defaults.introspect_interval_seconds
    state_calls = [s.fly_list_calls + s.fly_event_calls for s in (first, second)]
    load = os.getloadavg()
    print(
        f"health sweep: {machines} machines ({running} running, {sleeping} sleeping); seeded in {seeded:.1f} s"
    )
    print(f"load average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} on {os.cpu_count()} cores")
    print()
    print(f"{'':44}{'measured':>14}{'target':>22}")
    for name, report, calls, cp in (
        ("first sweep (full listing)", first, state_calls[0], first_cp),
        ("next sweep (changes only)", second, state_calls[1], second_cp),
    ):
        print(f"{name + ': Fly API calls (state)':44}{calls:>14}{'<= ' + str(TARGET_CALLS):>22}")
        print(f"{'   control-plane CPU seconds':44}{cp:>14.2f}{'< ' + str(TARGET_SECONDS):>22}")
        print(f"{'   wall seconds (with the emulator, shared)':44}{report.seconds:>14.2f}")
        print(f"{'   /readyz probes sent (to agents)':44}{report.probes_sent:>14}{'= ' + str(running):>22}")
        print(f"{'   exec calls in this sweep':44}{report.fly_exec_calls:>14}{'(cadence below)':>22}")
    print(f"{'naive per-machine poll: Fly API calls':44}{naive_calls:>14}")
    print(f"{'   control-plane CPU seconds':44}{naive_cp:>14.2f}")
    print(f"{'   wall seconds (with the emulator, shared)':44}{naive_seconds:>14.2f}")
    ratio = naive_calls / max(1, state_calls[0])
    print(f"{'   calls: naive / first sweep':44}{ratio:>13.0f}x{'>= ' + str(TARGET_RATIO) + 'x':>22}")
    print(
        f"{'probes to sleeping agents':44}{0 if asleep_now == sleeping else sleeping - asleep_now:>14}{'0':>22}"
    )
    print(f"{'sleeping machines still stopped':44}{asleep_now:>14}{'= ' + str(sleeping):>22}")
    print(
        f"{'exec calls / hour (default cadence)':44}{exec_per_hour:>14.0f}"
        f"  ({EXEC_COMMANDS_DUE} per running agent per {defaults.introspect_interval_seconds:g} s)"
    )
    print(
        f"{'exec calls / machine / hour':44}{per_machine_hour:>14.0f}  (Fly: 1/s, burst 3 per machine = 3600)"
    )
    marks = f"{first.drift_marked} / {first.banners_raised}"
    print(f"{'drift marks / banners raised':44}{marks:>14}{'0 / 0':>22}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--machines", type=int, default=10_000)
    parser.add_argument("--sleeping-share", type=float, default=0.2)
    args = parser.parse_args()
    asyncio.run(main(args.machines, args.sleeping_share))
