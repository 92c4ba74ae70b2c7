"""The emulator's own record of machine updates (how many were in flight at once, which machines an
update touched) and images that fail once a machine runs them (a bad release: the gateway
crash-loops, probes answer 502 until the machine is updated to another image)."""

from __future__ import annotations

from collections.abc import Iterable

from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.state import MachineRecord, UpdateRecord


def record_update(world: World, machine: MachineRecord, image_before: str, *, restarts: bool) -> None:
    """An update of ``machine`` starts now; it ends when the replace is done and, if the machine
    starts again, its gateway has booted."""
    now = world.now()
    ends = now + world.profile.replace + (world.profile.gateway_boot if restarts else 0.0)
    world.state.updates.append(
        UpdateRecord(
            machine_id=machine.id,
            app=machine.app,
            image_before=image_before,
            image_after=str(machine.config.get("image", "")),
            started_mono=now,
            ends_mono=ends,
        )
    )


def image_fails(world: World, app: str, image: str) -> bool:
    """Does a machine of ``app`` running ``image`` crash-loop (``FlyEmulator.fail_image``)?"""
    apps = world.state.failing_images.get(image)
    return apps is not None and (not apps or app in apps)


def max_concurrent(records: Iterable[UpdateRecord]) -> int:
    """The most updates in flight at any one moment (an update ending exactly when another starts
    does not overlap it)."""
    spans = [(r.started_mono, r.ends_mono) for r in records]
    edges = sorted(
        [(start, 1) for start, _ in spans] + [(end, -1) for _, end in spans],
        key=lambda edge: (edge[0], edge[1]),
    )
    peak = current = 0
    for _, step in edges:
        current += step
        peak = max(peak, current)
    return peak


__all__ = ["image_fails", "max_concurrent", "record_update"]
