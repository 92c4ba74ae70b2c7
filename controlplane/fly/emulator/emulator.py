"""``FlyEmulator``: the facade tests, the demo, benchmarks and the CLI use."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any

import httpx
import structlog

from controlplane.fly.emulator import machines as machine_ops
from controlplane.fly.emulator.agent import TELEGRAM_UNAUTHORIZED, AgentView, day_of
from controlplane.fly.emulator.agent_state import (
    CREDENTIAL_REASONS,
    ChannelFault,
    CredentialFault,
    CredentialReason,
    UsageEntry,
)
from controlplane.fly.emulator.app import EmulatorApp
from controlplane.fly.emulator.apps import settle_app
from controlplane.fly.emulator.clock import EmulatorClock
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.faults import FaultInjector, Injection
from controlplane.fly.emulator.ids import IdFactory
from controlplane.fly.emulator.options import EmulatorOptions
from controlplane.fly.emulator.ratelimit import RateLimiter
from controlplane.fly.emulator.server import serve
from controlplane.fly.emulator.state import (
    AppRecord,
    EmulatorState,
    MachineRecord,
    PlannedStep,
    UpdateRecord,
)
from controlplane.fly.emulator.timeline import (
    add_event,
    add_exit_event,
    record_view,
    set_state,
    settle,
    touch,
)
from controlplane.fly.emulator.transport import EmulatorTransport
from controlplane.fly.emulator.updates import max_concurrent
from controlplane.limits import load_json_file
from controlplane.private_files import write_private

log = structlog.get_logger(__name__)

SNAPSHOT_FORMAT = 1
SNAPSHOT_MAX_BYTES = 256 << 20  # a snapshot of thousands of machines fits; a runaway file does not


class FlyEmulator:
    """An in-memory Fly Machines API. See the package docstring for the full tour."""

    def __init__(self, options: EmulatorOptions | None = None, *, state: EmulatorState | None = None) -> None:
        self.options = options or EmulatorOptions()
        self.clock = EmulatorClock(self.options.clock_speed)
        self.world = World(
            options=self.options,
            state=state or EmulatorState(org=self.options.org),
            clock=self.clock,
            ids=IdFactory(self.options.seed),
            profile=self.options.profile(),
        )
        self.faults = FaultInjector(self.options.faults, self.options.seed)
        self.limiter = RateLimiter(enabled=self.options.rate_limits)
        self.app = EmulatorApp(self.world, self.faults, self.limiter)

    # --- serving -----------------------------------------------------------------------------------

    def transport(self) -> httpx.AsyncBaseTransport:
        """httpx transport that serves requests in process (use with base_url ``http://fly-emulator``)."""
        return EmulatorTransport(self.app)

    def serve(self, host: str = "127.0.0.1", port: int = 0) -> contextlib.AbstractAsyncContextManager[str]:
        """``async with emu.serve() as base_url:`` — a real uvicorn server on loopback."""
        return serve(self.app, host, port)

    def client(self, base_url: str = "http://fly-emulator", **kwargs: Any) -> httpx.AsyncClient:
        """Convenience: an AsyncClient on the in-process transport, with the configured token."""
        headers = dict(kwargs.pop("headers", {}) or {})
        if self.options.token:
            headers.setdefault("Authorization", f"Bearer {self.options.token}")
        return httpx.AsyncClient(transport=self.transport(), base_url=base_url, headers=headers, **kwargs)

    # --- inspection ---------------------------------------------------------------------------------

    @property
    def state(self) -> EmulatorState:
        return self.world.state

    @property
    def apps(self) -> Mapping[str, AppRecord]:
        for app in list(self.world.state.apps.values()):
            settle_app(self.world, app)
        return MappingProxyType(self.world.state.apps)

    @property
    def machines(self) -> Mapping[str, MachineRecord]:
        """Every machine record (settled to now), including destroyed ones still remembered."""
        for app in list(self.world.state.apps.values()):
            settle_app(self.world, app)
        for machine in self.world.state.machines.values():
            settle(self.world, machine)
        return MappingProxyType(self.world.state.machines)

    def machines_in(self, app: str, *, include_destroyed: bool = False) -> list[MachineRecord]:
        return [
            m
            for m in self.machines.values()
            if m.app == app and (include_destroyed or m.state not in ("destroying", "destroyed"))
        ]

    def machine(self, machine_id: str) -> MachineRecord:
        return self.machines[machine_id]

    def render_machine(self, machine_id: str) -> dict[str, Any]:
        return machine_ops.render_machine(self.world, self.machine(machine_id))

    @property
    def updates(self) -> list[UpdateRecord]:
        """Every machine update so far, oldest first (see ``controlplane/fly/emulator/updates.py``)."""
        return list(self.world.state.updates)

    def max_concurrent_updates(self, since_mono: float | None = None) -> int:
        """The most machine updates that were in flight at once (from ``since_mono`` on)."""
        return max_concurrent(
            r for r in self.world.state.updates if since_mono is None or r.started_mono >= since_mono
        )

    @property
    def faults_fired(self) -> list[tuple[str, str]]:
        return list(self.faults.fired)

    # --- control ------------------------------------------------------------------------------------

    def advance(self, seconds: float) -> None:
        """Move emulated time forward (finish transitions, expire leases, make secrets visible)."""
        self.clock.advance(seconds)

    def inject(
        self,
        match: str | re.Pattern[str] | None,
        kind: str,
        *,
        times: int | None = 1,
        method: str | None = None,
        app: str | None = None,
        region: str | None = None,
        delay: float = 0.0,
    ) -> Injection:
        """Queue a fault for the next matching call(s).

        ``match``: an operation name (``create_machine``, ``update_machine``, ``start_machine``,
        ``get_machine``, ``wait_machine``, ``list_org_machines``, ...), or a path regex (a string starting
        with ``/`` or ``^``, or a compiled pattern), or None for any call. ``kind``: ``500|502|503|5xx|429|
        408|404|drop`` (call not run), ``ambiguous|ambiguous_408|ambiguous_503|ambiguous_drop`` (call runs,
        answer lost), ``latency`` (with ``delay`` seconds), or permanent-style errors ``capacity|
        org_quota|host_disabled|volume_host_full``. ``times=None`` keeps it until ``clear_faults()``.
        """
        op: str | None = None
        path: re.Pattern[str] | None = None
        if isinstance(match, re.Pattern):
            path = match
        elif isinstance(match, str) and match[:1] in ("/", "^"):
            path = re.compile(match)
        else:
            op = match
        return self.faults.inject(
            Injection(
                kind=kind, op=op, path=path, method=method, app=app, region=region, times=times, delay=delay
            )
        )

    def clear_faults(self) -> None:
        self.faults.clear()

    def set_rate_limits(self, enabled: bool) -> None:
        self.limiter.enabled = enabled
        self.limiter.reset()

    def set_error_regions(self, regions: list[str]) -> None:
        """The org listing will omit machines in these regions and report them in ``error_regions``."""
        self.world.state.error_regions = list(regions)

    def reserve_foreign_app(self, name: str, org: str = "someone-else") -> None:
        """Make ``name`` taken by another org (create → 422 name_taken, GET → 403)."""
        self.world.state.foreign_apps[name] = org

    def set_gateway_health(
        self, machine_id: str, *, ready: bool = True, failing: list[str] | None = None
    ) -> None:
        health = self.machine(machine_id).health
        health.ready = ready
        health.failing = list(failing or ([] if ready else ["channels"]))
        health.crash_looping = False

    def crash_loop(
        self,
        machine_id: str,
        *,
        exit_code: int = 1,
        restarts: int = 3,
        oom: bool = False,
        give_up: bool = False,
        every: float | None = None,
    ) -> None:
        """The gateway process keeps exiting: ``restarts`` exit events with ``restarting=true`` now
        (the restart count grows), probes fail (502), checks critical, the CLI cannot reach the gateway.
        ``every``: the loop goes on by itself, one more exit per ``every`` emulated seconds, until the
        restart policy's retries (``restart.max_retries``, Fly's default 10) are spent and flyd leaves
        the machine ``stopped``. ``give_up=True`` ends it that way at once. :meth:`restore_gateway`
        ends the loop."""
        machine = self.machine(machine_id)
        world = self.world
        health = machine.health
        health.crash_looping = True
        health.exit_code = exit_code
        health.oom_killed = oom
        now = world.now()
        for _ in range(restarts):
            health.restart_count += 1
            add_exit_event(world, machine, now, restarting=True)
        health.crash_every = every
        health.next_crash_mono = now + every if every is not None else None
        if give_up:
            add_exit_event(world, machine, now, restarting=False)
            machine.plan = []
            health.next_crash_mono = None
            set_state(world, machine, "stopped", now)
        touch(world, machine)

    def fail_image(self, image: str, *, apps: list[str] | None = None) -> None:
        """A bad release: a machine of ``apps`` (``None``: any app) created or updated to ``image``
        crash-loops (probes 502, the CLI cannot reach the gateway) until it is updated to another
        image."""
        self.world.state.failing_images[image] = list(apps or [])

    def restore_image(self, image: str) -> None:
        """``image`` boots fine again for machines created or updated to it from now on."""
        self.world.state.failing_images.pop(image, None)

    def restore_gateway(self, machine_id: str) -> None:
        """The gateway stops crashing (the next restart boots fine). A machine flyd gave up on stays
        ``stopped`` until someone starts it; the restart count is kept, like Fly's."""
        health = self.machine(machine_id).health
        health.crash_looping = False
        health.crash_every = None
        health.next_crash_mono = None

    # --- the emulated OpenClaw agent (what `openclaw ... --json` exec'd in the machine reports) -------

    def agent_view(self, machine_id: str) -> AgentView:
        """The machine's emulated agent now (the source of its exec'd CLI answers and /readyz)."""
        return AgentView.of(self.world, self.machine(machine_id))

    def fail_credential(
        self, machine_id: str, provider: str, reason: CredentialReason = "billing", *, persistent: bool = True
    ) -> None:
        """``provider`` refuses the agent's key for ``reason`` (``billing`` | ``auth`` |
        ``auth_permanent`` | ``rate_limit``): ``openclaw models status --json`` lists the profile in
        ``auth.unusableProfiles`` with OpenClaw's own kind, window and recovery hint. ``persistent``:
        traffic keeps hitting the failure, so a new window follows each expired one (see
        ``agent_state``); False: one failure, usable again after the first window."""
        if reason not in CREDENTIAL_REASONS:
            raise ValueError(f"unknown credential failure {reason!r}: expected one of {CREDENTIAL_REASONS}")
        if not provider:
            raise ValueError("provider must be a provider id such as 'anthropic'")
        self.machine(machine_id).agent.credential_faults[provider] = CredentialFault(
            provider=provider,
            reason=reason,
            since_wall=self.world.wall(),
            persistent=persistent,
        )

    def restore_credential(self, machine_id: str, provider: str | None = None) -> None:
        """The provider accepts the key again (``None``: every provider). Cleared at once: whether
        OpenClaw keeps a running disable window across a key change is not verified."""
        faults = self.machine(machine_id).agent.credential_faults
        if provider is None:
            faults.clear()
        else:
            faults.pop(provider, None)

    def fail_channel(self, machine_id: str, channel: str, *, error: str | None = None) -> None:
        """A channel account fails its checks (e.g. its bot token was revoked): ``/readyz`` answers 503
        with ``failing: [channel]`` and ``channels status`` / ``health`` show the account blocked
        with ``lastError`` (default: what the real Telegram account reports for a refused token)."""
        if not channel:
            raise ValueError("channel must be a channel id such as 'telegram'")
        self.machine(machine_id).agent.channel_faults[channel] = ChannelFault(
            channel=channel, error=error or TELEGRAM_UNAUTHORIZED, since_wall=self.world.wall()
        )

    def restore_channel(self, machine_id: str, channel: str | None = None) -> None:
        """The channel passes its checks again (``None``: every channel)."""
        faults = self.machine(machine_id).agent.channel_faults
        if channel is None:
            faults.clear()
        else:
            faults.pop(channel, None)

    def add_agent_usage(
        self,
        machine_id: str,
        provider: str,
        model: str,
        *,
        input_tokens: int,
        output_tokens: int,
        cache_read_tokens: int = 0,
        cache_write_tokens: int = 0,
        input_cost_usd: float = 0.0,
        output_cost_usd: float = 0.0,
        calls: int = 1,
        priced: bool = True,
        day: str | None = None,
    ) -> None:
        """The agent counted ``calls`` model calls of ``provider``/``model`` (UTC ``day``, default today
        on the emulated clock): ``gateway usage-cost`` and ``sessions.usage`` grow by that much.
        ``priced=False``: OpenClaw had no price for the model (``missingCostEntries``)."""
        counts = (input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, calls)
        if min(counts) < 0 or min(input_cost_usd, output_cost_usd) < 0:
            raise ValueError("usage counts and costs cannot be negative")
        wall = self.world.wall()
        when = day or day_of(wall)
        usage = self.machine(machine_id).agent.usage
        entry = next(
            (e for e in usage if (e.day, e.provider, e.model) == (when, provider, model)),
            None,
        )
        if entry is None:
            entry = UsageEntry(day=when, provider=provider, model=model, first_wall=wall, last_wall=wall)
            usage.append(entry)
        entry.input += input_tokens
        entry.output += output_tokens
        entry.cache_read += cache_read_tokens
        entry.cache_write += cache_write_tokens
        entry.input_cost += input_cost_usd
        entry.output_cost += output_cost_usd
        entry.calls += calls
        entry.unpriced_calls += 0 if priced else calls
        entry.last_wall = wall

    def fail_machine(self, machine_id: str) -> None:
        """Put a machine in ``failed`` (could not start); recover by start, update or destroy."""
        machine = self.machine(machine_id)
        machine.plan = []
        add_exit_event(self.world, machine, self.world.now(), restarting=False)
        set_state(self.world, machine, "failed", self.world.now())

    def launch_fail(self, machine_id: str) -> None:
        """The launch fails (e.g. image pull or placement): ``launch_failed`` now, then ``destroyed``
        after the profile's ``destroy`` delay, like Fly (a launch failure is not recoverable)."""
        machine = self.machine(machine_id)
        world = self.world
        now = world.now()
        machine.plan = [
            PlannedStep(
                due_mono=now + max(world.profile.destroy, 0.0),
                state="destroyed",
                event_type="destroy",
                event_status="destroyed",
            )
        ]
        set_state(world, machine, "launch_failed", now)
        add_event(world, machine, "launch", "failed", "flyd", now)

    def migrate(self, machine_id: str, *, on_next_start: bool = False) -> str | None:
        """Fly moves the machine to another host: a new ``instance_id`` (same config); waits on the
        old version answer ``migrated``. ``on_next_start=True``: the migration happens at the next
        start, whose answer then says ``migrated: true`` with a ``new_host``. Returns the new version
        (None when deferred)."""
        machine = self.machine(machine_id)
        if on_next_start:
            machine.migrate_on_start = True
            return None
        machine_ops.migrate_version(self.world, machine)
        if machine.state == "suspended":  # the snapshot does not move with it
            set_state(self.world, machine, "stopped", self.world.now())
        return machine.instance_id

    def set_host_status(self, machine_id: str, status: str) -> None:
        """``ok`` | ``unknown`` | ``unreachable``. Not ok: GET shows ``incomplete_config`` instead of
        ``config``, metadata-filtered lists skip it, and every mutation answers 503."""
        if status not in ("ok", "unknown", "unreachable"):
            raise ValueError(f"unknown host status {status!r}")
        machine = self.machine(machine_id)
        machine.host_status = status
        record_view(self.world, machine, self.world.now())

    def client_clock(self, *, jump: bool = True) -> EmulatedClientClock:
        """A clock for :class:`controlplane.fly.FlyClient` that reads the EMULATED time, so client
        pacing, retries and wait deadlines run on the same clock as the emulator's rate limits and
        transitions (deterministic pacing tests). ``jump=True``: a client sleep advances emulated
        time instead of sleeping (fast-forward); False: it sleeps the real equivalent."""
        return EmulatedClientClock(self.clock, jump=jump)

    # --- persistence --------------------------------------------------------------------------------

    def snapshot_to(self, path: str | Path) -> None:
        """Write the whole world as JSON, private (0600) from creation and replaced atomically.
        Secret values are not in it (only digests and salted MACs), tenant data is."""
        state = self.world.state
        state.saved_mono = self.clock.now()
        payload = {"format": SNAPSHOT_FORMAT, "state": state.model_dump(mode="json")}
        write_private(path, json.dumps(payload, indent=1, sort_keys=True))
        log.info("fly_emulator.snapshot_saved", path=str(path), machines=len(state.machines))

    @classmethod
    def load(cls, path: str | Path, options: EmulatorOptions | None = None) -> FlyEmulator:
        """The world saved by :meth:`snapshot_to`. A file that is not one raises
        :class:`controlplane.limits.InputRefused` (a ``ValueError``) naming the file, never quoting it:
        size, encoding, depth, JSON syntax, format or a state that does not validate."""
        from pydantic import ValidationError

        from controlplane.limits import InputRefused, Limits, name_or_given, path_part

        where = str(path)
        payload = load_json_file(path, Limits(max_bytes=SNAPSHOT_MAX_BYTES, max_depth=64))
        if not isinstance(payload, dict) or payload.get("format") != SNAPSHOT_FORMAT:
            raise InputRefused(where, f"not an emulator snapshot of format {SNAPSHOT_FORMAT}")
        try:
            state = EmulatorState.model_validate(payload.get("state"))
        except ValidationError as exc:
            first = exc.errors(include_input=False, include_url=False)[0]
            field = ".".join(path_part(p) for p in first["loc"][:6]) or "the top"
            raise InputRefused(where, f"the snapshot does not validate at {field}") from None
        opts = options or EmulatorOptions(org=state.org)
        if opts.org != state.org:
            raise InputRefused(
                where,
                f"snapshot is for org {name_or_given(state.org)}, options say {name_or_given(opts.org)}",
            )
        emulator = cls(opts, state=state)
        emulator.clock.rebase(state.saved_mono)
        return emulator


class EmulatedClientClock:
    """``controlplane.clock.Clock`` over an :class:`EmulatorClock` (see ``client_clock``)."""

    def __init__(self, clock: EmulatorClock, *, jump: bool = True) -> None:
        self.clock = clock
        self.jump = jump

    def monotonic(self) -> float:
        return self.clock.now()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock.wall(), tz=UTC)

    async def sleep(self, seconds: float) -> None:
        seconds = max(0.0, seconds)
        if self.jump:
            self.clock.advance(seconds)
            await asyncio.sleep(0)
        else:
            await self.clock.sleep(seconds)


@contextlib.asynccontextmanager
async def running(options: EmulatorOptions | None = None) -> AsyncIterator[tuple[FlyEmulator, str]]:
    """``async with running(opts) as (emu, base_url):`` — emulator plus a loopback server."""
    emulator = FlyEmulator(options)
    async with emulator.serve() as base_url:
        yield emulator, base_url
