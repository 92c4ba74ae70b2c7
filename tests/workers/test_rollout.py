"""Image rollouts end to end (issue 13): the real worker (reconciler + rollout driver) moves a fleet on
the Fly emulator to a new image in batches, with the emulator's own record of machine updates as the
witness: at most K updates in flight, no machine updated twice, pinned tenants untouched, sleeping
tenants updated without being woken, a machine failing its checks pauses the rollout and is rolled
back, and a worker SIGKILLed mid-rollout is replaced by one that finishes it."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import select, update

from controlplane.db import migrate
from controlplane.db import rollouts as store
from controlplane.db.models import FlyResources, ProviderKey, RolloutItem, Tenant
from controlplane.db.queue import mark_for_reconcile
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed
from controlplane.enums import KeyStatus, KeyVerdict, LifecycleState, RolloutItemState
from controlplane.fly.emulator import FlyEmulator
from controlplane.fly.emulator import machines as machine_ops
from controlplane.fly.emulator.state import MachineRecord
from controlplane.secrets_store import provider_secret_name, put_secret
from controlplane.vault import Vault
from tests.support.db import POSTGRES_URL, TEST_RING, file_database_url, open_database, pg_admin
from tests.support.fleet import Fleet, emulator, fake_key, running_fleet, worker_env

OLD = "ghcr.io/openclaw/openclaw:2026.9.6"
NEW = "ghcr.io/openclaw/openclaw:2026.10.1"
PIN = "ghcr.io/openclaw/openclaw:2026.8.30"
ROLLOUT_SETTINGS = {
    "rollout_tick_seconds": 0.05,
    "rollout_health_timeout_seconds": 2.0,
    "rollout_lease_seconds": 5.0,
    "reconcile_wait_seconds": 5,  # emulated: a sleeper's update is seen to stay stopped sooner
}


async def until(check: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.05)


async def fly_rows(db: Database) -> dict[str, FlyResources]:
    async with db.read() as s:
        rows = (await s.scalars(select(FlyResources))).all()
        for row in rows:
            s.expunge(row)
    return {r.tenant_id: r for r in rows}


async def items(db: Database, rollout_id: str) -> dict[str, RolloutItem]:
    async with db.read() as s:
        rows = (await s.scalars(select(RolloutItem).where(RolloutItem.rollout_id == rollout_id))).all()
        for row in rows:
            s.expunge(row)
    return {r.tenant_id: r for r in rows}


async def put_to_sleep(fleet: Fleet, db: Database, tenant_ids: list[str]) -> None:
    """Fly's proxy autostops these idle machines; the reconciler then sees them asleep."""
    rows = await fly_rows(db)
    for tenant_id in tenant_ids:
        fly = rows[tenant_id]
        assert fly.app_name and fly.machine_id
        machine_ops.stop_machine(fleet.emu.world, fly.app_name, fly.machine_id, {}, None)
    fleet.emu.advance(2.0)
    async with db.transaction() as s:
        for tenant_id in tenant_ids:
            await mark_for_reconcile(s, tenant_id, "autostopped", explicit=False)
    await fleet.converge()


class Running:
    """The worker loop and the rollout driver of one in-process worker, as ``controlplane worker``
    runs them."""

    def __init__(self, fleet: Fleet) -> None:
        self.stop = asyncio.Event()
        assert fleet.process.rollouts is not None
        self.tasks = [
            asyncio.create_task(fleet.process.worker.run(self.stop)),
            asyncio.create_task(fleet.process.rollouts.run(self.stop)),
        ]

    async def close(self) -> None:
        self.stop.set()
        await asyncio.gather(*self.tasks)


async def seed_fleet(db: Database, vault: Vault, prefix: str, n: int, *, plan: str = "pro") -> list[str]:
    """``n`` tenants with a usable key, written the way the entry points write them (desired state,
    encrypted key, audit row, reconcile mark) in one transaction."""
    ids = []
    async with db.transaction() as s:
        for i in range(n):
            tenant = Tenant(external_id=f"{prefix}{i}@example.com", plan=plan, region="iad")
            s.add(tenant)
            await s.flush()
            key = fake_key("anthropic")
            secret = await put_secret(
                s, vault, tenant_id=tenant.id, name=provider_secret_name("anthropic"), plaintext=key
            )
            s.add(
                ProviderKey(
                    tenant_id=tenant.id,
                    provider="anthropic",
                    secret_id=secret.id,
                    last4=key[-4:],
                    fingerprint=vault.fingerprint(key),
                    verdict=KeyVerdict.ok,
                    status=KeyStatus.usable,
                )
            )
            await desired_state_changed(s, tenant, actor="api", action="tenant.created")
            ids.append(tenant.id)
    return ids


async def rollout_with_a_bad_machine(
    db: Database, url: str, vault: Vault, *, always_on: int, sleepers: int, pinned: int, batch: int, k: int
) -> None:
    """The acceptance scenario: a fleet of always-on, sleeping and pinned tenants; the rollout
    pauses when a machine of its third batch fails its checks on the new image, that machine is
    rolled back and every later batch stays on the old image; resumed, it finishes."""
    ids = await seed_fleet(db, vault, "r", always_on)
    asleep_ids = await seed_fleet(db, vault, "s", sleepers, plan="starter")
    pinned_ids = await seed_fleet(db, vault, "p", pinned)
    async with db.transaction() as s:
        await s.execute(update(Tenant).where(Tenant.id.in_(pinned_ids)).values(image_pin=PIN))
    emu = emulator(clock_speed=50.0)
    async with running_fleet(db, url, emu, concurrency=16, openclaw_image=OLD, **ROLLOUT_SETTINGS) as fleet:
        await fleet.converge(timeout=180)
        await put_to_sleep(fleet, db, asleep_ids)
        before = await fly_rows(db)
        assert all(before[t].image_ref == OLD for t in ids + asleep_ids)
        assert all(before[t].image_ref == PIN for t in pinned_ids)
        async with db.read() as s:
            lifecycles = (
                await s.scalars(select(Tenant.lifecycle_state).where(Tenant.id.in_(asleep_ids)))
            ).all()
        assert set(lifecycles) <= {LifecycleState.sleeping}
        woke = {t: starts(emu.machines[before[t].machine_id or ""]) for t in asleep_ids}
        since = emu.clock.now()

        view = await store.start_rollout(
            db, image=NEW, default_image=OLD, batch_size=batch, max_in_flight=k, actor="cli:ops"
        )
        moving = always_on + sleepers
        assert view.total == moving + pinned and view.skipped_count == pinned and view.pending == moving
        assert view.batches == -(-moving // batch)
        assert {n.note for n in view.skipped} == {f"pinned to {PIN}"}
        progress = await items(db, view.id)
        victim = sorted(t for t, i in progress.items() if i.batch == 2 and t in ids)[0]
        emu.fail_image(NEW, apps=[before[victim].app_name or ""])

        worker = Running(fleet)
        try:
            await until(lambda: _status_is(db, view.id, "paused", moving=0), 240, "paused, rollback done")
            paused = await store.read_status(db, view.id)
            progress = await items(db, view.id)
            rows = await fly_rows(db)
            assert progress[victim].state is RolloutItemState.rolled_back
            assert "/readyz" in (progress[victim].note or "")
            victim_external = await _external(db, victim)
            assert victim_external in (paused.reason or "")
            assert [n.external_id for n in paused.failed] == [victim_external]
            machine = emu.machines[rows[victim].machine_id or ""]
            assert machine.config["image"] == OLD and machine.state == "started"
            assert not machine.health.crash_looping
            later = [t for t, i in progress.items() if i.batch > 2]
            assert later and all(progress[t].state is RolloutItemState.pending for t in later)
            assert all(emu.machines[rows[t].machine_id or ""].config["image"] == OLD for t in later)
            assert all(i.state is RolloutItemState.done for i in progress.values() if 0 <= i.batch < 2)

            await store.change_state(db, "resume", actor="cli:ops", reason="bad machine looked at")
            await until(lambda: _status_is(db, view.id, "done", moving=0), 240, "the rollout finished")
        finally:
            await worker.close()

        done = await store.read_status(db, view.id)
        assert (done.done, done.failed_count, done.skipped_count, done.in_flight) == (
            moving - 1,
            1,
            pinned,
            0,
        )
        rows = await fly_rows(db)
        touched = Counter(r.machine_id for r in emu.updates if r.started_mono >= since)
        for tenant_id in ids + asleep_ids:
            machine = emu.machines[rows[tenant_id].machine_id or ""]
            want = OLD if tenant_id == victim else NEW
            assert machine.config["image"] == want and rows[tenant_id].image_ref == want
            assert touched[machine.id] == (2 if tenant_id == victim else 1), tenant_id  # never twice
        for tenant_id in pinned_ids:  # untouched
            machine = emu.machines[rows[tenant_id].machine_id or ""]
            assert machine.config["image"] == PIN and touched[machine.id] == 0
        for tenant_id in asleep_ids:  # updated while stopped, never woken for it
            machine = emu.machines[rows[tenant_id].machine_id or ""]
            assert machine.state == "stopped" and starts(machine) == woke[tenant_id]
        assert emu.max_concurrent_updates(since_mono=since) <= k  # the emulator's own record
        assert 2 <= await driver_peak(db, view.id) <= k  # updates did run side by side, never above K


@pytest.mark.slow
async def test_200_tenants_in_batches_of_20_at_most_10_in_flight_a_bad_machine_pauses_and_rolls_back(
    tmp_path: Path,
) -> None:
    """The issue's scale, on SQLite (the same scenario runs on every backend below, smaller)."""
    url = file_database_url("sqlite", tmp_path / "fleet.db")
    async with open_database(url) as db:
        await rollout_with_a_bad_machine(
            db, url, Vault(TEST_RING), always_on=185, sleepers=10, pinned=5, batch=20, k=10
        )


async def test_a_rollout_pauses_on_a_bad_machine_and_resumes_on_every_backend(
    db: Database, empty_database: dict[str, str], vault: Vault
) -> None:
    await rollout_with_a_bad_machine(
        db, empty_database["url"], vault, always_on=12, sleepers=2, pinned=1, batch=4, k=2
    )


async def driver_peak(db: Database, rollout_id: str) -> int:
    """The most items the driver had moving at once (from each item's start to its finish)."""
    async with db.read() as s:
        spans = (
            await s.execute(
                select(RolloutItem.started_at, RolloutItem.finished_at).where(
                    RolloutItem.rollout_id == rollout_id, RolloutItem.started_at.is_not(None)
                )
            )
        ).all()
    edges = sorted([(a, 1) for a, _ in spans] + [(b, -1) for _, b in spans if b is not None])
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


def starts(machine: MachineRecord) -> int:
    return sum(1 for e in machine.events if e.type == "start")


async def _status_is(db: Database, rollout_id: str, state: str, *, moving: int) -> bool:
    view = await store.read_status(db, rollout_id)
    return view.state == state and view.in_flight == moving


async def _external(db: Database, tenant_id: str) -> str:
    async with db.read() as s:
        return str(await s.scalar(select(Tenant.external_id).where(Tenant.id == tenant_id)))


# -- a worker SIGKILLed mid-rollout --------------------------------------------------------------
TENANTS = 30


async def _worker(database_url: str, fly_url: str, log: Path) -> asyncio.subprocess.Process:
    env = worker_env(
        database_url,
        fly_url,
        CP_OPENCLAW_IMAGE=OLD,
        CP_WORKER_CONCURRENCY="8",
        CP_WORKER_LEASE_SECONDS="5",
        CP_RESYNC_INTERVAL_SECONDS="3600",
        CP_FULL_RESYNC_HOURS="0",
        CP_FLY_RATE_LIMIT_SCALE="10",
        CP_ROLLOUT_TICK_SECONDS="0.1",
        CP_ROLLOUT_LEASE_SECONDS="2",
        CP_ROLLOUT_HEALTH_TIMEOUT_SECONDS="30",
        CP_LOG_LEVEL="WARNING",
    )
    handle = log.open("ab")
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "controlplane", "worker", env=env, stdout=handle, stderr=handle
    )


@pytest.fixture
async def postgres_database() -> AsyncIterator[str]:
    """A whole PostgreSQL database: worker processes connect to it by URL (the production setup
    for several workers)."""
    name = f"cp_rollout_{uuid.uuid4().hex[:10]}"
    await pg_admin(f'CREATE DATABASE "{name}"')
    try:
        yield POSTGRES_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        await pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.mark.slow
async def test_a_worker_killed_mid_rollout_is_replaced_and_no_machine_is_updated_twice(
    postgres_database: str, tmp_path: Path
) -> None:
    fresh_database_url = postgres_database
    migrate.upgrade(fresh_database_url)
    db = Database.from_url(fresh_database_url)
    vault = Vault(TEST_RING)
    emu: FlyEmulator = emulator()
    try:
        await seed_fleet(db, vault, "k", TENANTS)
        async with running_fleet(db, fresh_database_url, emu, openclaw_image=OLD) as fleet:
            await fleet.converge(timeout=120)
        since = emu.clock.now()
        view = await store.start_rollout(
            db, image=NEW, default_image=OLD, batch_size=6, max_in_flight=3, actor="cli:ops"
        )
        log = tmp_path / "workers.log"
        async with emu.serve() as fly_url:
            first = await _worker(fresh_database_url, fly_url, log)
            try:
                await until(lambda: _done_at_least(db, view.id, 10), 180, "a third of the rollout")
            finally:
                first.send_signal(signal.SIGKILL)
                await first.wait()
            killed_at = (await store.read_status(db, view.id)).done
            assert killed_at < TENANTS
            second = await _worker(fresh_database_url, fly_url, log)
            try:
                await until(lambda: _status_is(db, view.id, "done", moving=0), 240, "the rollout finished")
            finally:
                second.send_signal(signal.SIGTERM)
                await asyncio.wait_for(second.wait(), 30)
        final = await store.read_status(db, view.id)
        assert final.done == TENANTS and final.failed_count == 0, log.read_text()[-3000:]
        records = [r for r in emu.updates if r.started_mono >= since]
        assert sorted(Counter(r.machine_id for r in records).values()) == [1] * TENANTS  # each once
        assert all(r.image_before == OLD and r.image_after == NEW for r in records)
        assert emu.max_concurrent_updates(since_mono=since) <= 3
        rows = await fly_rows(db)
        assert {emu.machines[r.machine_id or ""].config["image"] for r in rows.values()} == {NEW}
    finally:
        await db.dispose()


async def _done_at_least(db: Database, rollout_id: str, n: int) -> bool:
    return (await store.read_status(db, rollout_id)).done >= n


async def test_a_tenant_the_reconciler_never_updates_fails_pauses_and_is_put_back(
    db: Database, empty_database: dict[str, str], vault: Vault
) -> None:
    """No worker applies the image (the tenant is parked, say): after CP_ROLLOUT_ITEM_TIMEOUT_SECONDS
    the item fails, the rollout pauses and the tenant's desired image goes back, in one transaction."""
    ids = await seed_fleet(db, vault, "t", 3)
    async with db.transaction() as s:
        for n, tenant_id in enumerate(ids):
            s.add(
                FlyResources(
                    tenant_id=tenant_id,
                    app_name=f"oc-{tenant_id}",
                    machine_id=f"m{n}",
                    image_ref=OLD,
                    observed_rev=1,
                )
            )
    emu = emulator()
    async with running_fleet(
        db, empty_database["url"], emu, openclaw_image=OLD, rollout_item_timeout_seconds=0.01
    ) as fleet:
        driver = fleet.process.rollouts
        assert driver is not None
        view = await store.start_rollout(
            db, image=NEW, default_image=OLD, batch_size=2, max_in_flight=2, actor="cli:ops"
        )
        first = await driver.step()
        assert first is not None and first.started == 2 and first.moving == 2
        await asyncio.sleep(0.05)
        second = await driver.step()
        assert second is not None and second.failed == 2 and second.started == 0
        status = await store.read_status(db, view.id)
        assert status.state == "paused" and "not updated within" in (status.reason or "")
        assert status.counts == {"rolling_back": 2, "pending": 1}
        async with db.read() as s:
            revs = (
                await s.execute(select(Tenant.desired_rev, Tenant.desired_image).where(Tenant.id.in_(ids)))
            ).all()
        assert sorted(rev for rev, _ in revs) == [2, 4, 4]  # created (2), moved (3) and back (4)
        assert {image for _, image in revs} == {None}
        assert (await driver.step()) is not None and (await store.read_status(db, view.id)).pending == 1
