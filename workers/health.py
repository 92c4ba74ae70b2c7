"""The health sweep: the whole fleet watched with a handful of Fly API calls, turned into banners.

One :meth:`HealthSweeper.sweep`:

1. **Machine states in bulk.** The org-wide listing (``OrgMachineScan``, a page per thousand
   machines). A process's first sweep, and every ``CP_HEALTH_FULL_LIST_EVERY``-th, lists the whole
   fleet; the others ask only for what changed since the newest ``updated_at`` seen, minus
   ``CP_HEALTH_LIST_OVERLAP_SECONDS`` (Fly's listing is eventually consistent: a change appears late
   with its own, earlier ``updated_at``), with deleted machines included so they leave the picture.
   The picture is kept per process; a process whose picture is older simply asks from further back.
2. **Drift** (a machine gone, stopped that should run, a config hash or image that differs; the
   rules of :func:`workers.resync.drift_reason`) marks the tenant to reconcile. The sweep never
   changes anything on Fly.
3. **Probes.** ``/readyz`` of every agent that should run and whose machine is ``started``, with the
   tenant's gateway token, ``CP_HEALTH_PROBE_CONCURRENCY`` at once, short timeouts. Probes go to the
   agents (through Fly's proxy), not to Fly's API. A machine that is not started is never probed:
   the proxy would start an autostopped (sleeping) agent.
4. **Crash loops.** For an agent in trouble (probe failed, or stopped while it should run) or one
   already under watch, the machine's events: ``CP_HEALTH_CRASH_EXITS`` exits within
   ``CP_HEALTH_CRASH_WINDOW_SECONDS`` is a crash loop.
5. **The agent's own view** (Fly exec, no port opened): ``openclaw models status --json`` (which
   model credentials the agent finds unusable, and why) and ``openclaw channels status --json``, for
   each running agent once per ``CP_HEALTH_INTROSPECT_INTERVAL_SECONDS`` (spread evenly over the
   sweeps by a hash of the tenant id) and at once while a probe or an observation looks wrong. On
   the slow cadence also ``sessions.usage``: the agent's own token and cost counts, stored per
   tenant, UTC day, provider and model. No provider is called for any of this.
6. **Keys.** An agent reporting a key refused (``auth`` / ``auth_permanent``) has it re-validated
   at once through the key service's policy (broken only after its consecutive refusals). An
   agent reporting ``billing`` is believed as it is: no provider call.
7. **Banners** (:mod:`controlplane.banners`): ``agent_down``, ``agent_crashlooping``,
   ``channel_down`` (per channel), ``key_no_credit`` and ``key_invalid`` (per provider), each after
   its threshold of consecutive bad observations, cleared when the cause is gone, audited.
"""

from __future__ import annotations

import asyncio
import random
import time
import zlib
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import structlog
from sqlalchemy import or_, select

from agents_config import Plan, PlanCatalog, UnknownPlanError
from controlplane import banners
from controlplane.banners import Finding, Observation
from controlplane.clock import Clock, SystemClock
from controlplane.dashboard.channels import record_channel_state
from controlplane.dashboard.usage import record_daily_usage
from controlplane.db import tenants as store
from controlplane.db.models import Banner, FlyResources, ProviderKey, Secret, Tenant
from controlplane.db.queue import mark_many
from controlplane.db.session import Database
from controlplane.enums import BannerKind, KeyStatus, KeyVerdict, LifecycleState
from controlplane.fly import FlyClient, OrgMachine, OrgMachineQuery, OrgMachineScan
from controlplane.fly.errors import FlyError
from controlplane.fly.models import MachineEvent
from controlplane.secrets_store import GATEWAY_TOKEN_SECRET
from controlplane.settings import Settings
from controlplane.vault import Vault, VaultError
from workers import agent_report as report_of
from workers.metrics import BANNER_CHANGES, DRIFT_MARKS, HEALTH_CALLS, HEALTH_SWEEP_SECONDS
from workers.resync import drift_reason

log = structlog.get_logger(__name__)

ACTOR = "poller"
SHOULD_RUN = frozenset({LifecycleState.running, LifecycleState.sleeping})
ASLEEP = frozenset({"stopped", "suspended"})
AGENT_KINDS = frozenset({BannerKind.agent_down, BannerKind.agent_crashlooping})
#: Kinds observed through the agent's own report: a banner of these under way keeps the agent
#: introspected every sweep until it clears or rises.
REPORTED_KINDS = frozenset({BannerKind.key_no_credit, BannerKind.channel_down})
KEY_REFUSED = frozenset({KeyVerdict.invalid_key, KeyVerdict.revoked_or_blocked, KeyVerdict.permission})
KEY_WARNING = frozenset({KeyVerdict.no_credit, KeyVerdict.spend_limit})

#: ``recheck(tenant_id, provider)``: re-validate a stored key now (the key service's policy);
#: returns the key's status afterwards, ``None`` when there is no such key.
Recheck = Callable[[str, str], Awaitable[KeyStatus | None]]


@dataclass(frozen=True, slots=True)
class HealthConfig:
    sweep_interval_seconds: float = 60.0
    introspect_interval_seconds: float = 3600.0
    probe_concurrency: int = 64
    probe_timeout_seconds: float = 3.0
    exec_concurrency: int = 16
    list_overlap_seconds: float = 120.0
    full_list_every: int = 60
    crash_window_seconds: float = 600.0
    crash_exits: int = 3
    max_inspect_per_sweep: int = 1000
    gateway_url_template: str = "https://{app}.fly.dev"
    thresholds: dict[BannerKind, int] = field(default_factory=banners.thresholds)

    @classmethod
    def from_settings(cls, settings: Settings) -> HealthConfig:
        return cls(
            sweep_interval_seconds=settings.health_sweep_interval_seconds,
            introspect_interval_seconds=settings.health_introspect_interval_seconds,
            probe_concurrency=settings.health_probe_concurrency,
            probe_timeout_seconds=settings.health_probe_timeout_seconds,
            exec_concurrency=settings.health_exec_concurrency,
            list_overlap_seconds=settings.health_list_overlap_seconds,
            full_list_every=settings.health_full_list_every,
            crash_window_seconds=settings.health_crash_window_seconds,
            crash_exits=settings.health_crash_exits,
            max_inspect_per_sweep=settings.health_max_inspect_per_sweep,
            gateway_url_template=settings.gateway_url_template,
            thresholds=banners.thresholds(settings.banner_thresholds),
        )

    @property
    def introspect_slots(self) -> int:
        return max(1, round(self.introspect_interval_seconds / self.sweep_interval_seconds))


@dataclass(slots=True)
class SweepReport:
    full_listing: bool = False
    listing_partial: bool = False
    machines_listed: int = 0
    machines_known: int = 0
    tenants: int = 0
    fly_list_calls: int = 0
    fly_event_calls: int = 0
    fly_exec_calls: int = 0
    probes_sent: int = 0
    probes_failed: int = 0
    introspected: int = 0
    inspect_deferred: int = 0  # agents past CP_HEALTH_MAX_INSPECT_PER_SWEEP: looked at next sweep
    usage_rows: int = 0
    keys_rechecked: int = 0
    drift_marked: int = 0
    banners_raised: int = 0
    banners_cleared: int = 0
    seconds: float = 0.0

    @property
    def fly_api_calls(self) -> int:
        return self.fly_list_calls + self.fly_event_calls + self.fly_exec_calls

    def to_dict(self) -> dict[str, Any]:
        names = [n for n in self.__slots__ if not n.startswith("_")]
        out: dict[str, Any] = {n: getattr(self, n) for n in names}
        out["fly_api_calls"] = self.fly_api_calls
        out["seconds"] = round(self.seconds, 3)
        return out


@dataclass(slots=True)
class _Target:
    """One tenant as the sweep sees it."""

    tenant: Tenant
    fly: FlyResources | None
    plan: Plan | None
    machine: OrgMachine | None
    restarted: bool = False
    watched: set[BannerKind] = field(default_factory=set)  # kinds with a banner up or under way
    keys: dict[str, ProviderKey] = field(default_factory=dict)
    readiness: report_of.Readiness | None = None
    probe_status: str | None = None
    exits: int | None = None  # recent exits, when events were read
    gave_up: bool = False
    unusable: list[report_of.UnusableKey] | None = None
    channels: list[report_of.ChannelHealth] | None = None
    usage: dict[Any, Any] | None = None
    recheck_status: dict[str, KeyStatus | None] = field(default_factory=dict)

    @property
    def should_run(self) -> bool:
        return self.tenant.lifecycle_state in SHOULD_RUN

    @property
    def started(self) -> bool:
        return self.machine is not None and self.machine.state == "started"

    @property
    def sleeps(self) -> bool:
        return self.plan.sleep_when_idle if self.plan is not None else False

    @property
    def down_without_probe(self) -> bool:
        """Should run, always-on, and its machine is stopped or failed (no probe needed)."""
        if not self.should_run or self.machine is None:
            return False
        state = self.machine.state or ""
        return state == "failed" or (state in ASLEEP and not self.sleeps)

    @property
    def in_trouble(self) -> bool:
        probe_bad = self.readiness is not None and not self.readiness.reachable
        return probe_bad or self.down_without_probe


class HealthSweeper:
    """Sweeps the fleet; keeps the listing's picture between sweeps of this process."""

    def __init__(
        self,
        db: Database,
        vault: Vault,
        fly: FlyClient,
        catalog: PlanCatalog,
        probes: httpx.AsyncClient,
        config: HealthConfig,
        *,
        recheck: Recheck | None = None,
        clock: Clock | None = None,
    ) -> None:
        self.db = db
        self.vault = vault
        self.fly = fly
        self.catalog = catalog
        self.probes = probes
        self.config = config
        self.recheck = recheck
        self.clock: Clock = clock or SystemClock()
        self.machines: dict[str, OrgMachine] = {}
        self.watermark: datetime | None = None
        self.sweeps = 0

    # -- 1. the listing ------------------------------------------------------------------------
    async def _list(self, report: SweepReport) -> set[str]:
        """Refresh the picture; returns ids of machines that restarted in place since the last one."""
        full = self.watermark is None or self.sweeps % self.config.full_list_every == 0
        query = OrgMachineQuery(summary=True)
        if not full:
            assert self.watermark is not None
            since = self.watermark - timedelta(seconds=self.config.list_overlap_seconds)
            query = OrgMachineQuery(summary=True, updated_after=since, include_deleted=True)
        scan = OrgMachineScan(self.fly, query)
        listed: dict[str, OrgMachine] = {}
        async for machine in scan:
            listed[machine.id] = machine
        report.full_listing = full
        report.listing_partial = scan.partial
        report.fly_list_calls = scan.pages
        report.machines_listed = len(listed)
        restarted: set[str] = set()
        if full and not scan.partial:
            self.machines = {}
        for machine_id, machine in listed.items():
            before = self.machines.get(machine_id)
            if machine.state in ("destroyed", "destroying"):
                self.machines.pop(machine_id, None)
                continue
            if (
                not full
                and before is not None
                and before.state == machine.state == "started"
                and before.version == machine.version
                and before.updated_at != machine.updated_at
            ):
                restarted.add(machine_id)  # changed without a state or version change: it restarted
            self.machines[machine_id] = machine
        newest = _parse_time(scan.last_updated_at)
        if newest is not None and (self.watermark is None or newest > self.watermark):
            self.watermark = newest
        report.machines_known = len(self.machines)
        return restarted

    # -- the sweep ---------------------------------------------------------------------------
    async def sweep(self, *, introspect_all: bool = False) -> SweepReport:
        started = time.perf_counter()
        report = SweepReport()
        now = self.clock.now()
        restarted = await self._list(report)
        self.sweeps += 1
        targets = await self._targets(restarted)
        report.tenants = len(targets)
        await self._mark_drift(targets, now, report)

        await self._probe_all([t for t in targets if t.should_run and t.started], report)
        slot = int(now.timestamp() // self.config.sweep_interval_seconds) % self.config.introspect_slots
        look = []
        for t in targets:
            if not (t.should_run and t.machine is not None):
                continue
            due = introspect_all or _slot_of(t.tenant.id, self.config.introspect_slots) == slot
            # a banner up or under way, or a key refused lately but not (yet) broken: look again now
            watched = bool(t.watched & (REPORTED_KINDS | AGENT_KINDS)) or any(
                k.consecutive_failures and k.status is not KeyStatus.broken for k in t.keys.values()
            )
            wrong = t.in_trouble or (t.readiness is not None and not t.readiness.ready)
            if t.restarted or wrong or watched or (t.started and due):
                look.append((t, due))
        # Trouble and observations under way first; beyond the cap, the next sweep looks (a fleet-wide
        # outage must not turn one sweep into thousands of Fly calls).
        look.sort(key=lambda item: (not (item[0].watched or item[0].in_trouble), not item[0].restarted))
        report.inspect_deferred = max(0, len(look) - self.config.max_inspect_per_sweep)
        await self._inspect_all(look[: self.config.max_inspect_per_sweep], report)
        await self._recheck_keys(targets, report)
        await self._record(targets, now, report)
        report.seconds = time.perf_counter() - started
        HEALTH_SWEEP_SECONDS.observe(report.seconds)
        for kind, count in (
            ("list", report.fly_list_calls),
            ("events", report.fly_event_calls),
            ("exec", report.fly_exec_calls),
            ("probe", report.probes_sent),
            ("probe_failed", report.probes_failed),
        ):
            HEALTH_CALLS.labels(kind).inc(count)
        log.info("health.sweep", **report.to_dict())
        return report

    async def _targets(self, restarted: set[str]) -> list[_Target]:
        async with self.db.read() as s:
            rows = await store.live_tenants_with_fly(s)
            watched = (
                await s.execute(
                    select(Banner.tenant_id, Banner.kind).where(
                        or_(Banner.active.is_(True), Banner.consecutive_bad > 0)
                    )
                )
            ).all()
            keys = (await s.scalars(select(ProviderKey))).all()
            s.expunge_all()  # plain snapshots from here: nothing is written back through them
        targets: dict[str, _Target] = {}
        for tenant, fly in rows:
            try:
                plan: Plan | None = self.catalog.plan(tenant.plan)
            except UnknownPlanError:
                plan = None
            machine = self.machines.get(fly.machine_id) if fly is not None and fly.machine_id else None
            targets[tenant.id] = _Target(
                tenant, fly, plan, machine, restarted=machine is not None and machine.id in restarted
            )
        for tenant_id, kind in watched:
            if tenant_id in targets:
                targets[tenant_id].watched.add(kind)
        for key in keys:
            if key.tenant_id in targets:
                targets[key.tenant_id].keys[key.provider] = key
        return list(targets.values())

    async def _mark_drift(self, targets: list[_Target], now: datetime, report: SweepReport) -> None:
        complete = self.watermark is not None and not report.listing_partial
        by_reason: dict[str, list[str]] = {}
        for t in targets:
            reason = drift_reason(
                (t.tenant, t.fly), t.machine, plan=t.plan, listing_complete=complete, now=now
            )
            if reason is not None:
                by_reason.setdefault(reason, []).append(t.tenant.id)
        if not by_reason:
            return
        async with self.db.transaction() as s:
            for reason, ids in sorted(by_reason.items()):
                await mark_many(
                    s,
                    ids,
                    f"health sweep: {reason}",
                    now=now,
                    spread_seconds=min(10.0, self.config.sweep_interval_seconds / 2),
                    rng=random.Random(),
                )
                report.drift_marked += len(ids)
                DRIFT_MARKS.labels(f"health: {reason}").inc(len(ids))

    # -- 3. probes -----------------------------------------------------------------------------
    async def _gateway_tokens(self, tenant_ids: list[str]) -> dict[str, str]:
        tokens: dict[str, str] = {}
        async with self.db.read() as s:
            for start in range(0, len(tenant_ids), 500):
                chunk = tenant_ids[start : start + 500]
                rows = await s.execute(
                    select(Secret.tenant_id, Secret.value).where(
                        Secret.tenant_id.in_(chunk), Secret.name == GATEWAY_TOKEN_SECRET
                    )
                )
                for tenant_id, value in rows.all():
                    try:
                        tokens[tenant_id] = self.vault.decrypt(
                            value, tenant_id=tenant_id, name=GATEWAY_TOKEN_SECRET
                        )
                    except VaultError:
                        log.warning("health.gateway_token_unreadable", tenant_id=tenant_id)
        return tokens

    async def _probe_all(self, targets: list[_Target], report: SweepReport) -> None:
        tokens = await self._gateway_tokens([t.tenant.id for t in targets])
        gate = asyncio.Semaphore(self.config.probe_concurrency)

        async def probe(t: _Target) -> None:
            app = t.fly.app_name if t.fly is not None else None
            token = tokens.get(t.tenant.id)
            if app is None or token is None:
                return
            url = self.config.gateway_url_template.format(app=app).rstrip("/") + "/readyz"
            async with gate:
                report.probes_sent += 1
                try:
                    answer = await self.probes.get(
                        url,
                        headers={"authorization": f"Bearer {token}"},
                        timeout=self.config.probe_timeout_seconds,
                    )
                    body: Any = None
                    if answer.headers.get("content-type", "").startswith("application/json"):
                        try:
                            body = answer.json()
                        except ValueError:
                            body = None
                    status: int | None = answer.status_code
                    t.probe_status = str(answer.status_code)
                except httpx.HTTPError as exc:
                    status, body = None, None
                    t.probe_status = type(exc).__name__
            t.readiness = report_of.readiness(status, body)
            if not t.readiness.reachable:
                report.probes_failed += 1

        await asyncio.gather(*(probe(t) for t in targets))
        tokens.clear()

    # -- 4 + 5. events and the agent's own view ---------------------------------------------------
    async def _inspect_all(self, look: list[tuple[_Target, bool]], report: SweepReport) -> None:
        gate = asyncio.Semaphore(self.config.exec_concurrency)

        async def inspect(t: _Target, due: bool) -> None:
            async with gate:
                if t.in_trouble or t.restarted or BannerKind.agent_crashlooping in t.watched:
                    await self._read_exits(t, report)
                if t.started:
                    await self._introspect(t, report, usage=due)

        await asyncio.gather(*(inspect(t, due) for t, due in look))

    async def _read_exits(self, t: _Target, report: SweepReport) -> None:
        assert t.machine is not None
        app = t.machine.app_name or (t.fly.app_name if t.fly is not None else None)
        if app is None:
            return
        report.fly_event_calls += 1
        try:
            events = await self.fly.list_events(app, t.machine.id, limit=50)
        except FlyError as exc:
            log.warning("health.events_failed", tenant_id=t.tenant.id, error=type(exc).__name__)
            return
        t.exits, t.gave_up = _recent_exits(events, self.clock.now(), self.config.crash_window_seconds)

    async def _exec(self, t: _Target, argv: Iterable[str], report: SweepReport) -> dict[str, Any] | None:
        assert t.machine is not None
        app = t.machine.app_name or (t.fly.app_name if t.fly is not None else None)
        if app is None:
            return None
        report.fly_exec_calls += 1
        try:
            result = await self.fly.exec_machine(app, t.machine.id, list(argv), timeout=20)
        except FlyError as exc:  # not started any more (412), a lease held (409), Fly busy ...
            log.info("health.exec_skipped", tenant_id=t.tenant.id, error=type(exc).__name__)
            return None
        return report_of.parse_json(result.stdout)  # never logged: the CLI prints key previews

    async def _introspect(self, t: _Target, report: SweepReport, *, usage: bool) -> None:
        report.introspected += 1
        models = await self._exec(t, report_of.MODELS_STATUS, report)
        if models is not None:
            t.unusable = report_of.unusable_keys(models)
        channels = await self._exec(t, report_of.CHANNELS_STATUS, report)
        if channels is not None and not channels.get("configOnly"):
            t.channels = report_of.channel_health(channels)
        if usage:
            sessions = await self._exec(t, report_of.SESSIONS_USAGE, report)
            if sessions is not None:
                t.usage = report_of.daily_usage(sessions)

    # -- 6. keys the agent finds refused ----------------------------------------------------------
    async def _recheck_keys(self, targets: list[_Target], report: SweepReport) -> None:
        if self.recheck is None:
            return
        for t in targets:
            if not t.unusable or not _converged(t):
                continue
            for item in t.unusable:
                if item.verdict in KEY_REFUSED and item.provider in t.keys:
                    report.keys_rechecked += 1
                    try:
                        t.recheck_status[item.provider] = await self.recheck(t.tenant.id, item.provider)
                    except Exception as exc:  # the provider unreachable: the next sweep tries again
                        log.warning(
                            "health.key_recheck_failed",
                            tenant_id=t.tenant.id,
                            provider=item.provider,
                            error=type(exc).__name__,
                        )

    # -- 7. banners, usage, channel states -------------------------------------------------------
    def _observation(self, t: _Target) -> Observation:
        scope: set[BannerKind] = set()
        findings: list[Finding] = []
        # keys our validator judged (stored status), refreshed by a re-check this sweep
        scope.add(BannerKind.key_invalid)
        for provider, key in t.keys.items():
            status = t.recheck_status.get(provider, key.status)
            if status is KeyStatus.broken:
                findings.append(Finding(BannerKind.key_invalid, provider, reason="the key was refused"))
        if not t.should_run or t.machine is None:
            # stopped on purpose, or not provisioned: nothing of the agent to watch
            scope |= AGENT_KINDS | REPORTED_KINDS
            return Observation(t.tenant.id, frozenset(scope), tuple(findings))
        asleep = t.machine.state in ASLEEP and t.sleeps
        if asleep:
            scope |= AGENT_KINDS
        elif t.readiness is not None or t.down_without_probe:
            scope |= AGENT_KINDS
            if t.in_trouble:
                crash = t.exits is not None and (
                    t.exits >= self.config.crash_exits or t.gave_up and t.exits > 0
                )
                if crash:
                    findings.append(
                        Finding(BannerKind.agent_crashlooping, reason=f"{t.exits} exits within the window")
                    )
                else:
                    findings.append(
                        Finding(BannerKind.agent_down, reason=f"probe {t.probe_status or t.machine.state}")
                    )
        # channels: /readyz names failing channels; the channels status says more
        failing: dict[str, str | None] = {}
        if t.readiness is not None and t.readiness.reachable:
            scope.add(BannerKind.channel_down)
            failing.update({c: None for c in t.readiness.failing_channels})
        if t.channels is not None:
            scope.add(BannerKind.channel_down)
            failing.update({c.channel: c.detail for c in t.channels if not c.ok})
        for channel in failing:
            findings.append(Finding(BannerKind.channel_down, channel, reason="the channel fails its checks"))
        # credit: the agent's own word (billing), or our validator's warning verdict
        if t.unusable is not None and _converged(t):
            scope.add(BannerKind.key_no_credit)
            no_credit = {u.provider for u in t.unusable if u.verdict in KEY_WARNING}
            no_credit |= {
                p for p, k in t.keys.items() if k.status is KeyStatus.warning and k.verdict in KEY_WARNING
            }
            for provider in sorted(no_credit):
                findings.append(
                    Finding(BannerKind.key_no_credit, provider, reason="the agent reports a billing failure")
                )
        return Observation(t.tenant.id, frozenset(scope), tuple(findings))

    async def _record(self, targets: list[_Target], now: datetime, report: SweepReport) -> None:
        for start in range(0, len(targets), 500):
            chunk = targets[start : start + 500]
            observations = [self._observation(t) for t in chunk]
            # Only tenants with something to say: a bad finding, or a banner up or under way.
            observations = [o for o, t in zip(observations, chunk, strict=True) if o.findings or t.watched]
            writes = [t for t in chunk if t.usage or t.channels]
            if not observations and not writes:
                continue
            async with self.db.transaction() as s:
                changes = await banners.observe(
                    s, observations, now=now, actor=ACTOR, limits=self.config.thresholds
                )
                for t in writes:
                    for channel in t.channels or []:
                        await record_channel_state(
                            s, t.tenant.id, channel.channel, channel.state, detail=channel.detail, at=now
                        )
                    for day, rows in (t.usage or {}).items():
                        report.usage_rows += await record_daily_usage(s, t.tenant.id, day, rows, now=now)
            for change in changes:
                BANNER_CHANGES.labels(change.kind.value, "raised" if change.raised else "cleared").inc()
                if change.raised:
                    report.banners_raised += 1
                else:
                    report.banners_cleared += 1
                log.info(
                    "health.banner_raised" if change.raised else "health.banner_cleared",
                    tenant_id=change.tenant_id,
                    kind=change.kind.value,
                    subject=change.subject,
                )

    async def run_forever(self, stop: asyncio.Event) -> None:
        """Sweep every ``sweep_interval_seconds`` until ``stop`` (``controlplane health sweep``)."""
        while not stop.is_set():
            try:
                await self.sweep()
            except Exception as exc:
                log.warning("health.sweep_failed", error=type(exc).__name__)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.config.sweep_interval_seconds)
            except TimeoutError:
                pass


def _converged(t: _Target) -> bool:
    """The agent runs the desired state (a key just replaced has reached it)."""
    return t.fly is not None and t.fly.observed_rev == t.tenant.desired_rev


def _slot_of(tenant_id: str, slots: int) -> int:
    return zlib.crc32(tenant_id.encode()) % slots


def _recent_exits(events: list[MachineEvent], now: datetime, window: float) -> tuple[int, bool]:
    """(exits within ``window`` seconds of ``now``, whether flyd gave up restarting)."""
    since_ms = (now.timestamp() - window) * 1000
    exits = [e for e in events if e.type == "exit" and (e.timestamp or 0) >= since_ms]
    gave_up = any(
        isinstance(e.request, dict)
        and isinstance(e.request.get("exit_event"), dict)
        and e.request["exit_event"].get("restarting") is False
        and e.request["exit_event"].get("requested_stop") is False
        for e in exits
    )
    return len(exits), gave_up


def _parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


__all__ = ["ACTOR", "HealthConfig", "HealthSweeper", "Recheck", "SweepReport"]
