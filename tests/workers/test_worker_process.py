"""The worker process: SIGTERM gives every lease back, /metrics and /healthz answer, and
``controlplane worker --until-idle`` converges a fleet and exits."""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from pathlib import Path

import httpx
from sqlalchemy import select

from controlplane.db import migrate
from controlplane.db.models import ReconcileItem, Tenant
from controlplane.db.session import Database
from controlplane.enums import LifecycleState
from tests.support.db import TEST_RING
from tests.support.fleet import emulator, running_fleet, seed_tenant, worker_env


async def seeded(url: str, count: int) -> tuple[Database, list[str]]:
    from controlplane.vault import Vault

    migrate.upgrade(url)
    db = Database.from_url(url)
    vault = Vault(TEST_RING)
    ids = [await seed_tenant(db, vault, f"w{n}@x", plan="pro") for n in range(count)]
    return db, ids


async def held_leases(db: Database) -> int:
    async with db.read() as s:
        return len(
            (
                await s.execute(select(ReconcileItem.tenant_id).where(ReconcileItem.lease_owner.isnot(None)))
            ).all()
        )


async def test_sigterm_gives_every_lease_back(fresh_database_url: str, tmp_path: Path) -> None:
    db, _ = await seeded(fresh_database_url, 6)
    # Slow, Fly-like boots (real time): reconciles are still running when SIGTERM arrives.
    emu = emulator(latency="realistic", clock_speed=1.0)
    try:
        async with emu.serve() as fly_url:
            log = (tmp_path / "worker.log").open("wb")
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "controlplane",
                "worker",
                "--concurrency",
                "4",
                env=worker_env(fresh_database_url, fly_url, CP_WORKER_SHUTDOWN_SECONDS="1"),
                stdout=log,
                stderr=log,
            )
            for _ in range(200):
                if await held_leases(db):
                    break
                await asyncio.sleep(0.1)
            assert await held_leases(db) > 0
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
            log.close()
            assert await held_leases(db) == 0
            assert b"worker.stopped" in (tmp_path / "worker.log").read_bytes()
    finally:
        await db.dispose()


async def test_worker_until_idle_converges_and_exits(fresh_database_url: str, tmp_path: Path) -> None:
    db, ids = await seeded(fresh_database_url, 3)
    try:
        async with emulator(clock_speed=25.0).serve() as fly_url:
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "controlplane",
                "worker",
                "--until-idle",
                env=worker_env(fresh_database_url, fly_url),
                stdout=asyncio.subprocess.DEVNULL,
                stderr=asyncio.subprocess.PIPE,
            )
            _, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, err.decode()[-2000:]
        async with db.read() as s:
            states = (
                (await s.execute(select(Tenant.lifecycle_state).where(Tenant.id.in_(ids)))).scalars().all()
            )
        assert set(states) == {LifecycleState.running}
    finally:
        await db.dispose()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_metrics_and_healthz(db, empty_database, vault) -> None:
    await seed_tenant(db, vault, "m@x", plan="pro")
    async with running_fleet(db, empty_database["url"]) as fleet:
        await fleet.converge()
        port = free_port()
        async with fleet.process.serving_health(host="127.0.0.1", port=port):
            async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
                for _ in range(50):
                    try:
                        health = await http.get("/healthz")
                        break
                    except httpx.ConnectError:
                        await asyncio.sleep(0.05)
                assert health.status_code == 200 and health.json() == {"ok": True}
                metrics = (await http.get("/metrics")).text
        assert 'cp_fly_calls_total{endpoint="POST /v1/apps",status="201"}' in metrics
        assert "cp_reconciles_total" in metrics and "cp_queue_tenants" in metrics
