"""A machine's timeline: state changes, events, lazily applied planned transitions, a crash-looping
gateway's exits, and the eventually consistent list view (every change is captured and shown by the
list endpoints only ``list_consistency`` later, with the change's own ``updated_at``)."""

from __future__ import annotations

import copy
from typing import Any

from controlplane.fly.emulator.clock import rfc3339
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.state import ListView, MachineEvent, MachineRecord

MAX_EVENTS_KEPT = 200
DEFAULT_MAX_RESTARTS = 10  # Fly's on-failure policy without max_retries (reference §4.2)


def add_event(
    world: World,
    machine: MachineRecord,
    type_: str,
    status: str,
    source: str,
    at_mono: float,
    request: dict[str, Any] | None = None,
) -> None:
    machine.events.append(
        MachineEvent(
            id=world.ids.ulid(world.clock.wall_at(at_mono)),
            type=type_,
            status=status,
            source=source,
            timestamp=int(world.clock.wall_at(at_mono) * 1000),
            request=request or {},
        )
    )
    if len(machine.events) > MAX_EVENTS_KEPT:
        del machine.events[: len(machine.events) - MAX_EVENTS_KEPT]


def set_state(world: World, machine: MachineRecord, state: str, at_mono: float) -> None:
    machine.state = state
    machine.updated_mono = at_mono
    machine.updated_wall = world.clock.wall_at(at_mono)
    if state == "started":
        machine.started_mono = at_mono
    else:
        machine.started_mono = None
    if state == "destroyed":
        machine.destroyed_mono = at_mono
        machine.lease = None
        for volume in world.state.volumes.values():
            if volume.attached_machine_id == machine.id:
                volume.attached_machine_id = None
    record_view(world, machine, at_mono)


def touch(world: World, machine: MachineRecord) -> None:
    machine.updated_mono = world.now()
    machine.updated_wall = world.wall()
    record_view(world, machine, machine.updated_mono)


def record_view(world: World, machine: MachineRecord, at_mono: float) -> None:
    """Capture what the lists will show of ``machine`` from ``at_mono + list_consistency`` on."""
    lag = world.profile.list_consistency
    if lag <= 0:  # lists are live: nothing to remember (keeps the "zero" benchmarks cheap)
        machine.list_views.clear()
        return
    now = world.now()
    views = machine.list_views
    # Forget views that a later, already visible view has superseded.
    while len(views) >= 2 and views[1].at_mono + lag <= now:
        views.pop(0)
    views.append(
        ListView(
            at_mono=at_mono,
            state=machine.state,
            instance_id=machine.instance_id,
            config=copy.deepcopy(machine.config),
            updated_wall=machine.updated_wall,
            updated_mono=machine.updated_mono,
            started_mono=machine.started_mono,
            host_status=machine.host_status,
            cordoned=machine.cordoned,
        )
    )


def listed(world: World, machine: MachineRecord) -> MachineRecord | None:
    """The machine as the list endpoints show it now (None: not in the lists yet)."""
    settle(world, machine)
    if not machine.list_views:
        return machine  # list_consistency 0, or loaded from an older snapshot: show it live
    cutoff = world.now() - world.profile.list_consistency
    if machine.list_views[-1].at_mono <= cutoff:
        return machine  # every change records a view: the newest being visible means "live"
    shown = None
    for view in machine.list_views:
        if view.at_mono <= cutoff:
            shown = view
        else:
            break
    if shown is None:
        return None
    return machine.model_copy(
        update={
            "state": shown.state,
            "instance_id": shown.instance_id,
            "config": shown.config,
            "updated_wall": shown.updated_wall,
            "updated_mono": shown.updated_mono,
            "started_mono": shown.started_mono,
            "host_status": shown.host_status,
            "cordoned": shown.cordoned,
        }
    )


def add_exit_event(world: World, machine: MachineRecord, at_mono: float, *, restarting: bool) -> None:
    """The gateway process exited on its own (Fly's exit event shape, reference §4.3)."""
    health = machine.health
    wall = world.clock.wall_at(at_mono)
    add_event(
        world,
        machine,
        "exit",
        "started" if restarting else "stopped",
        "flyd",
        at_mono,
        {
            "exit_event": {
                "exit_code": health.exit_code,
                "guest_exit_code": health.exit_code,
                "oom_killed": health.oom_killed,
                "requested_stop": False,
                "restarting": restarting,
                "signal": 9 if health.oom_killed else -1,
                "exited_at": rfc3339(wall),
            },
            "restart_count": health.restart_count,
        },
    )


def max_restarts(config: dict[str, Any]) -> int | None:
    """How often flyd restarts a crashing main process (None: forever)."""
    restart = config.get("restart") or {}
    policy = restart.get("policy") or "on-failure"
    if policy == "no":
        return 0
    if policy == "always":
        return None
    retries = restart.get("max_retries")
    return retries if isinstance(retries, int) and retries >= 0 else DEFAULT_MAX_RESTARTS


def crash(world: World, machine: MachineRecord, at_mono: float) -> None:
    """One more exit of a crash-looping gateway: flyd restarts it, or gives up (``stopped``) once the
    restart policy's retries are spent."""
    health = machine.health
    limit = max_restarts(machine.config)
    if limit is not None and health.restart_count >= limit:
        add_exit_event(world, machine, at_mono, restarting=False)
        machine.plan = []
        health.next_crash_mono = None
        set_state(world, machine, "stopped", at_mono)
        return
    health.restart_count += 1
    add_exit_event(world, machine, at_mono, restarting=True)
    machine.updated_mono = at_mono
    machine.updated_wall = world.clock.wall_at(at_mono)
    record_view(world, machine, at_mono)


def _progress_crash_loop(world: World, machine: MachineRecord, now: float) -> None:
    health = machine.health
    while (
        health.crash_looping
        and health.crash_every is not None
        and health.next_crash_mono is not None
        and health.next_crash_mono <= now
        and machine.state == "started"
    ):
        at = health.next_crash_mono
        health.next_crash_mono = at + health.crash_every
        crash(world, machine, at)


def settle(world: World, machine: MachineRecord) -> None:
    """Apply every planned transition that is due by now, and a crash loop's exits."""
    now = world.now()
    while machine.plan and machine.plan[0].due_mono <= now:
        step = machine.plan.pop(0)
        set_state(world, machine, step.state, step.due_mono)
        if step.event_type:
            request: dict[str, Any] = {}
            if step.event_type == "exit":
                request = {
                    "exit_event": {
                        "exit_code": 0,
                        "guest_exit_code": 0,
                        "oom_killed": False,
                        "requested_stop": True,
                        "restarting": False,
                        "signal": -1,
                        "exited_at": rfc3339(world.clock.wall_at(step.due_mono)),
                    }
                }
            add_event(
                world,
                machine,
                step.event_type,
                step.event_status or step.state,
                step.source,
                step.due_mono,
                request,
            )
    _progress_crash_loop(world, machine, now)
    if (
        machine.state == "destroyed"
        and not machine.gone
        and machine.destroyed_mono is not None
        and now >= machine.destroyed_mono + world.profile.destroyed_retention
    ):
        machine.gone = True
