"""Emulator configuration: latency profiles and the options object passed to ``FlyEmulator``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from controlplane.fly.emulator.faults import FaultSpec


@dataclass(frozen=True)
class LatencyProfile:
    """How long (in emulated seconds) each Fly transition takes.

    ``fast`` (the default) has small non-zero floors everywhere Fly is not instant: an update leaves
    a machine ``replacing`` for a second (start answers 412), ``checks`` stay empty for a second after
    a start, a destroyed machine stays visible as ``destroyed`` before GET answers 404, a new machine
    or app answers 404 for half a second (read-after-write lag), secret writes and list views lag.
    Tests advance the emulated clock (``emu.advance``) or run it faster (``clock_speed``).

    ``zero`` completes every transition by the next request (the transient state is still what the
    mutating call answers with). It is KINDER THAN FLY: only for throughput benchmarks — code that
    works against ``zero`` may still break on Fly.

    ``realistic`` uses Fly-like durations (seconds) for demos and drills.
    """

    create: float = 0.0  # created -> starting
    start: float = 0.0  # starting -> started (cold boot)
    resume: float = 0.0  # starting (from suspended) -> started
    stop: float = 0.0  # stopping -> stopped
    suspend: float = 0.0  # suspending -> suspended
    restart: float = 0.0  # restarting -> started
    replace: float = 0.0  # replacing -> started/stopped (update)
    destroy: float = 0.0  # destroying -> destroyed
    destroyed_retention: float = 0.0  # destroyed visible by GET, then 404
    gateway_boot: float = 0.0  # started -> OpenClaw probes answer 200 and checks pass
    secrets_visibility: float = 0.0  # secret write -> version visible to machine create/update
    list_consistency: float = 0.0  # any machine change -> visible in list endpoints (app and org lists)
    read_lag: float = 0.0  # new machine/app -> GET, wait and list answer 404 this long (read-after-write)
    app_delete: float = 0.0  # DELETE /apps -> GET 404
    api_latency: float = 0.0  # added to every API call (real-looking round trip)

    @classmethod
    def zero(cls) -> LatencyProfile:
        return cls()

    @classmethod
    def fast(cls) -> LatencyProfile:
        """Small non-zero floors (emulated seconds): every Fly race is observable, tests stay fast."""
        return cls(
            create=0.2,
            start=1.0,
            resume=0.2,
            stop=0.5,
            suspend=0.5,
            restart=1.0,
            replace=1.0,
            destroy=0.5,
            destroyed_retention=1.0,
            gateway_boot=1.0,
            secrets_visibility=0.5,
            list_consistency=0.5,
            app_delete=1.0,
            read_lag=0.5,
        )

    @classmethod
    def realistic(cls) -> LatencyProfile:
        return cls(
            create=0.5,
            start=2.5,
            resume=0.4,
            stop=2.0,
            suspend=1.5,
            restart=3.0,
            replace=4.0,
            destroy=1.5,
            destroyed_retention=30.0,
            gateway_boot=8.0,
            secrets_visibility=1.5,
            list_consistency=1.0,
            app_delete=2.0,
            read_lag=0.5,
            api_latency=0.03,
        )

    @classmethod
    def named(cls, name: str) -> LatencyProfile:
        if name == "zero":
            return cls.zero()
        if name == "fast":
            return cls.fast()
        if name == "realistic":
            return cls.realistic()
        raise ValueError(f"unknown latency profile {name!r} (expected 'zero', 'fast' or 'realistic')")

    def with_(self, **changes: float) -> LatencyProfile:
        return replace(self, **changes)


@dataclass
class EmulatorOptions:
    """Everything that shapes one emulator instance. All durations are emulated seconds."""

    latency: Literal["zero", "fast", "realistic"] | LatencyProfile = "fast"
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int = 0
    org: str = "test-org"
    token: str | None = None  # None: no auth required
    rate_limits: bool = True
    retry_after: bool = False  # send Retry-After on 429 (Fly does not document it: off by default)
    enforce_current_version: bool = False  # 412 on a stale update current_version (unverified on Fly)
    clock_speed: float = 1.0  # emulated seconds per real second
    default_region: str = "iad"
    lease_owner: str = "emulator@fly.local"
    wait_requires_version_for_stopped: bool = True
    proxy_autostart: bool = True  # a probe through the proxy wakes a stopped machine with autostart
    exec_respects_leases: bool = True  # exec refused (409) while another client holds the lease
    max_body_bytes: int = 1 << 20  # larger request bodies: 413, never read whole

    def profile(self) -> LatencyProfile:
        if isinstance(self.latency, LatencyProfile):
            return self.latency
        return LatencyProfile.named(self.latency)
