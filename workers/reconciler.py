"""The tenant reconciler: converge one tenant's Fly app, volume, app secrets and machine to its
desired state, step by idempotent step (``reconcile(tenant_id) -> Result``; see workers/contract.py).

Every run reads the desired state from the database and the actual state from Fly afresh; it never
trusts the mark that woke it. The steps, in order, each skipped when already true:

1. decide (workers/decide.py): running, stopped, nothing yet (pending), or destroyed;
2. app: create-or-adopt the tenant's app on its own Fly network (per-user isolation);
3. volume: the plan's size, extended when the plan grows, never shrunk; a volume lost on Fly is
   recreated with a data-loss audit row; no capacity or quota in the region -> the next region of
   ``fallback_regions`` for a tenant that has never run (parked when none is left);
4. app secrets: decrypted keys, channel tokens and the gateway token, pushed only when their digest
   changed or Fly shows ours changed by hand; the version Fly returns is recorded;
5. machine: created tagged (invariant 2) with its id stored before any wait (invariant 1), or, when
   its config hash, image or secrets version differs, updated with its WHOLE config under a Fly lease
   whose nonce goes with the write and with ``min_secrets_version`` (invariant 5);
6. power: start an always-on machine that should run; leave a sleeping plan's autostopped machine
   alone (never wake it); a stopped tenant gets autostart OFF before it is stopped, so neither chat
   webhooks nor a browser can wake it through Fly's proxy;
7. wait with one bounded ``/wait`` (never minutes: "look again after N s" instead), then the gateway's
   ``/startupz`` and ``/readyz`` with the tenant's gateway token;
8. record observed revision, state and config, and the lifecycle transition (audited).

Destroy (retention over) is two-phase per resource (invariant 3): ``pending_destroy`` written before
each delete, a 404 counts as done, and the record is cleared only once Fly confirms it gone.

Plaintext secrets live only in this module's locals during step 4 (invariant 4).
"""

from __future__ import annotations

import secrets as pysecrets
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import structlog
from pydantic import SecretStr
from sqlalchemy import select

from agents_config import (
    ChannelSpec,
    NoUsableModelError,
    Plan,
    PlanCatalog,
    RenderedOpenClawConfig,
    SecretLikeValueError,
    TenantSpec,
    UnknownPlanError,
    render_machine_config,
    render_openclaw_config,
    render_volume_request,
)
from agents_config.canonical import canonical_json, content_hash
from agents_config.machine_config import VOLUME_NAME
from agents_config.openclaw_config import GATEWAY_TOKEN_ENV, ChannelPolicyError
from controlplane.clock import Clock, SystemClock
from controlplane.db import tenants as store
from controlplane.db.models import AuditLog
from controlplane.db.session import Database
from controlplane.db.tenants import DesiredTenant, Lifecycle, Step
from controlplane.enums import LifecycleState
from controlplane.fly import (
    CreateMachineRequest,
    CreateVolumeRequest,
    FlyClient,
    Machine,
    MachineConfig,
    MachineLease,
    UpdateMachineRequest,
    Volume,
    create_app_idempotent,
    create_machine_idempotent,
    wait_for,
)
from controlplane.fly.errors import (
    FlyAmbiguous,
    FlyBadRequest,
    FlyError,
    FlyNotFound,
    FlyPrecondition,
    FlyQuotaExceeded,
    FlyRegionCapacity,
    FlySecretsNotVisible,
    FlyStaleVersion,
    FlyVolumeHostFull,
    FlyWaitError,
    FlyWrongState,
)
from controlplane.retry import Backoff
from controlplane.secrets_store import (
    GATEWAY_TOKEN_SECRET,
    channel_env_secret_name,
    delete_all_secrets,
    ensure_secret,
    provider_secret_name,
    read_secret,
)
from controlplane.settings import Settings
from controlplane.vault import Vault
from workers.contract import Result, TerminalError, TransientError
from workers.decide import Decision, Target, decide
from workers.metrics import timed_step

log = structlog.get_logger(__name__)
T = TypeVar("T")

ACTOR = "worker"
#: Machine metadata written by the reconciler (agents_config writes tenant id, rev, config hash, plan).
META_MACHINE_HASH = "cp_machine_hash"
META_SECRETS_VERSION = "cp_secrets_version"
PLATFORM_PROXY_TOKEN_SECRET = "platform:proxy_token"
TELEGRAM_WEBHOOK_SECRET_FIELD = "webhook_secret"
STOPPED_STATES = frozenset({"stopped", "suspended"})
SETTLING_STATES = frozenset(
    {"created", "starting", "replacing", "stopping", "suspending", "restarting", "updating"}
)
#: 412 "secrets version not visible yet" is definite and short-lived: retried in the run this long.
SECRETS_VISIBLE_BACKOFF = Backoff(initial=0.25, factor=2.0, cap=2.0)
SECRETS_VISIBLE_TRIES = 6


@dataclass(frozen=True, slots=True)
class ReconcilerConfig:
    """What the reconciler needs from the settings (and what tests and the demo set directly)."""

    org: str = "personal"
    app_prefix: str = "oc-"
    default_image: str = "ghcr.io/openclaw/openclaw:2026.9.6"
    fallback_regions: tuple[str, ...] = ()
    gateway_url_template: str = "https://{app}.fly.dev"
    platform_keys: Mapping[str, SecretStr] = field(default_factory=dict)
    platform_proxy_url: str | None = None
    wait_seconds: float = 20.0  # longest single wait for a machine state within a run
    look_again_seconds: float = 5.0  # when the machine or gateway is not there yet
    boot_timeout_seconds: float = 300.0  # started but no /startupz after this long: a failure
    probe_timeout_seconds: float = 5.0
    gateway_wait_seconds: float = 15.0  # polling /startupz within one run before "look again"
    probe_interval_seconds: float = 0.5
    confirm_gone_seconds: float = 1.0  # a machine 404 is confirmed by a second look this much later
    lease_ttl_seconds: int = 15

    @classmethod
    def from_settings(cls, settings: Settings) -> ReconcilerConfig:
        return cls(
            org=settings.fly_org,
            app_prefix=settings.fly_app_prefix,
            default_image=settings.openclaw_image,
            fallback_regions=tuple(settings.fly_fallback_regions),
            gateway_url_template=settings.gateway_url_template,
            platform_keys=settings.platform_key_map(),
            platform_proxy_url=settings.platform_proxy_url,
            wait_seconds=settings.reconcile_wait_seconds,
        )


class _MoveRegion(Exception):
    """No room for a tenant that has never run in its region: try the next one."""

    def __init__(self, error: FlyError) -> None:
        super().__init__(str(error))
        self.error = error


def app_name_for(prefix: str, tenant_id: str) -> str:
    """The tenant's Fly app name: deterministic (so a create can be adopted) and globally unique."""
    return f"{prefix}{tenant_id}".lower()[:63]


def machine_hash(config: Mapping[str, Any]) -> str:
    """Content hash of a whole machine config (without the hash itself): any change of image, size,
    services, autostart, files or secrets version changes it."""
    metadata = {k: v for k, v in dict(config.get("metadata") or {}).items() if k != META_MACHINE_HASH}
    return content_hash(canonical_json({**config, "metadata": metadata}))


def _services(config: Mapping[str, Any]) -> list[tuple[Any, ...]]:
    return sorted(
        (s.get("internal_port"), s.get("autostart"), s.get("autostop"), s.get("min_machines_running"))
        for s in config.get("services") or []
    )


def drifted_fields(desired: Mapping[str, Any], observed: Mapping[str, Any]) -> list[str]:
    """Which parts of a machine config differ between what we want and what Fly shows: our hash in
    the metadata, and the fields a hand edit usually touches (image, size, env, the config file,
    services' autostart, mounts). A part Fly does not show (e.g. in the org listing's summary) is
    not compared."""
    diff = []
    if (observed.get("metadata") or {}).get(META_MACHINE_HASH) != desired["metadata"][META_MACHINE_HASH]:
        diff.append("metadata")
    if "image" in observed and observed["image"] != desired["image"]:
        diff.append("image")
    guest = observed.get("guest")
    if guest is not None and any(
        guest.get(k) != desired["guest"][k] for k in ("cpu_kind", "cpus", "memory_mb")
    ):
        diff.append("guest")
    if "env" in observed and observed["env"] != desired["env"]:
        diff.append("env")
    if "files" in observed:
        seen = sorted((f.get("guest_path"), f.get("raw_value")) for f in observed["files"] or [])
        want = sorted((f["guest_path"], f["raw_value"]) for f in desired.get("files") or [])
        if seen != want:
            diff.append("files")
    if "services" in observed and _services(observed) != _services(desired):
        diff.append("services")
    if "mounts" in observed:
        if sorted(m.get("volume") for m in observed["mounts"] or []) != sorted(
            m["volume"] for m in desired["mounts"]
        ):
            diff.append("mounts")
    return diff


class TenantReconciler:
    """``await reconciler.reconcile(tenant_id)``: see the module docstring."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        fly: FlyClient,
        catalog: PlanCatalog,
        config: ReconcilerConfig,
        *,
        probes: httpx.AsyncClient,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.fly = fly
        self.catalog = catalog
        self.config = config
        self.probes = probes
        self.clock: Clock = clock or SystemClock()

    # -- entry point ----------------------------------------------------------------------------
    async def reconcile(self, tenant_id: str) -> Result:
        tenant = await store.load_desired(self.db, tenant_id)
        if tenant is None:
            return Result.done("no such tenant")
        if tenant.lifecycle_state is LifecycleState.gone:
            return Result.done("gone")
        plan = self._plan(tenant)
        decision = decide(tenant, plan, platform_providers=self.config.platform_keys, now=self.clock.now())
        if decision.target is Target.destroyed:
            return await self._destroy(tenant)
        if decision.target is Target.absent:  # nothing to create: converged as it is
            await self._observed(
                tenant, None, None, converged=True, lifecycle=(decision.lifecycle, decision.reason)
            )
            return self._then(decision, Result.done(decision.reason))
        app = await self._ensure_app(tenant)
        try:
            if decision.target is Target.stopped:
                return self._then(decision, await self._stop(tenant, app, plan, decision))
            if tenant.fly.pending_destroy and store.RECREATE in tenant.fly.pending_destroy:
                return await self._recreate(tenant, app, dict(tenant.fly.pending_destroy[store.RECREATE]))
            return self._then(decision, await self._run(tenant, app, plan, decision))
        except _MoveRegion as move:
            return await self._move_region(tenant, app, move.error)

    def _then(self, decision: Decision, result: Result) -> Result:
        """Look again when the decision changes by itself (a grace period or retention ends)."""
        if decision.look_again_at is None:
            return result
        seconds = max(1.0, (decision.look_again_at - self.clock.now()).total_seconds() + 1.0)
        if result.requeue_after is not None:
            seconds = min(seconds, result.requeue_after)
        return Result.after(seconds, result.note)

    def _plan(self, tenant: DesiredTenant) -> Plan:
        try:
            return self.catalog.plan(tenant.plan)
        except UnknownPlanError:
            raise TerminalError(f"plan {tenant.plan!r} is not in the plan catalog") from None

    async def _transition(self, tenant: DesiredTenant, state: LifecycleState, reason: str) -> None:
        if tenant.lifecycle_state is not state:
            await store.transition(self.db, tenant.id, state, actor=ACTOR, reason=reason)

    async def _audit(self, tenant: DesiredTenant, action: str, reason: str, **after: Any) -> None:
        await store.record_step(
            self.db, tenant.id, actor=ACTOR, action=action, reason=reason, after=after or None
        )

    @staticmethod
    def _step(action: str, reason: str, **after: Any) -> Step:
        return Step(action, reason, after or None, ACTOR)

    # -- rendering ------------------------------------------------------------------------------
    def _spec(self, tenant: DesiredTenant, app: str, decision: Decision) -> TenantSpec:
        return TenantSpec(
            tenant_id=tenant.id,
            app_name=app,
            plan=tenant.plan,
            byok_providers=tenant.usable_providers,
            platform_keys=decision.platform_providers,
            channels=tuple(
                ChannelSpec(
                    kind=c.kind,  # checked by the model
                    allow_from=tuple(c.settings.get("allow_from", ())),
                    dm_policy=c.settings.get("dm_policy"),
                )
                for c in tenant.channels
            ),
            chosen_model=tenant.model_preference,
            strategy=tenant.routing_strategy.value,
            region=tenant.region,
            image=tenant.image(self.config.default_image),
            desired_rev=tenant.desired_rev,
            platform_proxy_url=self.config.platform_proxy_url,
        )

    def _render(
        self, tenant: DesiredTenant, app: str, decision: Decision
    ) -> tuple[TenantSpec, RenderedOpenClawConfig]:
        try:
            spec = self._spec(tenant, app, decision)
            return spec, render_openclaw_config(spec, self.catalog)
        except NoUsableModelError as exc:
            raise TerminalError(f"no usable model: {exc}") from None
        except (ChannelPolicyError, SecretLikeValueError, ValueError) as exc:
            raise TerminalError(f"invalid agent config: {exc}") from None

    def _machine_config(
        self,
        spec: TenantSpec,
        rendered: RenderedOpenClawConfig,
        *,
        volume_id: str,
        secrets_version: int | None,
        autostart: bool,
    ) -> dict[str, Any]:
        config = render_machine_config(
            spec, self.catalog, volume_id=volume_id, openclaw=rendered, autostart=autostart
        )
        config["metadata"][META_SECRETS_VERSION] = str(secrets_version or 0)
        config["metadata"][META_MACHINE_HASH] = machine_hash(config)
        return config

    # -- step: app ------------------------------------------------------------------------------
    @timed_step("app")
    async def _ensure_app(self, tenant: DesiredTenant) -> str:
        name = tenant.fly.app_name or app_name_for(self.config.app_prefix, tenant.id)
        starting = tenant.lifecycle_state in (LifecycleState.pending, LifecycleState.stopped)
        if tenant.fly.app_name is None:  # the deterministic name first
            lifecycle = Lifecycle(LifecycleState.provisioning, "creating the agent") if starting else None
            await store.record_app(self.db, tenant.id, name, lifecycle=lifecycle)
            starting = False
        if tenant.fly.volume_id is None and tenant.fly.machine_id is None:
            # Nothing recorded on Fly yet (or everything lost): create-or-adopt, on its own network.
            await create_app_idempotent(self.fly, name, org=self.config.org, network=name)
            if starting:
                await store.transition(
                    self.db, tenant.id, LifecycleState.provisioning, actor=ACTOR, reason="creating the agent"
                )
        return name

    # -- step: volume ---------------------------------------------------------------------------
    @timed_step("volume")
    async def _ensure_volume(self, tenant: DesiredTenant, app: str, spec: TenantSpec, plan: Plan) -> str:
        want = plan.machine.volume_size_gb
        if tenant.fly.volume_id is not None:
            volume = await self._get_volume(app, tenant.fly.volume_id)
            if volume is not None:
                if (volume.size_gb or 0) < want:
                    await self.fly.extend_volume(app, volume.id, want)
                    step = self._step(
                        "volume.extended", f"plan {plan.id} has {want} GB", volume_id=volume.id, size_gb=want
                    )
                    await store.record_volume(self.db, tenant.id, volume.id, want, step=step)
                elif volume.size_gb != tenant.fly.volume_size_gb:
                    await store.record_volume(self.db, tenant.id, volume.id, volume.size_gb)
                return volume.id
            lost = self._step(
                "volume.lost",
                "the volume is gone on Fly: the agent's data is lost; a new empty volume is created",
                volume_id=tenant.fly.volume_id,
            )
            await store.record_volume(self.db, tenant.id, None, None, step=lost)
        request = CreateVolumeRequest.model_validate(render_volume_request(spec, self.catalog))
        volume = None
        if tenant.fly.volume_create_tag is not None:
            volume = await self._find_volume(app)  # an earlier attempt may have created it
        else:
            await store.record_volume_create_tag(self.db, tenant.id, uuid.uuid4().hex)
        if volume is None:
            try:
                volume = await self.fly.create_volume(app, request)
            except (FlyRegionCapacity, FlyQuotaExceeded) as exc:
                raise _MoveRegion(exc) from None
            except FlyAmbiguous:
                volume = await self._find_volume(app)
                if volume is None:
                    raise
        created = self._step(
            "volume.created", f"{volume.size_gb or want} GB in {request.region}", volume_id=volume.id
        )
        await store.record_volume(self.db, tenant.id, volume.id, volume.size_gb or want, step=created)
        return volume.id

    async def _get_volume(self, app: str, volume_id: str) -> Volume | None:
        try:
            volume = await self.fly.get_volume(app, volume_id)
        except FlyNotFound:
            return None
        return None if volume.state in ("destroyed", "destroying", "pending_destroy") else volume

    async def _find_volume(self, app: str) -> Volume | None:
        live = [
            v
            for v in await self.fly.list_volumes(app)
            if v.name == VOLUME_NAME and v.state not in ("destroyed", "destroying", "pending_destroy")
        ]
        live.sort(key=lambda v: (v.created_at or "", v.id))
        return live[0] if live else None

    # -- step: secrets --------------------------------------------------------------------------
    async def _secret_values(self, tenant: DesiredTenant, rendered: RenderedOpenClawConfig) -> dict[str, str]:
        """env var -> plaintext, for the push only (memory of this run; never logged)."""
        plain: dict[str, str] = {}
        async with self.db.transaction() as s:
            for env in rendered.secret_env:
                value: str | None
                if env.kind == "gateway":
                    value = await ensure_secret(
                        s,
                        self.vault,
                        tenant_id=tenant.id,
                        name=GATEWAY_TOKEN_SECRET,
                        generate=lambda: pysecrets.token_hex(32),
                    )
                elif env.kind == "platform" and env.generated:
                    value = await ensure_secret(
                        s,
                        self.vault,
                        tenant_id=tenant.id,
                        name=PLATFORM_PROXY_TOKEN_SECRET,
                        generate=lambda: pysecrets.token_hex(32),
                    )
                elif env.kind == "platform":
                    key = self.config.platform_keys.get(env.subject)
                    value = key.get_secret_value() if key is not None else None
                elif env.kind == "channel" and env.generated:
                    value = await ensure_secret(
                        s,
                        self.vault,
                        tenant_id=tenant.id,
                        name=channel_env_secret_name(env.subject, env.env_var),
                        generate=lambda: pysecrets.token_hex(32),
                    )
                elif env.kind == "channel":
                    value = await read_secret(
                        s,
                        self.vault,
                        tenant_id=tenant.id,
                        name=channel_env_secret_name(env.subject, env.env_var),
                    )
                else:
                    value = await read_secret(
                        s, self.vault, tenant_id=tenant.id, name=provider_secret_name(env.subject)
                    )
                if value is not None:
                    plain[env.env_var] = value
        return plain

    @timed_step("secrets")
    async def _ensure_secrets(
        self, tenant: DesiredTenant, app: str, rendered: RenderedOpenClawConfig
    ) -> tuple[int | None, str]:
        """Push the app secrets when they changed; returns (secrets version, gateway token)."""
        plain = await self._secret_values(tenant, rendered)
        try:
            gateway_token = plain[GATEWAY_TOKEN_ENV]
            digest = self.vault.fingerprint("\n".join(f"{k}={v}" for k, v in sorted(plain.items())))
            known = dict(tenant.fly.secret_digests)
            version = tenant.fly.secrets_version
            why = None
            if version is None or digest != tenant.fly.secrets_digest or set(known) != set(plain):
                why = "the agent's secrets changed"
            elif await self._secrets_changed_on_fly(app, version, known):
                why = "app secrets were changed on Fly by hand"
                await self._audit(tenant, "secrets.drift", why, version=version)
            if why is None:
                return version, gateway_token
            update = await self.fly.set_secrets(app, plain)
            version = update.version
            fly_digests = {s.name: s.digest or "" for s in update.secrets if s.name in plain}
            stale = sorted(set(known) - set(plain))
            if stale:
                version = await self.fly.unset_secrets(app, stale) or version
            pushed = self._step("secrets.pushed", why, version=version, names=sorted(plain), removed=stale)
            await store.record_secrets(
                self.db, tenant.id, version=version, digest=digest, fly_digests=fly_digests, step=pushed
            )
            return version, gateway_token
        finally:
            plain.clear()

    async def _secrets_changed_on_fly(self, app: str, version: int, known: Mapping[str, str]) -> bool:
        try:
            listed = await self.fly.list_secrets(app, min_version=version)
        except FlyPrecondition:
            return False  # our version is not visible yet: nothing to compare against
        seen = {s.name: s.digest or "" for s in listed}
        return any(seen.get(name) != digest for name, digest in known.items())

    # -- step: machine --------------------------------------------------------------------------
    async def _get_machine(self, app: str, machine_id: str) -> Machine | None:
        """The machine, or ``None`` only when Fly CONFIRMS it gone (invariant 2): ``destroyed``, or a
        404 seen twice a second apart while the app itself answers (a single 404 right after a create
        can be read-after-write lag)."""
        for attempt in range(2):
            try:
                machine = await self.fly.get_machine(app, machine_id)
            except FlyNotFound:
                if attempt == 0:
                    await self.fly.clock.sleep(self.config.confirm_gone_seconds)
                    continue
                try:
                    await self.fly.get_app(app)
                except FlyNotFound:
                    raise TransientError(
                        f"app {app} is not found on Fly while its machine is looked up"
                    ) from None
                return None
            return None if machine.state == "destroyed" else machine
        return None

    async def _until_secrets_visible(self, call: Callable[[], Awaitable[T]]) -> T:
        for attempt in range(SECRETS_VISIBLE_TRIES):
            try:
                return await call()
            except FlySecretsNotVisible:
                if attempt == SECRETS_VISIBLE_TRIES - 1:
                    raise
                await self.fly.clock.sleep(SECRETS_VISIBLE_BACKOFF.delay(attempt))
        raise AssertionError("unreachable")

    @timed_step("machine")
    async def _ensure_machine(
        self,
        tenant: DesiredTenant,
        app: str,
        config: dict[str, Any],
        secrets_version: int | None,
    ) -> tuple[Machine, bool]:
        """The machine with ``config`` applied; the flag says whether this run created or updated it."""
        if tenant.fly.machine_id is not None:
            machine = await self._get_machine(app, tenant.fly.machine_id)
            if machine is not None:
                if not machine.host_ok:
                    raise TransientError(f"machine {machine.id}: host {machine.host_status}; not touching it")
                if self._applied(machine, config):
                    return machine, False
                updated = await self._update(app, machine, config, secrets_version)
                step = self._step(
                    "machine.updated",
                    self._why_update(tenant, machine, config),
                    machine_id=machine.id,
                    desired_rev=tenant.desired_rev,
                    image=config["image"],
                )
                await store.record_applied(
                    self.db,
                    tenant.id,
                    instance_id=updated.instance_id,
                    config_hash=config["metadata"][META_MACHINE_HASH],
                    image=config["image"],
                    step=step,
                )
                return updated, True
            lost = self._step(
                "machine.lost",
                "the machine is gone on Fly (confirmed): creating a new one",
                machine_id=tenant.fly.machine_id,
            )
            await store.forget_machine(self.db, tenant.id, step=lost)
        tag = tenant.fly.machine_create_tag
        lookup_first = tag is not None  # a previous attempt may have created it
        if tag is None:
            tag = uuid.uuid4().hex
            await store.record_machine_create_tag(self.db, tenant.id, tag)  # before the create (invariant 2)
        request = CreateMachineRequest(
            config=MachineConfig.model_validate(config),
            region=tenant.region,
            min_secrets_version=secrets_version,
        )
        try:
            machine = await self._until_secrets_visible(
                lambda: create_machine_idempotent(self.fly, app, request, tag, lookup_first=lookup_first)
            )
        except (FlyRegionCapacity, FlyQuotaExceeded, FlyVolumeHostFull) as exc:
            if tenant.lifecycle_state in (LifecycleState.pending, LifecycleState.provisioning):
                raise _MoveRegion(exc) from None
            raise
        except FlyBadRequest as exc:
            raise TerminalError(f"Fly refused the machine config: {exc}") from None
        created = self._step(
            "machine.created",
            f"in {tenant.region}",
            machine_id=machine.id,
            desired_rev=tenant.desired_rev,
            image=config["image"],
        )
        await store.record_machine(  # the id before anything else can fail (invariant 1)
            self.db,
            tenant.id,
            machine.id,
            machine.instance_id,
            config_hash=config["metadata"][META_MACHINE_HASH],
            image=config["image"],
            step=created,
        )
        return machine, True

    @staticmethod
    def _applied(machine: Machine, config: Mapping[str, Any]) -> bool:
        if machine.config is None:
            return False
        return not drifted_fields(config, machine.config.model_dump(mode="json", exclude_none=True))

    @staticmethod
    def _why_update(tenant: DesiredTenant, machine: Machine, config: Mapping[str, Any]) -> str:
        """A machine that differs from a config we already applied was edited by hand."""
        observed = machine.config.model_dump(mode="json", exclude_none=True) if machine.config else {}
        fields = ", ".join(drifted_fields(config, observed)) or "config"
        if config["metadata"][META_MACHINE_HASH] == tenant.fly.config_hash:
            return f"put back: edited outside the control plane ({fields})"
        return f"desired config changed ({fields})"

    async def _update(
        self, app: str, machine: Machine, config: dict[str, Any], secrets_version: int | None
    ) -> Machine:
        """Whole-config update under a Fly lease whose nonce goes with the write (invariant 5)."""
        async with MachineLease(
            self.fly, app, machine.id, ttl=self.config.lease_ttl_seconds, description="controlplane reconcile"
        ) as lease:
            version = machine.current_version
            for attempt in range(2):
                request = UpdateMachineRequest(
                    config=MachineConfig.model_validate(config),
                    current_version=version,
                    min_secrets_version=secrets_version,
                )
                try:
                    return await self._until_secrets_visible(
                        lambda request=request: self.fly.update_machine(  # type: ignore[misc]
                            app, machine.id, request, nonce=lease.nonce
                        )
                    )
                except FlyStaleVersion:
                    if attempt == 1:
                        raise
                    version = (await self.fly.get_machine(app, machine.id)).current_version
                except FlyBadRequest as exc:
                    raise TerminalError(f"Fly refused the machine config: {exc}") from None
        raise AssertionError("unreachable")

    # -- running --------------------------------------------------------------------------------
    async def _run(self, tenant: DesiredTenant, app: str, plan: Plan, decision: Decision) -> Result:
        spec, rendered = self._render(tenant, app, decision)
        if (
            tenant.lifecycle_state in (LifecycleState.pending, LifecycleState.stopped)
            and tenant.fly.machine_id is None
        ):
            await self._transition(tenant, LifecycleState.provisioning, "creating the agent")
        # Secrets before the volume: Fly's secret store is eventually consistent, and the volume call
        # gives a new version time to become visible before the machine asks for it.
        secrets_version, gateway_token = await self._ensure_secrets(tenant, app, rendered)
        volume_id = await self._ensure_volume(tenant, app, spec, plan)
        config = self._machine_config(
            spec, rendered, volume_id=volume_id, secrets_version=secrets_version, autostart=True
        )
        machine, changed = await self._ensure_machine(tenant, app, config, secrets_version)
        sleeps = plan.sleep_when_idle
        state = machine.state or ""
        if state in STOPPED_STATES and sleeps and not self._was_stopped_by_us(tenant):
            # Autostopped by Fly's proxy: asleep, not down. Never wake it (it gets the new config at
            # its next wake).
            await self._observed(
                tenant,
                machine,
                state,
                converged=True,
                lifecycle=(LifecycleState.sleeping, "idle: autostopped by Fly, wakes on traffic"),
            )
            return Result.done("sleeping")
        if state in STOPPED_STATES or state == "failed":
            await self._start(app, machine)
            await self._audit(tenant, "machine.started", f"was {state}", machine_id=machine.id)
        return await self._await_running(tenant, app, machine, gateway_token, changed=changed)

    def _was_stopped_by_us(self, tenant: DesiredTenant) -> bool:
        """A machine the control plane stopped (billing, operator) must be started again, even on a
        plan that sleeps; one Fly autostopped is left asleep."""
        return tenant.lifecycle_state is LifecycleState.stopped

    @timed_step("start")
    async def _start(self, app: str, machine: Machine) -> None:
        try:
            await self.fly.start_machine(app, machine.id)
        except FlyWrongState:
            raise TransientError(
                f"machine {machine.id} is not startable yet (state {machine.state})"
            ) from None

    @timed_step("wait")
    async def _await_running(
        self, tenant: DesiredTenant, app: str, machine: Machine, gateway_token: str, *, changed: bool
    ) -> Result:
        version = machine.current_version if changed else None
        try:
            waited = await wait_for(
                self.fly, app, machine.id, "started", timeout=self.config.wait_seconds, version=version
            )
        except FlyWaitError as exc:
            last = getattr(exc, "last_state", None)
            if last in ("failed", "destroyed", "launch_failed"):
                raise TransientError(f"machine {machine.id} is {last}") from None
            await self._observed(tenant, machine, last or machine.state)
            return Result.after(
                self.config.look_again_seconds, f"machine {machine.id} not started yet ({last})"
            )
        state = waited.state or "started"
        startup = await self._probe(app, "/startupz", gateway_token)
        deadline = self.fly.clock.monotonic() + self.config.gateway_wait_seconds
        while startup != 200 and self.fly.clock.monotonic() < deadline:
            await self.fly.clock.sleep(self.config.probe_interval_seconds)  # probes are not Fly API calls
            startup = await self._probe(app, "/startupz", gateway_token)
        if startup != 200:
            await self._observed(tenant, machine, state)
            return Result.after(
                self.config.look_again_seconds, f"gateway not started yet (/startupz {startup})"
            )
        ready = await self._probe(app, "/readyz", gateway_token)
        await self._observed(
            tenant,
            machine,
            state,
            converged=True,
            lifecycle=(LifecycleState.running, f"machine {machine.id} started; gateway up (/readyz {ready})"),
        )
        return Result.done(f"running (/readyz {ready})")

    async def _probe(self, app: str, path: str, token: str) -> int | str:
        url = self.config.gateway_url_template.format(app=app).rstrip("/") + path
        try:
            response = await self.probes.get(
                url, headers={"authorization": f"Bearer {token}"}, timeout=self.config.probe_timeout_seconds
            )
        except httpx.HTTPError as exc:
            return type(exc).__name__
        return response.status_code

    async def _observed(
        self,
        tenant: DesiredTenant,
        machine: Machine | None,
        state: str | None,
        *,
        converged: bool = False,
        lifecycle: tuple[LifecycleState, str] | None = None,
    ) -> None:
        """Record what Fly showed (and, converged, the revision now applied), with the lifecycle
        transition it implies, in one transaction."""
        transition = None
        if lifecycle is not None and tenant.lifecycle_state is not lifecycle[0]:
            transition = Lifecycle(lifecycle[0], lifecycle[1], ACTOR)
        await store.record_observed(
            self.db,
            tenant.id,
            state=state,
            observed_rev=tenant.desired_rev if converged else None,
            at=self.clock.now(),
            lifecycle=transition,
        )

    # -- stopped --------------------------------------------------------------------------------
    @timed_step("stop")
    async def _stop(self, tenant: DesiredTenant, app: str, plan: Plan, decision: Decision) -> Result:
        """Keep the resources; autostart OFF first (so nothing can wake it), then stop."""
        if tenant.fly.machine_id is None or tenant.fly.volume_id is None:
            await self._observed(
                tenant, None, None, converged=True, lifecycle=(decision.lifecycle, decision.reason)
            )
            return Result.done(decision.reason)
        machine = await self._get_machine(app, tenant.fly.machine_id)
        if machine is None:
            await store.forget_machine(self.db, tenant.id)
            await self._observed(
                tenant, None, None, converged=True, lifecycle=(decision.lifecycle, decision.reason)
            )
            return Result.done(decision.reason)
        spec, rendered = self._render_for_stop(tenant, app, decision)
        if rendered is not None:
            config = self._machine_config(
                spec,
                rendered,
                volume_id=tenant.fly.volume_id,
                secrets_version=tenant.fly.secrets_version,
                autostart=False,
            )
            if not self._applied(machine, config) and machine.host_ok:
                machine = await self._update(app, machine, config, tenant.fly.secrets_version)
                await store.record_applied(
                    self.db,
                    tenant.id,
                    instance_id=machine.instance_id,
                    config_hash=config["metadata"][META_MACHINE_HASH],
                    image=config["image"],
                    step=self._step("machine.autostart_off", decision.reason, machine_id=machine.id),
                )
        state = machine.state or ""
        if state in SETTLING_STATES:
            try:
                waited = await wait_for(
                    self.fly,
                    app,
                    machine.id,
                    ["started", "stopped", "suspended"],
                    timeout=self.config.wait_seconds,
                )
                state = waited.state or state
            except FlyWaitError:
                return Result.after(self.config.look_again_seconds, "machine still settling")
        if state not in STOPPED_STATES:
            await self.fly.stop_machine(app, machine.id)
            await self._audit(tenant, "machine.stopped", decision.reason, machine_id=machine.id)
            try:
                await wait_for(self.fly, app, machine.id, "stopped", timeout=self.config.wait_seconds)
            except FlyWaitError:
                return Result.after(self.config.look_again_seconds, "machine stopping")
            state = "stopped"
        await self._observed(
            tenant, machine, state, converged=True, lifecycle=(decision.lifecycle, decision.reason)
        )
        return Result.done(decision.reason)

    def _render_for_stop(
        self, tenant: DesiredTenant, app: str, decision: Decision
    ) -> tuple[TenantSpec, RenderedOpenClawConfig | None]:
        """The config a stopped agent keeps (autostart off). With no usable key (nothing to route)
        the machine keeps its last config and is only stopped."""
        spec = self._spec(tenant, app, decision)
        try:
            return spec, render_openclaw_config(spec, self.catalog)
        except (NoUsableModelError, ChannelPolicyError, SecretLikeValueError, ValueError):
            return spec, None

    # -- regions --------------------------------------------------------------------------------
    async def _move_region(self, tenant: DesiredTenant, app: str, error: FlyError) -> Result:
        tried = await self._regions_tried(tenant)
        candidates = [r for r in self.config.fallback_regions if r not in tried]
        if not candidates:
            raise TerminalError(
                f"no capacity for a new agent: {type(error).__name__} in {', '.join(sorted(tried))} and no "
                "fallback region left (CP_FLY_FALLBACK_REGIONS)"
            )
        new = candidates[0]
        if tenant.fly.volume_id is not None:  # an empty volume made for the region that failed
            await self._destroy_volume(tenant, app, tenant.fly.volume_id)
        await store.move_region(
            self.db,
            tenant.id,
            old=tenant.region,
            new=new,
            actor=ACTOR,
            reason=f"{type(error).__name__} in {tenant.region}: {error.message}",
        )
        return Result.after(0.0, f"moved from {tenant.region} to {new}")

    async def _regions_tried(self, tenant: DesiredTenant) -> set[str]:
        async with self.db.read() as s:
            rows = (
                await s.execute(
                    select(AuditLog.before).where(
                        AuditLog.tenant_id == tenant.id, AuditLog.action == "region.moved"
                    )
                )
            ).scalars()
            tried = {str(b.get("region")) for b in rows if b}
        return tried | {tenant.region}

    # -- destroy (two-phase, invariant 3) -------------------------------------------------------
    @timed_step("destroy")
    async def _destroy(self, tenant: DesiredTenant) -> Result:
        app = tenant.fly.app_name
        if tenant.lifecycle_state is not LifecycleState.deprovisioning:
            await self._transition(tenant, LifecycleState.deprovisioning, "retention period over: destroying")
        if app is not None:
            if tenant.fly.machine_id is not None:
                await self._destroy_machine(tenant, app, tenant.fly.machine_id)
            if tenant.fly.volume_id is not None:
                await self._destroy_volume(tenant, app, tenant.fly.volume_id)
            if not await self._destroy_app(tenant, app):
                return Result.after(2.0, f"app {app} is being deleted")
        async with self.db.transaction() as s:
            await delete_all_secrets(s, tenant_id=tenant.id)
        await store.transition(
            self.db, tenant.id, LifecycleState.gone, actor=ACTOR, reason="resources destroyed"
        )
        return Result.done("gone")

    async def _destroy_machine(self, tenant: DesiredTenant, app: str, machine_id: str) -> None:
        await store.record_pending_destroy(self.db, tenant.id, {"machine": machine_id})
        try:
            await self.fly.destroy_machine(app, machine_id, force=True, missing_ok=True)
            await wait_for(self.fly, app, machine_id, "destroyed", timeout=self.config.wait_seconds)
        except FlyNotFound:
            pass  # the app is already gone: so is the machine
        await store.forget_machine(self.db, tenant.id)
        await store.record_pending_destroy(self.db, tenant.id, None)
        await self._audit(tenant, "machine.destroyed", "retention over", machine_id=machine_id)

    async def _destroy_volume(self, tenant: DesiredTenant, app: str, volume_id: str) -> None:
        await store.record_pending_destroy(self.db, tenant.id, {"volume": volume_id})
        try:
            await self.fly.delete_volume(app, volume_id, missing_ok=True)
        except FlyNotFound:
            pass
        if await self._get_volume(app, volume_id) is not None:
            raise TransientError(f"volume {volume_id} is still there after its delete")
        await store.record_volume(self.db, tenant.id, None, None)
        await store.record_pending_destroy(self.db, tenant.id, None)
        await self._audit(tenant, "volume.destroyed", "destroyed", volume_id=volume_id)

    async def _recreate(self, tenant: DesiredTenant, app: str, request: dict[str, Any]) -> Result:
        """An operator's ``tenant recreate`` (controlplane/ops/recreate.py): the request recorded in
        ``pending_destroy`` is phase one; destroy the machine (and the volume when asked), clear the
        request once Fly confirms them gone, and look again at once to create them from desired state.
        Each step is skipped when its resource is no longer the one recorded (a retried run)."""
        machine_id, volume_id = request.get("machine"), request.get("volume")
        why = "recreate requested by an operator"
        if machine_id and tenant.fly.machine_id == machine_id:
            try:
                await self.fly.destroy_machine(app, machine_id, force=True, missing_ok=True)
                await wait_for(self.fly, app, machine_id, "destroyed", timeout=self.config.wait_seconds)
            except FlyNotFound:
                pass
            step = self._step("machine.destroyed", why, machine_id=machine_id)
            await store.forget_machine(self.db, tenant.id, step=step)
        if volume_id and tenant.fly.volume_id == volume_id:
            await self.fly.delete_volume(app, volume_id, missing_ok=True)
            if await self._get_volume(app, volume_id) is not None:
                raise TransientError(f"volume {volume_id} is still there after its delete")
            step = self._step(
                "volume.destroyed", why + " with a fresh volume (its data is lost)", volume_id=volume_id
            )
            await store.record_volume(self.db, tenant.id, None, None, step=step)
        await store.record_pending_destroy(self.db, tenant.id, None)
        return Result.after(0.0, "recreate: destroyed; creating again from desired state")

    async def _destroy_app(self, tenant: DesiredTenant, app: str) -> bool:
        """Delete the app; ``True`` once Fly confirms it gone (GET 404)."""
        if not tenant.fly.pending_destroy or tenant.fly.pending_destroy.get("app") != app:
            await store.record_pending_destroy(self.db, tenant.id, {"app": app})
            await self.fly.delete_app(app, force=True, missing_ok=True)
        try:
            await self.fly.get_app(app)
        except FlyNotFound:
            await store.forget_app(self.db, tenant.id)
            await store.record_pending_destroy(self.db, tenant.id, None)
            await self._audit(tenant, "app.destroyed", "destroyed", app=app)
            return True
        return False


__all__ = [
    "META_MACHINE_HASH",
    "META_SECRETS_VERSION",
    "ReconcilerConfig",
    "TenantReconciler",
    "app_name_for",
    "drifted_fields",
    "machine_hash",
]
