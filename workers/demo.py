"""``controlplane demo``: the real worker converging a real fleet, visibly, on the embedded default.

Everything here is the production path: SQLite with Alembic migrations, the vault, the key service
(keys validated against a local stand-in for the providers), the entry points' desired-state
functions, and the worker process of ``controlplane worker`` (:class:`workers.process.WorkerProcess`:
queue, reconciler, resync) talking HTTP to the built-in Fly emulator on a loopback port, with
realistic latencies sped up. What the demo adds is only the narration and the scenario:

1. about 30 tenants with keys and channels on the starter, pro and power plans converge;
2. one tenant changes plan: only its machine is updated;
3. one tenant is cancelled: stopped with autostart off, then (retention shortened to seconds) its
   machine, volume and app are destroyed;
4. one machine is deleted behind the worker's back: the resync notices, the worker recreates it;
5. the final fleet.

The emulated Fly is saved to ``fly-emulator.json`` beside the database, so running the demo again
adopts the same fleet: its first convergence creates nothing.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import func, select

from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.db import migrate
from controlplane.db.models import AuditLog, Channel, FlyResources, ProviderKey, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.desired import change_plan, create_tenant, desired_state_changed, request_deletion
from controlplane.devkeys import ensure_vault_keys
from controlplane.enums import RoutingStrategy
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from controlplane.secrets_store import channel_secret_name, put_secret
from controlplane.settings import Settings
from controlplane.vault import Vault
from workers.handler import Handled
from workers.process import WorkerProcess

ACTOR = "cli:demo"
SPEED = 8.0  # emulated seconds per real second: realistic Fly latencies, a shorter wait
SNAPSHOT_FILE = "fly-emulator.json"
PLANS = ("starter", "pro", "power")
REGIONS = ("iad", "ams", "fra", "sjc")
PROVIDER_SETS = (("openai",), ("anthropic",), ("anthropic", "google"), ("anthropic", "groq", "openai"))
FLEET_SIZE = 30


@dataclass(frozen=True)
class DemoTenant:
    external_id: str
    plan: str
    region: str
    providers: tuple[str, ...]
    channels: tuple[tuple[str, tuple[str, ...]], ...]
    strategy: RoutingStrategy


def demo_fleet(size: int = FLEET_SIZE) -> list[DemoTenant]:
    strategies = tuple(RoutingStrategy)
    fleet = []
    for n in range(1, size + 1):
        plan = PLANS[n % 3]
        channels: tuple[tuple[str, tuple[str, ...]], ...] = (("telegram", (str(100000000 + n),)),)
        if n % 3 and n % 2:  # some always-on tenants add Discord (starter, PLANS[0], sleeps)
            channels += (("discord", ()),)
        fleet.append(
            DemoTenant(
                f"user{n:02d}@example.com",
                plan,
                REGIONS[n % len(REGIONS)],
                PROVIDER_SETS[n % len(PROVIDER_SETS)],
                channels,
                strategies[n % len(strategies)],
            )
        )
    return fleet


# -- stand-ins for what cannot run here (made at run time; never real credentials) --------------
def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


FAKE_KEYS: dict[str, Callable[[], str]] = {
    "anthropic": lambda: "sk-ant-api03-" + _rand(93) + "AA",
    "openai": lambda: "sk-proj-" + _rand(24) + "T3BlbkFJ" + _rand(24),
    "google": lambda: "AIza" + _rand(35),
    "groq": lambda: "gsk_" + _rand(52),
}
FAKE_CHANNEL_TOKENS: dict[str, Callable[[], str]] = {
    "telegram": lambda: f"{secrets.randbelow(10**9):09d}:" + _rand(35),
    "discord": lambda: _rand(24) + "." + _rand(6) + "." + _rand(27),
}


def fake_provider_transport() -> httpx.MockTransport:
    """The providers' model-listing endpoints, as a local stand-in: any key in a header is accepted."""

    def answer(request: httpx.Request) -> httpx.Response:
        authed = any(h in request.headers for h in ("authorization", "x-api-key", "x-goog-api-key"))
        if not authed:
            return httpx.Response(401, json={"error": {"message": "missing key"}})
        return httpx.Response(
            200,
            json={
                "object": "list",
                "data": [{"id": "demo-model"}],
                "models": [{"name": "models/demo-model"}],
            },
        )

    return httpx.MockTransport(answer)


# -- desired state, through the entry points' functions -----------------------------------------
async def ensure_tenant(
    db: Database, keys: KeyService, vault: Vault, catalog: object, demo: DemoTenant
) -> str:
    """Create the demo tenant (or find it), save its keys and channels; returns its id."""
    from agents_config import PlanCatalog

    assert isinstance(catalog, PlanCatalog)
    async with db.transaction() as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.external_id == demo.external_id))
        if tenant is None:
            tenant = await create_tenant(
                s,
                catalog,
                external_id=demo.external_id,
                plan=demo.plan,
                region=demo.region,
                actor=ACTOR,
                reason="demo tenant",
            )
            tenant.routing_strategy = demo.strategy
        tenant_id = tenant.id
        have = set(
            (
                await s.execute(select(ProviderKey.provider).where(ProviderKey.tenant_id == tenant_id))
            ).scalars()
        )
    for provider in demo.providers:
        if provider not in have:
            await keys.save(tenant_id, provider, FAKE_KEYS[provider](), actor=ACTOR)
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        existing = set(
            (await s.execute(select(Channel.kind).where(Channel.tenant_id == tenant_id))).scalars()
        )
        added = []
        for kind, allow_from in demo.channels:
            if kind in existing:
                continue
            secret = await put_secret(
                s,
                vault,
                tenant_id=tenant_id,
                name=channel_secret_name(kind),
                plaintext=FAKE_CHANNEL_TOKENS[kind](),
            )
            s.add(
                Channel(
                    tenant_id=tenant_id,
                    kind=kind,
                    secret_id=secret.id,
                    settings={"allow_from": list(allow_from)},
                )
            )
            added.append(kind)
        if added:
            await desired_state_changed(
                s,
                tenant,
                actor=ACTOR,
                action="channels.connected",
                reason="demo channels",
                after={"channels": added},
            )
    return tenant_id


# -- watching the fleet converge -----------------------------------------------------------------
async def fleet_counts(db: Database) -> tuple[Counter[str], int]:
    """Tenants by lifecycle state, and how many have converged (observed_rev == desired_rev)."""
    async with db.read() as s:
        rows = (
            await s.execute(
                select(Tenant.lifecycle_state, Tenant.desired_rev, FlyResources.observed_rev).outerjoin(
                    FlyResources, FlyResources.tenant_id == Tenant.id
                )
            )
        ).all()
    states: Counter[str] = Counter(state.value for state, _, _ in rows)
    converged = sum(
        1 for state, desired, observed in rows if state.value != "gone" and desired == (observed or 0)
    )
    return states, converged


def progress_table(
    states: Counter[str], converged: int, handled: list[Handled], process: WorkerProcess, started: float
) -> Table:
    table = Table(title="the worker converging the fleet", title_justify="left")
    for col in (
        "pending",
        "provisioning",
        "running",
        "sleeping",
        "stopped",
        "gone",
        "converged",
        "reconciles",
        "Fly calls",
        "elapsed",
    ):
        table.add_column(col, justify="right")
    table.add_row(
        *(
            str(states.get(s, 0))
            for s in ("pending", "provisioning", "running", "sleeping", "stopped", "gone")
        ),
        str(converged),
        str(len(handled)),
        str(process.fly_calls.total()),
        f"{time.monotonic() - started:.1f}s",
    )
    return table


async def wait_until(
    db: Database,
    console: Console,
    process: WorkerProcess,
    handled: list[Handled],
    done: Callable[[Counter[str], int], bool],
    *,
    timeout: float = 90.0,
) -> bool:
    started = time.monotonic()
    with Live(console=console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() - started < timeout:
            states, converged = await fleet_counts(db)
            live.update(progress_table(states, converged, handled, process, started))
            if done(states, converged):
                return True
            await asyncio.sleep(0.25)
    return False


async def fly_resources(db: Database, tenant_id: str) -> FlyResources | None:
    async with db.read() as s:
        row = await s.get(FlyResources, tenant_id)
        if row is not None:
            s.expunge(row)
        return row


def creates(process: WorkerProcess) -> int:
    return sum(
        n
        for (endpoint, status), n in process.fly_calls.snapshot().items()
        if endpoint == "POST /v1/apps/{app}/machines" and status.startswith("2")
    )


def updates(process: WorkerProcess) -> int:
    return sum(
        n
        for (endpoint, status), n in process.fly_calls.snapshot().items()
        if endpoint == "POST /v1/apps/{app}/machines/{machine}" and status.startswith("2")
    )


def final_table(rows: list[tuple[Tenant, FlyResources | None]]) -> Table:
    table = Table(title="the fleet", title_justify="left")
    for col in ("tenant", "plan", "region", "state", "app", "machine", "volume", "rev", "config"):
        table.add_column(col)
    for tenant, fly in rows:
        table.add_row(
            tenant.external_id,
            tenant.plan,
            tenant.region,
            tenant.lifecycle_state.value,
            (fly.app_name or "-")[:20] if fly else "-",
            (fly.machine_id or "-") if fly else "-",
            (fly.volume_id or "-") if fly else "-",
            f"{fly.observed_rev if fly else 0}/{tenant.desired_rev}",
            (fly.config_hash or "-")[7:19] if fly else "-",
        )
    return table


def print_settings(console: Console, settings: Settings) -> None:
    table = Table(title="Settings in effect (secrets hidden)", title_justify="left")
    table.add_column("variable")
    table.add_column("value")
    for name, value in settings.public_view().items():
        if value != "(unset)" or name in {"CP_FLY_API_TOKEN", "CP_VAULT_KEYS"}:
            table.add_row(name, value)
    console.print(table)


async def run_demo(console: Console, *, speed: float = SPEED) -> int:
    settings = ensure_vault_keys(console)
    console.rule("[bold]1. database and settings")
    migrate.upgrade(settings.database_url)
    console.print(f"database migrated to revision {migrate.head_revision()}")
    print_settings(console, settings)

    console.rule("[bold]2. the Fly emulator")
    fly_token = "demo-" + secrets.token_hex(16)
    options = EmulatorOptions(
        latency=LatencyProfile.realistic(), seed=42, org=settings.fly_org, token=fly_token, clock_speed=speed
    )
    snapshot = Path(SNAPSHOT_FILE)
    emulator = FlyEmulator.load(snapshot, options) if snapshot.exists() else FlyEmulator(options)  # noqa: ASYNC240
    db = Database.from_url(settings.database_url)
    ok = True
    try:
        async with emulator.serve() as base_url:
            console.print(
                f"Fly Machines API emulator at {base_url}/v1 (realistic latencies, ×{speed:g} speed)"
            )
            settings = settings.model_copy(
                update={
                    "fly_api_url": base_url,
                    "fly_api_token": fly_token,
                    "gateway_url_template": base_url + "/gateway/{app}",
                    "resync_interval_seconds": 2.0,
                    "full_resync_hours": 0.0,
                    "worker_metrics_port": 0,
                    "worker_concurrency": 16,
                    "reconcile_wait_seconds": 10.0,
                }
            )
            handled: list[Handled] = []
            async with WorkerProcess.open(
                settings, database=db, on_handled=handled.append, poll_seconds=0.25
            ) as process:
                console.rule("[bold]3. tenants, keys and channels (desired state only)")
                validator = KeyValidator.from_settings(settings, transport=fake_provider_transport())
                keys = KeyService(db, process.vault, validator)
                fleet = demo_fleet()
                ids = [await ensure_tenant(db, keys, process.vault, process.catalog, t) for t in fleet]
                by_plan = Counter(t.plan for t in fleet)
                console.print(
                    f"{len(ids)} tenants ({', '.join(f'{n} {p}' for p, n in sorted(by_plan.items()))}), "
                    "keys validated and encrypted, channels connected"
                )

                console.rule("[bold]4. the worker converges the fleet")
                stop = asyncio.Event()
                runner = asyncio.create_task(process.run(stop))
                try:
                    reached = await wait_until(
                        db,
                        console,
                        process,
                        handled,
                        lambda states, converged: (
                            converged >= len(ids)
                            and states.get("provisioning", 0) == 0
                            and states.get("pending", 0) == 0
                        ),
                    )
                    ok &= reached
                    console.print(
                        f"machines created in this convergence: {creates(process)} "
                        "(0 when the demo runs again: everything is adopted)"
                    )

                    console.rule("[bold]5. a plan change: only that tenant's machine is updated")
                    moving = ids[1]
                    before = updates(process)
                    async with db.transaction() as s:
                        tenant = await s.get(Tenant, moving)
                        assert tenant is not None
                        plans = list(process.catalog.plans)
                        new_plan = plans[(plans.index(tenant.plan) + 1) % len(plans)]
                        console.print(f"{tenant.external_id}: plan {tenant.plan} → {new_plan}")
                        await change_plan(
                            s, process.catalog, tenant, new_plan, actor=ACTOR, reason="demo: upgrade"
                        )
                    ok &= await wait_until(db, console, process, handled, lambda _s, c: c >= len(ids))
                    console.print(
                        f"machine updates: {updates(process) - before} (the other machines untouched)"
                    )

                    console.rule("[bold]6. a cancellation: stopped (autostart off), then destroyed")
                    leaving = await ensure_tenant(
                        db,
                        keys,
                        process.vault,
                        process.catalog,
                        DemoTenant(
                            f"leaving-{secrets.token_hex(3)}@example.com",
                            "pro",
                            "iad",
                            ("anthropic",),
                            (),
                            RoutingStrategy.balanced,
                        ),
                    )
                    ok &= await wait_until(db, console, process, handled, lambda s, c: c >= len(ids) + 1)
                    async with db.transaction() as s:
                        tenant = await s.get(Tenant, leaving)
                        assert tenant is not None
                        await request_deletion(
                            s,
                            tenant,
                            retention=timedelta(seconds=6),
                            now=utcnow(),
                            actor=ACTOR,
                            reason="demo: subscription cancelled (retention shortened to 6 s)",
                        )
                    console.print(f"{tenant.external_id}: cancelled; resources destroyed after the retention")
                    app = (await fly_resources(db, leaving) or FlyResources()).app_name

                    def leaving_gone(states: Counter[str], _c: int) -> bool:
                        return states.get("gone", 0) >= 1 and app not in emulator.apps

                    ok &= await wait_until(db, console, process, handled, leaving_gone)
                    console.print(
                        f"app {app}: {'gone from Fly' if app not in emulator.apps else 'STILL THERE'}"
                    )

                    console.rule("[bold]7. drift: a machine deleted behind the worker's back comes back")
                    victim = ids[2]
                    lost = await fly_resources(db, victim)
                    assert lost is not None and lost.machine_id and lost.app_name
                    async with httpx.AsyncClient(
                        base_url=base_url, headers={"authorization": f"Bearer {fly_token}"}
                    ) as http:
                        await http.delete(
                            f"/v1/apps/{lost.app_name}/machines/{lost.machine_id}", params={"force": "true"}
                        )
                    console.print(f"deleted machine {lost.machine_id} of {lost.app_name} directly on Fly")

                    async def replaced() -> bool:
                        now = await fly_resources(db, victim)
                        return bool(
                            now and now.machine_id and now.machine_id != lost.machine_id and now.observed_rev
                        )

                    started = time.monotonic()
                    while time.monotonic() - started < 60:
                        if await replaced():
                            break
                        await asyncio.sleep(0.25)
                    again = await fly_resources(db, victim)
                    ok &= await replaced()
                    console.print(
                        f"the resync noticed; the worker created machine {again.machine_id if again else '-'}"
                    )
                finally:
                    stop.set()
                    await runner

                console.rule("[bold]8. the fleet")
                async with db.read() as s:
                    rows = (
                        await s.execute(
                            select(Tenant, FlyResources)
                            .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
                            .order_by(Tenant.external_id)
                        )
                    ).all()
                    console.print(final_table(list(rows)))
                    audit_rows = await s.scalar(select(func.count()).select_from(AuditLog))
                outcomes = Counter(h.action for h in handled)
                console.print(
                    f"{len(handled)} reconciles ({', '.join(f'{n} {a}' for a, n in sorted(outcomes.items()))}); "
                    f"{process.fly_calls.total()} Fly API calls; {audit_rows} audit rows"
                )
            emulator.snapshot_to(snapshot)
            console.print(f"emulated Fly saved to {snapshot}: the next run adopts this fleet")
    finally:
        await db.dispose()
    running = sum(1 for t in emulator.machines.values() if t.state == "started")
    console.print(
        f"[bold green]demo complete: {running} agents running on the emulated Fly.[/]"
        if ok
        else "[bold red]demo finished with tenants not converged (see above).[/]"
    )
    return 0 if ok else 1


__all__ = ["demo_fleet", "run_demo"]
