"""Emulator configuration: latency profiles and the options object passed to ``FlyEmulator``."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

from controlplane.fly.emulator.faults import FaultSpec


@dataclass(frozen=True)
class LatencyProfile:
    """How long (in emulated seconds) each Fly transition takes.

    ``zero`` completes every transition by the next request, but the transient state is still what the
    mutating call answers with (e.g. an update of a started machine answers ``replacing``).
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
    list_consistency: float = 0.0  # machine create -> visible in list endpoints
    app_delete: float = 0.0  # DELETE /apps -> GET 404
    api_latency: float = 0.0  # added to every API call (real-looking round trip)

    @classmethod
    def zero(cls) -> LatencyProfile:
        return cls()

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
            api_latency=0.03,
        )

    @classmethod
    def named(cls, name: str) -> LatencyProfile:
        if name == "zero":
            return cls.zero()
        if name == "realistic":
            return cls.realistic()
        raise ValueError(f"unknown latency profile {name!r} (expected 'zero' or 'realistic')")

    def with_(self, **changes: float) -> LatencyProfile:
        return replace(self, **changes)


@dataclass
class EmulatorOptions:
    """Everything that shapes one emulator instance. All durations are emulated seconds."""

    latency: Literal["zero", "realistic"] | LatencyProfile = "zero"
    faults: FaultSpec = field(default_factory=FaultSpec)
    seed: int = 0
    org: str = "test-org"
    token: str | None = None  # None: no auth required
    rate_limits: bool = True
    retry_after: bool = True  # send Retry-After on 429 (Fly does not document it)
    clock_speed: float = 1.0  # emulated seconds per real second
    default_region: str = "iad"
    lease_owner: str = "emulator@fly.local"
    wait_requires_version_for_stopped: bool = True
    proxy_autostart: bool = True  # a probe through the proxy wakes a stopped machine with autostart

    def profile(self) -> LatencyProfile:
        if isinstance(self.latency, LatencyProfile):
            return self.latency
        return LatencyProfile.named(self.latency)
