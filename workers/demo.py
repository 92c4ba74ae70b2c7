"""``controlplane demo``: the real control plane converging a real fleet, visibly, on the embedded default.

Everything here is the production path: SQLite with Alembic migrations, the vault, the dashboard API
(`controlplane serve`'s app, on a loopback port, token-authenticated), the Stripe webhook with
stripe-python's signature checks, billing's re-reads of subscriptions from a local fake of Stripe's
API (Stripe's published fixtures), and the worker process of ``controlplane worker``
(:class:`workers.process.WorkerProcess`: queue, reconciler, resync, billing jobs) talking HTTP to the
built-in Fly emulator (Fly-like latencies, sped up). What the demo adds is only the narration, the
stand-ins for what cannot run here (Stripe's servers, the LLM providers' key checks) and the
scenario:

1. about 30 users check out (signed ``checkout.session.completed`` deliveries to the API's webhook);
   billing creates their tenants; each saves a key and connects channels through the dashboard API;
   the worker converges the fleet;
2. one tenant changes plan: only its machine is updated;
3. one subscription's payment fails: ``payment_failed`` banner, billing grace (shortened to seconds),
   the agent stopped with autostart off when it ends, and running again once the customer pays;
4. one subscription is cancelled: stopped with autostart off, then (retention shortened to seconds)
   its machine, volume and app are destroyed;
5. one machine is deleted behind the worker's back: the resync notices, the worker recreates it;
6. health: Anthropic stops accepting one tenant's key for billing; the agent reports it (exec'd
   ``openclaw models status --json``), the ``key_no_credit`` banner rises after its threshold of
   consecutive sweeps, the user saves a new key and the banner clears;
7. the final fleet.

The emulated Fly is saved to ``fly-emulator.json`` beside the database, so running the demo again
adopts the same fleet (the first convergence creates nothing; users who subscribed before do not
check out again). Steps 3 and 4 subscribe a new user each run: Stripe's fake keeps no state between
runs.
"""

from __future__ import annotations

import asyncio
import secrets
import string
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live
from rich.table import Table
from sqlalchemy import func, select

from controlplane.api.app import create_app
from controlplane.banners import thresholds as banner_thresholds
from controlplane.billing.deliveries import (
    DEMO_API_KEY,
    WebhookDelivery,
    cancellation_delivery,
    checkout_delivery,
    payment_failed_delivery,
    payment_recovered_delivery,
)
from controlplane.billing.fake_stripe.fake import FakeStripe
from controlplane.billing.webhook_route import PATH as WEBHOOK_PATH
from controlplane.byok.validate import KeyValidator
from controlplane.db import migrate
from controlplane.db.models import AuditLog, Banner, FlyResources, Tenant
from controlplane.db.session import Database
from controlplane.desired import change_plan
from controlplane.devkeys import ensure_vault_keys
from controlplane.enums import BannerKind
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from controlplane.loopback import serve_asgi
from controlplane.settings import Settings, load_settings
from workers.handler import Handled
from workers.process import WorkerProcess

ACTOR = "cli:demo"
SPEED = 8.0  # emulated seconds per real second: Fly-like latencies, a shorter wait
SNAPSHOT_FILE = "fly-emulator.json"
FLEET_SIZE = 30
GRACE_SECONDS = 6.0  # the demo's billing grace (production: CP_BILLING_GRACE_DAYS, default 3 days)
RETENTION_SECONDS = 6.0  # the demo's retention (production: CP_TENANT_RETENTION_DAYS, default 7)
HEALTH_SWEEP_SECONDS = 2.0  # the demo's sweep interval (production: CP_HEALTH_SWEEP_INTERVAL_SECONDS, 60)
PROVIDER_SETS = (("openai",), ("anthropic",), ("anthropic", "google"), ("anthropic", "groq", "openai"))


@dataclass(frozen=True)
class DemoUser:
    external_id: str
    plan_index: int  # position in the plan catalog (starter, pro, power in the default one)
    providers: tuple[str, ...]
    telegram_id: str
    discord: bool


def demo_fleet(size: int = FLEET_SIZE) -> list[DemoUser]:
    return [
        DemoUser(
            f"user{n:02d}@example.com",
            n % 3,
            PROVIDER_SETS[n % len(PROVIDER_SETS)],
            str(100000000 + n),
            discord=bool(n % 3 and n % 2),  # some always-on tenants add Discord
        )
        for n in range(1, size + 1)
    ]


# -- stand-ins for what cannot run here (made at run time; never real credentials) --------------
def _rand(n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


FAKE_KEYS: dict[str, Callable[[], str]] = {
    "anthropic": lambda: "sk-ant-api03-" + _rand(93) + "AA",
    "openai": lambda: "sk-proj-" + _rand(24) + "T3BlbkFJ" + _rand(24),
    "google": lambda: "AIza" + _rand(35),
    "groq": lambda: "gsk_" + _rand(52),
}


def fake_telegram_token() -> str:
    return f"{secrets.randbelow(10**9):09d}:" + _rand(35)


def fake_discord_token() -> str:
    return _rand(24) + "." + _rand(6) + "." + _rand(27)


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


# -- the running control plane, as the demo drives it ---------------------------------------------
@dataclass
class Stage:
    console: Console
    db: Database
    process: WorkerProcess
    emulator: FlyEmulator
    fly_url: str
    fly_token: str
    api: httpx.AsyncClient  # the dashboard API, with a service token
    stripe_url: str
    webhook_secret: str
    handled: list[Handled] = field(default_factory=list)

    async def deliver(self, delivery: WebhookDelivery) -> None:
        response = await self.api.post(WEBHOOK_PATH, content=delivery.body, headers=delivery.headers)
        response.raise_for_status()

    async def tenant(self, external_id: str) -> Tenant | None:
        async with self.db.read() as s:
            row = await s.scalar(select(Tenant).where(Tenant.external_id == external_id))
            if row is not None:
                s.expunge(row)
            return row

    async def tenant_by_id(self, tenant_id: str) -> Tenant | None:
        async with self.db.read() as s:
            row = await s.get(Tenant, tenant_id)
            if row is not None:
                s.expunge(row)
            return row

    async def fly(self, tenant_id: str) -> FlyResources | None:
        async with self.db.read() as s:
            row = await s.get(FlyResources, tenant_id)
            if row is not None:
                s.expunge(row)
            return row

    async def until(self, what: Callable[[], Awaitable[bool]], timeout: float = 60.0) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if await what():
                return True
            await asyncio.sleep(0.2)
        return False

    async def subscribe(self, user: DemoUser) -> str:
        """Checkout (a signed webhook), then a key and channels through the dashboard API."""
        plans = list(self.process.catalog.plans.values())
        plan = plans[user.plan_index % len(plans)]
        await self.deliver(
            await checkout_delivery(
                self.stripe_url,
                webhook_secret=self.webhook_secret,
                external_id=user.external_id,
                price_id=plan.stripe_price_id,
                email=user.external_id,
                api_key=DEMO_API_KEY,
            )
        )

        async def created() -> bool:
            return await self.tenant(user.external_id) is not None

        if not await self.until(created, 30):
            raise RuntimeError(f"{user.external_id}: no tenant after the checkout")
        base = f"/v1/tenants/{user.external_id}"
        for provider in user.providers:
            answer = await self.api.put(f"{base}/keys/{provider}", json={"key": FAKE_KEYS[provider]()})
            answer.raise_for_status()
        channel = {"bot_token": fake_telegram_token(), "allow_from": [user.telegram_id]}
        (await self.api.put(f"{base}/channels/telegram", json=channel)).raise_for_status()
        if user.discord:
            (
                await self.api.put(f"{base}/channels/discord", json={"bot_token": fake_discord_token()})
            ).raise_for_status()
        tenant = await self.tenant(user.external_id)
        assert tenant is not None
        return tenant.id

    async def banners(self, external_id: str) -> list[str]:
        answer = await self.api.get(f"/v1/tenants/{external_id}/banners")
        answer.raise_for_status()
        return [b["kind"] for b in answer.json()["banners"]]


# -- watching the fleet ------------------------------------------------------------------------
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


STATES = ("pending", "provisioning", "running", "sleeping", "stopped", "gone")


def progress_table(states: Counter[str], converged: int, stage: Stage, started: float) -> Table:
    table = Table(title="the control plane at work", title_justify="left")
    for col in (*STATES, "converged", "reconciles", "Fly calls", "elapsed"):
        table.add_column(col, justify="right")
    table.add_row(
        *(str(states.get(s, 0)) for s in STATES),
        str(converged),
        str(len(stage.handled)),
        str(stage.process.fly_calls.total()),
        f"{time.monotonic() - started:.1f}s",
    )
    return table


async def watch(stage: Stage, done: Callable[[Counter[str], int], bool], *, timeout: float = 90.0) -> bool:
    """A live table of the fleet until ``done(states, converged)`` (or ``timeout`` seconds)."""
    started = time.monotonic()
    with Live(console=stage.console, refresh_per_second=4, transient=False) as live:
        while time.monotonic() - started < timeout:
            states, converged = await fleet_counts(stage.db)
            live.update(progress_table(states, converged, stage, started))
            if done(states, converged):
                return True
            await asyncio.sleep(0.25)
    return False


def count_calls(process: WorkerProcess, endpoint: str) -> int:
    return sum(
        n
        for (e, status), n in process.fly_calls.snapshot().items()
        if e == endpoint and status.startswith("2")
    )


def creates(process: WorkerProcess) -> int:
    return count_calls(process, "POST /v1/apps/{app}/machines")


def updates(process: WorkerProcess) -> int:
    return count_calls(process, "POST /v1/apps/{app}/machines/{machine}")


def final_table(rows: list[tuple[Tenant, FlyResources | None]]) -> Table:
    table = Table(title="the fleet", title_justify="left")
    for col in ("tenant", "plan", "billing", "state", "app", "machine", "volume", "rev", "config"):
        table.add_column(col)
    for tenant, fly in rows:
        table.add_row(
            tenant.external_id,
            tenant.plan,
            tenant.billing_status.value,
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


# -- the scenario --------------------------------------------------------------------------------
async def converge_fleet(stage: Stage, fleet_size: int = FLEET_SIZE) -> tuple[bool, list[str]]:
    stage.console.rule("[bold]3. users check out; they save keys and connect channels (dashboard API)")
    ids, new = [], 0
    for user in demo_fleet(fleet_size):
        existing = await stage.tenant(user.external_id)
        if existing is not None:
            ids.append(existing.id)
            continue
        ids.append(await stage.subscribe(user))
        new += 1
    stage.console.print(
        f"{len(ids)} users: {new} checked out now (signed Stripe webhooks; subscriptions re-read from "
        f"Stripe by billing), {len(ids) - new} already subscribed; keys validated and encrypted"
    )
    stage.console.rule("[bold]4. the worker converges the fleet")

    def converged(states: Counter[str], count: int) -> bool:
        return count >= len(ids) and not states.get("provisioning") and not states.get("pending")

    ok = await watch(stage, converged)
    stage.console.print(
        f"machines created in this convergence: {creates(stage.process)} "
        "(0 when the demo runs again: everything is adopted)"
    )
    return ok, ids


async def plan_change(stage: Stage, tenant_id: str) -> bool:
    stage.console.rule("[bold]5. a plan change: only that tenant's machine is updated")
    before = updates(stage.process)
    async with stage.db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        assert tenant is not None
        plans = list(stage.process.catalog.plans)
        new_plan = plans[(plans.index(tenant.plan) + 1) % len(plans)]
        stage.console.print(f"{tenant.external_id}: plan {tenant.plan} → {new_plan}")
        await change_plan(s, stage.process.catalog, tenant, new_plan, actor=ACTOR, reason="demo: plan change")

    async def applied() -> bool:
        fly, tenant = await stage.fly(tenant_id), await stage.tenant_by_id(tenant_id)
        return bool(fly and tenant and fly.observed_rev == tenant.desired_rev)

    ok = await stage.until(applied)
    stage.console.print(f"machine updates: {updates(stage.process) - before} (the other machines untouched)")
    return ok


async def payment_failure(stage: Stage) -> bool:
    stage.console.rule("[bold]6. a payment fails: banner, billing grace, stopped, paid, running again")
    user = DemoUser(f"late-payer-{secrets.token_hex(3)}@example.com", 1, ("anthropic",), "555000111", False)
    tenant_id = await stage.subscribe(user)

    async def running() -> bool:
        t = await stage.tenant(user.external_id)
        return t is not None and t.lifecycle_state.value == "running"

    ok = await stage.until(running)
    tenant = await stage.tenant(user.external_id)
    assert tenant is not None and tenant.stripe_subscription_id
    sub = tenant.stripe_subscription_id
    await stage.deliver(
        await payment_failed_delivery(
            stage.stripe_url, webhook_secret=stage.webhook_secret, subscription_id=sub
        )
    )

    async def banner_up() -> bool:
        return "payment_failed" in await stage.banners(user.external_id)

    ok = await stage.until(banner_up) and ok
    stage.console.print(
        f"{user.external_id}: invoice.payment_failed → banner {await stage.banners(user.external_id)}, "
        f"agent still running during the grace ({GRACE_SECONDS:g} s here)"
    )

    async def stopped() -> bool:
        t = await stage.tenant(user.external_id)
        return t is not None and t.lifecycle_state.value == "stopped"

    ok = await stage.until(stopped) and ok
    fly = await stage.fly(tenant_id)
    autostart = (
        [s.get("autostart") for s in stage.emulator.machines[fly.machine_id].config.get("services", [])]
        if fly and fly.machine_id
        else []
    )
    stage.console.print(f"grace over: agent stopped, Fly autostart {autostart} (nothing can wake it)")
    await stage.deliver(
        await payment_recovered_delivery(
            stage.stripe_url, webhook_secret=stage.webhook_secret, subscription_id=sub
        )
    )

    async def recovered() -> bool:
        return await running() and "payment_failed" not in await stage.banners(user.external_id)

    ok = await stage.until(recovered) and ok
    stage.console.print(f"invoice.paid → running again, banners now {await stage.banners(user.external_id)}")
    return ok


async def cancellation(stage: Stage) -> bool:
    stage.console.rule("[bold]7. a cancellation: stopped (autostart off), then destroyed after the retention")
    user = DemoUser(f"leaving-{secrets.token_hex(3)}@example.com", 1, ("anthropic",), "555000222", False)
    tenant_id = await stage.subscribe(user)

    async def running() -> bool:
        t = await stage.tenant(user.external_id)
        return t is not None and t.lifecycle_state.value == "running"

    ok = await stage.until(running)
    fly = await stage.fly(tenant_id)
    app = fly.app_name if fly else None
    tenant = await stage.tenant(user.external_id)
    assert tenant is not None and tenant.stripe_subscription_id
    await stage.deliver(
        await cancellation_delivery(
            stage.stripe_url,
            webhook_secret=stage.webhook_secret,
            subscription_id=tenant.stripe_subscription_id,
        )
    )
    stage.console.print(
        f"{user.external_id}: customer.subscription.deleted → stopped; destroyed after "
        f"{RETENTION_SECONDS:g} s here"
    )

    async def gone() -> bool:
        t = await stage.tenant(user.external_id)
        return t is not None and t.lifecycle_state.value == "gone" and app not in stage.emulator.apps

    ok = await stage.until(gone) and ok
    stage.console.print(f"app {app}: {'gone from Fly' if app not in stage.emulator.apps else 'STILL THERE'}")
    return ok


async def hand_deletion(stage: Stage, tenant_id: str) -> bool:
    stage.console.rule("[bold]8. drift: a machine deleted behind the worker's back comes back")
    lost = await stage.fly(tenant_id)
    assert lost is not None and lost.machine_id and lost.app_name
    async with httpx.AsyncClient(
        base_url=stage.fly_url, headers={"authorization": f"Bearer {stage.fly_token}"}
    ) as http:
        await http.delete(f"/v1/apps/{lost.app_name}/machines/{lost.machine_id}", params={"force": "true"})
    stage.console.print(f"deleted machine {lost.machine_id} of {lost.app_name} directly on Fly")

    async def replaced() -> bool:
        now = await stage.fly(tenant_id)
        return bool(
            now and now.machine_id and now.machine_id != lost.machine_id and now.observed_state == "started"
        )

    ok = await stage.until(replaced)
    again = await stage.fly(tenant_id)
    stage.console.print(
        f"the resync noticed; the worker created machine {again.machine_id if again else '-'}"
    )
    return ok


async def key_out_of_credit(stage: Stage, tenant_id: str) -> bool:
    stage.console.rule(
        "[bold]9. health: a provider stops accepting a key for billing; the agent says so; a banner; a new key"
    )
    tenant, fly = await stage.tenant_by_id(tenant_id), await stage.fly(tenant_id)
    assert tenant is not None and fly is not None and fly.machine_id
    threshold = banner_thresholds(stage.process.settings.banner_thresholds)[BannerKind.key_no_credit]
    stage.emulator.fail_credential(fly.machine_id, "anthropic", "billing")
    stage.console.print(
        f"{tenant.external_id}: Anthropic now refuses the agent's key for billing (emulated); the health "
        f"sweep asks the agent itself (Fly exec: openclaw models status --json), no provider is called"
    )
    seen = 0

    async def raised() -> bool:
        nonlocal seen
        async with stage.db.read() as s:
            row = await s.scalar(
                select(Banner).where(
                    Banner.tenant_id == tenant_id,
                    Banner.kind == BannerKind.key_no_credit,
                    Banner.subject == "anthropic",
                )
            )
            count, up = (row.consecutive_bad, row.active) if row is not None else (0, False)
        if count > seen and not up:
            seen = count
            stage.console.print(
                f"  sweep: the agent reports 'billing' ({count} of {threshold}): no banner yet"
            )
        return up

    ok = await stage.until(raised, 90)
    stage.console.print(
        f"banner after {threshold} observations in a row: {await stage.banners(tenant.external_id)}"
    )
    base = f"/v1/tenants/{tenant.external_id}/keys/anthropic"
    (await stage.api.put(base, json={"key": FAKE_KEYS["anthropic"]()})).raise_for_status()
    stage.emulator.restore_credential(fly.machine_id, "anthropic")  # the new key has credit
    stage.console.print(
        f"the user saves a new key (dashboard API): banners now {await stage.banners(tenant.external_id)}"
    )

    async def new_key_applied() -> bool:
        now_t, now_f = await stage.tenant_by_id(tenant_id), await stage.fly(tenant_id)
        return bool(now_t and now_f and now_f.observed_rev == now_t.desired_rev)

    ok = await stage.until(new_key_applied) and ok
    await asyncio.sleep(2 * stage.process.settings.health_sweep_interval_seconds)
    still_clear = "key_no_credit" not in await stage.banners(tenant.external_id)
    stage.console.print(
        f"the new key reached the agent; later sweeps: banner {'stays cleared' if still_clear else 'BACK UP'}"
    )
    return ok and still_clear


async def run_demo(console: Console, *, speed: float = SPEED, fleet_size: int = FLEET_SIZE) -> int:
    """The walk-through; ``fleet_size`` (at least 3) shrinks the fleet for tests."""
    settings = ensure_vault_keys(console)
    console.rule("[bold]1. database and settings")
    migrate.upgrade(settings.database_url)
    console.print(f"database migrated to revision {migrate.head_revision()}")
    print_settings(console, settings)

    console.rule("[bold]2. Fly (emulated), Stripe (a local fake), the dashboard API, the worker")
    fly_token = "demo-" + secrets.token_hex(16)
    api_token = "demo-api-" + secrets.token_hex(16)
    webhook_secret = "whsec_" + secrets.token_hex(24)
    options = EmulatorOptions(
        latency=LatencyProfile.realistic(), seed=42, org=settings.fly_org, token=fly_token, clock_speed=speed
    )
    snapshot = Path(SNAPSHOT_FILE)
    emulator = FlyEmulator.load(snapshot, options) if snapshot.exists() else FlyEmulator(options)  # noqa: ASYNC240
    db = Database.from_url(settings.database_url)
    stripe = FakeStripe()
    ok = True
    try:
        async with emulator.serve() as fly_url, stripe.serve() as stripe_url:
            stripe.add_catalog_prices(
                {p.id: (p.stripe_price_id, p.monthly_price_cents) for p in _catalog(settings).plans.values()}
            )
            settings = load_settings(
                **{
                    "fly_api_url": fly_url,
                    "fly_api_token": fly_token,
                    "gateway_url_template": fly_url + "/gateway/{app}",
                    "resync_interval_seconds": 2.0,
                    "full_resync_hours": 0.0,
                    "worker_metrics_port": 0,
                    "worker_concurrency": 16,
                    "reconcile_wait_seconds": 10.0,
                    "stripe_secret_key": DEMO_API_KEY,
                    "stripe_api_base": stripe_url,
                    "stripe_webhook_secret": webhook_secret,
                    "api_tokens": [api_token],
                    "billing_grace_days": GRACE_SECONDS / 86400,
                    "health_sweep_interval_seconds": HEALTH_SWEEP_SECONDS,
                    "health_introspect_interval_seconds": 5 * HEALTH_SWEEP_SECONDS,
                    "tenant_retention_days": RETENTION_SECONDS / 86400,
                }
            )
            app = create_app(
                settings, db=db, validator=KeyValidator(settings, transport=fake_provider_transport())
            )
            handled: list[Handled] = []
            async with (
                serve_asgi(app) as api_url,
                httpx.AsyncClient(base_url=api_url, headers={"authorization": f"Bearer {api_token}"}) as api,
                WorkerProcess.open(
                    settings, database=db, on_handled=handled.append, poll_seconds=0.25
                ) as process,
            ):
                console.print(
                    f"Fly Machines API emulator at {fly_url}/v1 (Fly-like latencies, ×{speed:g}); "
                    f"Stripe (fake, published fixtures) at {stripe_url}; dashboard API at {api_url}"
                )
                stage = Stage(
                    console,
                    db,
                    process,
                    emulator,
                    fly_url,
                    fly_token,
                    api,
                    stripe_url,
                    webhook_secret,
                    handled,
                )
                stop = asyncio.Event()
                runner = asyncio.create_task(process.run(stop))
                try:
                    fleet_ok, ids = await converge_fleet(stage, fleet_size)
                    ok &= fleet_ok
                    ok &= await plan_change(stage, ids[1])
                    ok &= await payment_failure(stage)
                    ok &= await cancellation(stage)
                    ok &= await hand_deletion(stage, ids[2])
                    ok &= await key_out_of_credit(stage, ids[0])
                finally:
                    stop.set()
                    await runner

                console.rule("[bold]10. the fleet")
                async with db.read() as s:
                    rows = (
                        await s.execute(
                            select(Tenant, FlyResources)
                            .outerjoin(FlyResources, FlyResources.tenant_id == Tenant.id)
                            .order_by(Tenant.external_id)
                        )
                    ).all()
                    console.print(final_table([(t, f) for t, f in rows]))
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
    running = sum(1 for m in emulator.machines.values() if m.state == "started")
    console.print(
        f"[bold green]demo complete: {running} agents running on the emulated Fly.[/]"
        if ok
        else "[bold red]demo finished with tenants not converged (see above).[/]"
    )
    return 0 if ok else 1


def _catalog(settings: Settings) -> Any:
    from agents_config import load_catalog

    return load_catalog(settings.plan_catalog)


__all__ = ["demo_fleet", "run_demo"]
