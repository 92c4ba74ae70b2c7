"""``controlplane demo``: a visible walk through the control plane on the embedded default.

What it does, in order (every step uses the real parts: SQLite + Alembic, the vault, the key service,
the plan catalog and config generators, the Fly client, the Fly emulator over loopback HTTP):

1. makes sure a vault key ring exists (a development ring is written to ``.env`` if none is set),
   migrates the database and prints the settings in effect;
2. starts the built-in Fly emulator (realistic latencies, sped up) on a loopback port;
3. creates three demo tenants on the starter / pro / power plans, saves their BYOK keys through the
   key service (validated against a local fake provider, encrypted by the vault) and their channels;
4. provisions every tenant on the emulator, concurrently: app, app secrets (keys decrypted only here,
   in memory, and pushed as Fly app secrets), volume, machine with the generated OpenClaw config,
   wait for ``started``, then the gateway's ``/readyz`` probe with the tenant's gateway token;
5. prints the fleet, the org-wide machine listing and the audit log.

It follows the control plane's invariants (ids persisted the moment Fly returns them, machine create
tagged and looked up before any retry, secrets only in worker memory and Fly app secrets), but it is a
scripted walk-through, not the reconciler: the workers issue replaces step 4 with the real reconcile
loop. Running it again reuses the tenants and adopts what already exists.
"""

from __future__ import annotations

import asyncio
import base64
import secrets
import string
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from agents_config import (
    ChannelSpec,
    PlanCatalog,
    RenderedOpenClawConfig,
    TenantSpec,
    load_catalog,
    render_machine_config,
    render_openclaw_config,
    render_volume_request,
)
from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.db import migrate
from controlplane.db.models import (
    AuditLog,
    Channel,
    DesiredPower,
    FlyResources,
    KeyStatus,
    LifecycleState,
    ProviderKey,
    RoutingStrategy,
    Tenant,
    utcnow,
)
from controlplane.db.session import Database
from controlplane.desired import desired_state_changed, transition_lifecycle
from controlplane.fly import (
    CreateMachineRequest,
    CreateVolumeRequest,
    FlyClient,
    MachineConfig,
    MachineLease,
    OrgMachineQuery,
    OrgMachineScan,
    UpdateMachineRequest,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from controlplane.fly.emulator import EmulatorOptions, FlyEmulator, LatencyProfile
from controlplane.fly.errors import FlyNotFound, FlySecretsNotVisible, FlyWrongState
from controlplane.secrets_store import (
    GATEWAY_TOKEN_SECRET,
    channel_secret_name,
    ensure_secret,
    provider_secret_name,
    put_secret,
    read_secret,
)
from controlplane.settings import Settings, load_settings, reset_settings_cache
from controlplane.vault import Vault, format_key_ring_entry, generate_key

T = TypeVar("T")

ACTOR = "cli:demo"
EMULATOR_SPEEDUP = 8.0  # emulated seconds per real second: realistic latencies, shorter wait
BOOT_DEADLINE_S = 120.0
SNAPSHOT_FILE = "fly-emulator.json"  # the demo's "Fly": kept next to the database between runs


@dataclass(frozen=True)
class DemoTenant:
    external_id: str
    plan: str
    providers: tuple[str, ...]
    channels: tuple[tuple[str, tuple[str, ...]], ...]
    strategy: RoutingStrategy
    region: str


DEMO_TENANTS: tuple[DemoTenant, ...] = (
    DemoTenant(
        "alice@example.com",
        "starter",
        ("openai",),
        (("telegram", ("111111111",)),),
        RoutingStrategy.aggressive,
        "iad",
    ),
    DemoTenant(
        "bob@example.com",
        "pro",
        ("anthropic", "google"),
        (("telegram", ("222222222",)), ("discord", ("333333333333333333",))),
        RoutingStrategy.balanced,
        "ams",
    ),
    DemoTenant(
        "carol@example.com",
        "power",
        ("anthropic", "groq", "openai"),
        (("telegram", ("444444444",)), ("discord", ()), ("slack", ())),
        RoutingStrategy.quality_first,
        "fra",
    ),
)


# -- fake credentials and a fake provider (built at run time; never real) ---------------------
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
    "slack": lambda: "xoxb-" + _rand(12, string.digits) + "-" + _rand(24),
}


def fake_provider_transport() -> httpx.MockTransport:
    """A stand-in for the providers' model-listing endpoints: any key in a header is accepted."""

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


# -- set-up -----------------------------------------------------------------------------------
def ensure_vault_keys(console: Console, env_file: Path = Path(".env")) -> Settings:
    """Settings with a vault key ring: if none is configured, write a development ring to .env."""
    settings = load_settings()
    if settings.vault_keys is not None:
        return settings
    entry = format_key_ring_entry("dev1", generate_key())
    with env_file.open("a", encoding="utf-8") as fh:
        fh.write(
            f"\n# Development vault key ring written by `controlplane demo` on {utcnow():%Y-%m-%d}."
            "\n# Keep it with controlplane.db (secrets cannot be decrypted without it).\n"
            f"CP_VAULT_KEYS={entry}\n"
        )
    env_file.chmod(0o600)
    console.print(
        f"[yellow]No CP_VAULT_KEYS set: wrote a development key ring to {env_file} "
        "(do not use it in production).[/]"
    )
    reset_settings_cache()
    return load_settings()


def print_settings(console: Console, settings: Settings) -> None:
    table = Table(title="Settings in effect (secrets hidden)", title_justify="left")
    table.add_column("variable")
    table.add_column("value")
    for name, value in settings.public_view().items():
        if value != "(unset)" or name in {"CP_FLY_API_TOKEN", "CP_VAULT_KEYS"}:
            table.add_row(name, value)
    console.print(table)


# -- tenants ----------------------------------------------------------------------------------
async def ensure_tenant(db: Database, keys: KeyService, vault: Vault, demo: DemoTenant) -> str:
    """Create the demo tenant (or find it), save its keys and channels; returns its id."""
    async with db.transaction() as s:
        tenant = await s.scalar(select(Tenant).where(Tenant.external_id == demo.external_id))
        if tenant is None:
            tenant = Tenant(
                external_id=demo.external_id,
                plan=demo.plan,
                region=demo.region,
                routing_strategy=demo.strategy,
                desired_power=DesiredPower.running,
            )
            s.add(tenant)
            await s.flush()
            await desired_state_changed(
                s,
                tenant,
                actor=ACTOR,
                action="tenant.created",
                reason="demo tenant",
                after={"plan": demo.plan},
            )
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


# -- provisioning (the reconciler's job once the workers issue lands) -------------------------
async def until_accepted(
    call: Callable[[], Awaitable[T]],
    refusal: type[Exception],
    *,
    what: str,
    on_retry: Callable[[float], None] | None = None,
    attempts: int = 40,
) -> T:
    """Repeat ``call`` while Fly answers with a DEFINITE, passing refusal (``refusal``: e.g. a 412
    while secrets propagate or a machine is still replacing), backing off 0.25 s doubling to 2 s.
    Only for refusals that prove nothing happened; ambiguous answers are the client's business."""
    delay = 0.25
    for _ in range(attempts):
        try:
            return await call()
        except refusal:
            if on_retry is not None:
                on_retry(delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)
    raise RuntimeError(f"gave up waiting for {what}")


@dataclass
class Outcome:
    tenant_id: str
    external_id: str = ""
    plan: str = ""
    app: str = ""
    machine_id: str = ""
    state: str = ""
    ready: str = ""
    primary: str = ""
    fallbacks: tuple[str, ...] = ()
    channels: tuple[str, ...] = ()
    config_hash: str = ""
    seconds: float = 0.0
    steps: list[str] = field(default_factory=list)


class DemoProvisioner:
    def __init__(
        self,
        db: Database,
        vault: Vault,
        fly: FlyClient,
        catalog: PlanCatalog,
        settings: Settings,
        gateway_base: str,
        console: Console,
    ) -> None:
        self.db, self.vault, self.fly, self.catalog = db, vault, fly, catalog
        self.settings, self.gateway_base, self.console = settings, gateway_base, console

    def _say(self, out: Outcome, text: str) -> None:
        out.steps.append(text)
        self.console.print(f"  [cyan]{out.external_id:<18}[/] {text}")

    async def _persist(self, tenant_id: str, **fields: Any) -> None:
        """Write Fly ids/observations at once, in their own short transaction (invariant 1)."""
        async with self.db.transaction() as s:
            row = await s.get(FlyResources, tenant_id)
            for key, value in fields.items():
                setattr(row, key, value)
            row.updated_at = utcnow()

    async def _load(
        self, tenant_id: str
    ) -> tuple[TenantSpec, RenderedOpenClawConfig, FlyResources, dict[str, str], Tenant]:
        """Desired state → TenantSpec and its rendered config; plaintext secrets for the push
        (memory only)."""
        async with self.db.transaction() as s:
            tenant = await s.get(Tenant, tenant_id)
            fly = await s.get(FlyResources, tenant_id)
            if fly is None:
                fly = FlyResources(
                    tenant_id=tenant_id, app_name=f"{self.settings.fly_app_prefix}{tenant_id[:16]}"
                )
                s.add(fly)
            if tenant.lifecycle_state == LifecycleState.pending:
                transition_lifecycle(
                    s, tenant, LifecycleState.provisioning, actor="worker", reason="usable key present"
                )
            keys = (
                (await s.execute(select(ProviderKey).where(ProviderKey.tenant_id == tenant_id)))
                .scalars()
                .all()
            )
            usable = tuple(sorted(k.provider for k in keys if k.status is not KeyStatus.broken))
            channels = (
                (
                    await s.execute(
                        select(Channel).where(Channel.tenant_id == tenant_id, Channel.enabled.is_(True))
                    )
                )
                .scalars()
                .all()
            )
            spec = TenantSpec(
                tenant_id=tenant_id,
                app_name=fly.app_name,
                plan=tenant.plan,
                byok_providers=usable,
                channels=tuple(
                    ChannelSpec(kind=c.kind, allow_from=tuple(c.settings.get("allow_from", ())))
                    for c in sorted(channels, key=lambda c: c.created_at)
                ),
                chosen_model=tenant.model_preference,
                strategy=tenant.routing_strategy.value,
                region=tenant.region,
                image=tenant.image_pin or self.settings.openclaw_image,
                desired_rev=tenant.desired_rev,
            )
            rendered = render_openclaw_config(spec, self.catalog)
            plain: dict[str, str] = {}
            for env in rendered.secret_env:
                if env.kind == "gateway" or (env.kind == "channel" and env.generated):
                    # Ours to generate: the gateway token, the Telegram webhook secret ...
                    name = (
                        GATEWAY_TOKEN_SECRET
                        if env.kind == "gateway"
                        else channel_secret_name(env.subject, "webhook_secret")
                    )
                    plain[env.env_var] = await ensure_secret(
                        s, self.vault, tenant_id=tenant_id, name=name, generate=lambda: secrets.token_hex(32)
                    )
                    continue
                name = (
                    channel_secret_name(env.subject)
                    if env.kind == "channel"
                    else provider_secret_name(env.subject)
                )
                value = await read_secret(s, self.vault, tenant_id=tenant_id, name=name)
                if value is not None:
                    plain[env.env_var] = value
        return spec, rendered, fly, plain, tenant

    async def provision(self, tenant_id: str) -> Outcome:
        """Converge one tenant: adopt what exists, create what is missing, update what drifted."""
        started_at = time.monotonic()
        spec, rendered, fly_row, plain, tenant = await self._load(tenant_id)
        out = Outcome(tenant_id, tenant.external_id, tenant.plan, spec.app_name)
        out.primary, out.fallbacks = rendered.routing.primary, tuple(rendered.routing.fallbacks)
        out.channels, out.config_hash = rendered.channels, rendered.sha256
        app = spec.app_name

        await create_app_idempotent(self.fly, app, network=app)
        self._say(out, f"app [bold]{app}[/] ready")

        # App secrets: pushed only when their (keyed, irreversible) digest changed.
        digest = self.vault.fingerprint("\n".join(f"{k}={v}" for k, v in sorted(plain.items())))
        gateway_token = plain["OPENCLAW_GATEWAY_TOKEN"]
        secrets_version, pushed = fly_row.secrets_version, False
        if digest != fly_row.secrets_digest or secrets_version is None:
            update = await self.fly.set_secrets(app, plain)
            secrets_version, pushed = update.version, True
            await self._persist(tenant_id, secrets_version=secrets_version, secrets_digest=digest)
            self._say(out, f"{len(plain)} app secrets pushed (secrets version {secrets_version})")
        else:
            self._say(out, f"app secrets unchanged (version {secrets_version})")
        plain.clear()  # plaintext lives no longer than the push

        volume_id, machine_id = fly_row.volume_id, fly_row.machine_id
        if volume_id is not None:
            try:
                await self.fly.get_volume(app, volume_id)
            except FlyNotFound:  # confirmed gone: only now may it be replaced
                self._say(out, f"[yellow]volume {volume_id} is gone on Fly: recreating it[/]")
                volume_id = machine_id = None
                await self._persist(
                    tenant_id, volume_id=None, machine_id=None, instance_id=None, machine_create_tag=None
                )
        if volume_id is None:
            wanted = render_volume_request(spec, self.catalog)
            found = [v for v in await self.fly.list_volumes(app) if v.name == wanted["name"]]
            volume = found[0] if found else await self.fly.create_volume(app, CreateVolumeRequest(**wanted))
            volume_id = volume.id
            await self._persist(tenant_id, volume_id=volume_id)
            self._say(out, f"volume {volume_id} ({wanted['size_gb']} GB, {spec.region})")

        config = render_machine_config(spec, self.catalog, volume_id=volume_id, openclaw=rendered)
        machine = None
        if machine_id is not None:
            try:
                machine = await self.fly.get_machine(app, machine_id)
            except FlyNotFound:
                machine = None
            if machine is None or machine.state == "destroyed":
                self._say(out, f"[yellow]machine {machine_id} is gone on Fly: recreating it[/]")
                machine_id = None
                await self._persist(tenant_id, machine_id=None, instance_id=None, machine_create_tag=None)
        if machine_id is None:
            tag = fly_row.machine_create_tag or uuid.uuid4().hex
            await self._persist(tenant_id, machine_create_tag=tag)  # before the create (invariant 2)
            request = CreateMachineRequest(
                config=MachineConfig.model_validate(config),
                region=spec.region,
                name=app,
                min_secrets_version=secrets_version,
            )
            machine = await self._create_when_secrets_visible(app, request, tag, out)
            machine_id = machine.id
            # The id first, in its own write, before anything else can fail (invariant 1).
            await self._persist(tenant_id, machine_id=machine.id, instance_id=machine.instance_id)
            await self._persist(
                tenant_id, observed_state=machine.state, config_hash=rendered.sha256, image_ref=spec.image
            )
            self._say(out, f"machine {machine.id} created ({machine.state})")
        else:
            on_machine = machine.metadata if machine is not None else {}
            was = machine.state if machine is not None else None
            if on_machine.get("openclaw_config_hash") != rendered.sha256 or pushed:
                machine = await self._update(app, machine_id, config, secrets_version, out)
                await self._persist(
                    tenant_id,
                    instance_id=machine.instance_id,
                    config_hash=rendered.sha256,
                    image_ref=spec.image,
                )
            else:
                self._say(out, f"machine {machine_id} already runs config {rendered.sha256[7:19]}")
            if was in {"stopped", "suspended"}:
                # Fly leaves a stopped machine stopped after an update: let the new version settle,
                # then start it (412 while it is still replacing: try again shortly).
                await wait_for(
                    self.fly,
                    app,
                    machine_id,
                    "settled",
                    timeout=BOOT_DEADLINE_S,
                    version=machine.current_version,
                )
                await self._start_when_settled(app, machine_id)
                self._say(out, f"machine {machine_id} was {was}: started")

        version = machine.current_version if machine is not None else None  # pin the wait
        result = await wait_for(
            self.fly, app, machine_id, "started", timeout=BOOT_DEADLINE_S, version=version
        )
        await self._persist(
            tenant_id,
            observed_state=result.state or "started",
            observed_rev=spec.desired_rev,
            observed_at=utcnow(),
        )
        out.machine_id, out.state = machine_id, result.state or "started"
        self._say(out, f"machine {machine_id} is [green]{out.state}[/]")

        out.ready = await self._probe_ready(app, gateway_token)
        self._say(out, f"/readyz → {out.ready}")
        async with self.db.transaction() as s:
            t = await s.get(Tenant, tenant_id)
            transition_lifecycle(
                s,
                t,
                LifecycleState.running,
                actor="worker",
                reason=f"machine {machine_id} started, gateway {out.ready}",
            )
        out.seconds = time.monotonic() - started_at
        return out

    async def _update(
        self, app: str, machine_id: str, config: dict[str, Any], secrets_version: int | None, out: Outcome
    ) -> Any:
        """Whole-config update under a Fly lease whose nonce goes with the write (invariant 5)."""
        async with MachineLease(self.fly, app, machine_id, description="controlplane demo update") as lease:
            current = await self.fly.get_machine(app, machine_id)
            request = UpdateMachineRequest(
                config=MachineConfig.model_validate(config),
                current_version=current.current_version,
                min_secrets_version=secrets_version,
            )
            machine = await until_accepted(
                lambda: self.fly.update_machine(app, machine_id, request, nonce=lease.nonce),
                FlySecretsNotVisible,
                what=f"{app}: secrets version {secrets_version} visible",
            )
        self._say(
            out, f"machine {machine_id} updated to the new config/secrets (version {machine.current_version})"
        )
        return machine

    async def _create_when_secrets_visible(
        self, app: str, request: CreateMachineRequest, tag: str, out: Outcome
    ) -> Any:
        """Fly reads app secrets eventually-consistently: a create asking for a secrets version the
        store does not show yet is refused with 412 (a definite refusal, so trying again is safe)."""
        return await until_accepted(
            lambda: create_machine_idempotent(self.fly, app, request, tag),
            FlySecretsNotVisible,
            what=f"{app}: secrets version {request.min_secrets_version} visible",
            on_retry=lambda delay: self._say(
                out,
                f"secrets version {request.min_secrets_version} not visible yet (412); again in {delay:.2f}s",
            ),
        )

    async def _start_when_settled(self, app: str, machine_id: str) -> None:
        await until_accepted(
            lambda: self.fly.start_machine(app, machine_id),
            FlyWrongState,
            what=f"{app}: machine {machine_id} startable",
        )

    async def _probe_ready(self, app: str, token: str) -> str:
        """Poll the gateway's /readyz (with the tenant's gateway token) until it answers ready."""
        url = f"{self.gateway_base}/gateway/{app}/readyz"
        async with httpx.AsyncClient(timeout=5.0) as http:
            for _ in range(120):
                response = await http.get(url, headers={"authorization": f"Bearer {token}"})
                if response.status_code == 200 and response.json().get("ready"):
                    return "ready"
                await asyncio.sleep(0.25)
        return f"not ready (HTTP {response.status_code})"


async def toggle_plan(db: Database, tenant_id: str, console: Console) -> str:
    """Move the tenant between pro and power (as a Stripe subscription change would)."""
    async with db.transaction() as s:
        tenant = await s.get(Tenant, tenant_id)
        old = tenant.plan
        tenant.plan = "power" if old == "pro" else "pro"
        await desired_state_changed(
            s,
            tenant,
            actor=ACTOR,
            action="plan.changed",
            reason="demo: subscription changed",
            before={"plan": old},
            after={"plan": tenant.plan},
        )
        console.print(
            f"  {tenant.external_id}: plan {old} → {tenant.plan} (desired_rev "
            f"{tenant.desired_rev}); converging again"
        )
    return tenant_id


# -- reporting --------------------------------------------------------------------------------
def fleet_table(outcomes: list[Outcome]) -> Table:
    table = Table(title="The fleet", title_justify="left")
    for col in (
        "tenant",
        "plan",
        "app",
        "machine",
        "state",
        "gateway",
        "primary model",
        "fallbacks",
        "channels",
        "config",
        "took",
    ):
        table.add_column(col)
    for o in outcomes:
        table.add_row(
            o.external_id,
            o.plan,
            o.app,
            o.machine_id,
            o.state,
            o.ready,
            o.primary,
            ", ".join(o.fallbacks) or "-",
            ", ".join(o.channels) or "-",
            o.config_hash.removeprefix("sha256:")[:12],
            f"{o.seconds:.1f}s",
        )
    return table


async def audit_table(db: Database, limit: int = 25) -> Table:
    async with db.transaction() as s:
        rows = (await s.execute(select(AuditLog).order_by(AuditLog.id.desc()).limit(limit))).scalars().all()
    table = Table(title=f"Audit log (latest {limit})", title_justify="left")
    for col in ("at", "tenant", "actor", "action", "reason", "after"):
        table.add_column(col)
    for r in reversed(rows):
        table.add_row(
            f"{r.at:%H:%M:%S}",
            (r.tenant_id or "")[:8],
            r.actor,
            r.action,
            r.reason or "",
            str(r.after or "")[:60],
        )
    return table


async def run_demo(console: Console) -> int:
    settings = ensure_vault_keys(console)
    console.rule("[bold]1. database and settings")
    migrate.upgrade(settings.database_url)
    console.print(f"database migrated to revision {migrate.head_revision()}")
    print_settings(console, settings)

    console.rule("[bold]2. Fly emulator")
    fly_token = "demo-" + secrets.token_hex(16)
    options = EmulatorOptions(
        latency=LatencyProfile.realistic(),
        seed=42,
        org=settings.fly_org,
        token=fly_token,
        clock_speed=EMULATOR_SPEEDUP,
    )
    snapshot = Path(SNAPSHOT_FILE)
    emulator = FlyEmulator.load(snapshot, options) if snapshot.exists() else FlyEmulator(options)  # noqa: ASYNC240 - once, at start-up
    catalog = load_catalog(settings.plan_catalog)
    db = Database.from_url(settings.database_url)
    vault = Vault.from_settings(settings)
    try:
        async with emulator.serve() as base_url:
            console.print(
                f"Fly Machines API emulator at {base_url}/v1 (realistic latencies, "
                f"×{EMULATOR_SPEEDUP:g} speed), org {settings.fly_org!r}"
            )
            console.rule("[bold]3. tenants, keys and channels")
            validator = KeyValidator.from_settings(settings, transport=fake_provider_transport())
            keys = KeyService(db, vault, validator)
            tenant_ids = []
            for demo in DEMO_TENANTS:
                tenant_id = await ensure_tenant(db, keys, vault, demo)
                tenant_ids.append(tenant_id)
                views = await keys.status(tenant_id)
                shown = ", ".join(f"{v.provider} …{v.last4} ({v.status.value})" for v in views)
                console.print(f"  {demo.external_id:<18} plan {demo.plan:<8} keys: {shown}")

            console.rule("[bold]4. provisioning on Fly (emulated)")
            async with FlyClient(token=fly_token, base_url=base_url, org=settings.fly_org) as fly:
                provisioner = DemoProvisioner(db, vault, fly, catalog, settings, base_url, console)
                outcomes = await asyncio.gather(*(provisioner.provision(t) for t in tenant_ids))

                console.rule("[bold]5. a change of desired state: a plan change")
                changed = await toggle_plan(db, tenant_ids[1], console)
                outcomes[1] = await provisioner.provision(changed)

                console.rule("[bold]6. the fleet")
                console.print(fleet_table(list(outcomes)))
                listed = await OrgMachineScan(fly, OrgMachineQuery(summary=True)).collect()
                console.print(
                    f"org-wide listing (GET /v1/orgs/{settings.fly_org}/machines): "
                    f"{len(listed)} machines, states "
                    f"{sorted({m.state for m in listed if m.state})}"
                )
            console.print(await audit_table(db))
            emulator.snapshot_to(snapshot)
            console.print(f"emulated Fly state saved to {snapshot} (the next run continues from it)")
    finally:
        await db.dispose()
    ok = all(o.state == "started" and o.ready == "ready" for o in outcomes)
    console.print(
        "[bold green]demo complete: every tenant's agent is running.[/]"
        if ok
        else "[bold red]demo finished with tenants not ready (see above).[/]"
    )
    return 0 if ok else 1


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


__all__ = ["DEMO_TENANTS", "DemoProvisioner", "run_demo"]
