"""The shared world every emulator service function works on (state + clock + ids + timings)."""

from __future__ import annotations

from dataclasses import dataclass

from controlplane.fly.emulator.clock import EmulatorClock
from controlplane.fly.emulator.ids import IdFactory
from controlplane.fly.emulator.options import EmulatorOptions, LatencyProfile
from controlplane.fly.emulator.state import EmulatorState


@dataclass
class World:
    options: EmulatorOptions
    state: EmulatorState
    clock: EmulatorClock
    ids: IdFactory
    profile: LatencyProfile

    def now(self) -> float:
        return self.clock.now()

    def wall(self) -> float:
        return self.clock.wall()
