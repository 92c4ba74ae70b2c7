"""Machine lifecycle with Fly's state machine. Transitions are planned with due times and applied
lazily (``settle``) whenever a machine is observed, so any clock speed works and nothing runs in the
background. Mutating calls answer with the transient state Fly answers with.

Fly behaviours that are deliberately reproduced because clients get them wrong:

* read-after-write lag: GET and wait on a machine younger than ``read_lag`` answer 404;
* list endpoints are eventually consistent for every change (see ``timeline.listed``);
* ``host_status != ok``: the machine renders ``incomplete_config`` instead of ``config``, is left
  out of metadata-filtered lists, and every mutation answers 503 (the host agent is unreachable);
* ``migrated`` (``FlyEmulator.migrate``): waits on the left-behind version answer ``migrated``;
  ``launch_failed`` (``FlyEmulator.launch_fail``) ends in ``destroyed``;
* stop ``timeout`` must be a duration string; suspend is refused (412) above 2 GB of memory, with
  swap, or with a schedule;
* ``current_version`` on update is only enforced with ``EmulatorOptions.enforce_current_version``
  (unverified on Fly: code must not rely on it instead of a lease).
"""

from __future__ import annotations

import asyncio
import copy
import re
from typing import Any

import structlog

from controlplane.fly.emulator.apps import get_app, require_app_visible, settle_app
from controlplane.fly.emulator.clock import rfc3339
from controlplane.fly.emulator.config import image_ref, normalize_config, validate_region
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import ApiError, bad_request, not_found, precondition
from controlplane.fly.emulator.leases import DEFAULT_TTL, MAX_TTL, active_lease, require_nonce
from controlplane.fly.emulator.state import (
    LISTABLE_STATES,
    SETTLED_STATES,
    WAITABLE_STATES,
    GatewayHealth,
    Lease,
    MachineRecord,
    MachineVersion,
    PlannedStep,
)
from controlplane.fly.emulator.timeline import add_event, listed, record_view, set_state, settle, touch
from controlplane.fly.emulator.updates import image_fails, record_update

log = structlog.get_logger(__name__)

DURATION = re.compile(r"^\d+(\.\d+)?(ns|us|µs|ms|s|m|h)$")
SUSPEND_MAX_MEMORY_MB = 2048
STOP_SIGNALS = frozenset({"SIGHUP", "SIGINT", "SIGQUIT", "SIGKILL", "SIGUSR1", "SIGUSR2", "SIGTERM"})
MAX_WAIT_TIMEOUT = 60
EVENTS_ON_MACHINE = 20
MAX_EVENTS = 50


def _plan(
    world: World,
    machine: MachineRecord,
    transient: str,
    steps: list[tuple[float, str, str | None, str | None]],
    event: tuple[str, str] | None,
) -> None:
    """Enter ``transient`` now, then follow ``steps`` = [(delay, state, event_type, event_status)]."""
    now = world.now()
    machine.plan = []
    set_state(world, machine, transient, now)
    if event is not None:
        add_event(world, machine, event[0], event[1], "user", now)
    at = now
    for delay, state, event_type, event_status in steps:
        at += delay
        machine.plan.append(
            PlannedStep(due_mono=at, state=state, event_type=event_type, event_status=event_status)
        )


# --- lookups ---------------------------------------------------------------------------------------


def find_machine(
    world: World, app_name: str, machine_id: str, *, allow_destroyed: bool = True, reading: bool = False
) -> MachineRecord:
    """``reading``: a GET/wait, which answers 404 on a machine younger than ``read_lag``."""
    get_app(world, app_name)
    machine = world.state.machines.get(machine_id)
    if machine is None or machine.app != app_name:
        raise not_found("machine")
    settle(world, machine)
    if machine.gone or (machine.state == "destroyed" and not allow_destroyed):
        raise not_found("machine")
    if reading and world.now() < machine.created_mono + world.profile.read_lag:
        raise not_found("machine")  # read-after-write lag right after create
    return machine


def require_host(machine: MachineRecord) -> None:
    """Mutations need the host agent: with ``host_status != ok`` they fail (nothing happens)."""
    if machine.host_status != "ok":
        raise ApiError(
            503,
            f"failed to reach the host of machine {machine.id} (host_status {machine.host_status}); "
            "the request was not applied, try again later",
            "unknown",
        )


def _mutable(
    world: World, app_name: str, machine_id: str, nonce: str | None, *, allow_destroyed: bool = False
) -> MachineRecord:
    machine = find_machine(world, app_name, machine_id, allow_destroyed=allow_destroyed)
    require_nonce(world, machine, nonce)
    require_host(machine)
    return machine


def _visible_secrets(world: World, app_name: str, min_version: Any) -> int:
    app = get_app(world, app_name)
    visible = app.visible_secrets_version(world.now(), world.profile.secrets_visibility)
    if min_version is None:
        return visible
    if not isinstance(min_version, int) or isinstance(min_version, bool) or min_version < 0:
        raise bad_request("min_secrets_version must be a non-negative integer")
    if min_version > visible:
        raise precondition(
            f"min_secrets_version {min_version} is not yet available: the secrets store shows version {visible}, "
            "try again shortly"
        )
    return visible


def _check_mounts(
    world: World, app_name: str, region: str, config: dict[str, Any], machine_id: str | None
) -> list[str]:
    mounts = config.get("mounts") or []
    if len(mounts) > 1:
        raise bad_request("a machine can mount at most one volume")
    volume_ids = []
    for mount in mounts:
        volume_id = mount.get("volume")
        path = mount.get("path")
        if not isinstance(path, str) or not path.startswith("/"):
            raise bad_request("mount path must be absolute")
        volume = world.state.volumes.get(str(volume_id))
        if volume is None or volume.app != app_name or volume.destroyed:
            raise bad_request(f"volume {volume_id} not found")
        if volume.region != region:
            raise bad_request(f"volume {volume_id} is in region {volume.region}, machine is in {region}")
        if volume.attached_machine_id not in (None, machine_id):
            raise bad_request(
                f"volume {volume_id} is already attached to machine {volume.attached_machine_id}"
            )
        volume_ids.append(volume.id)
    return volume_ids


# --- create / update ------------------------------------------------------------------------------


def create_machine(world: World, app_name: str, body: dict[str, Any]) -> MachineRecord:
    app = get_app(world, app_name)
    if app.delete_at_mono is not None:
        raise ApiError(
            409, f"app {app_name} is being deleted: no new machines can be created in it", "app_deleting"
        )
    config = normalize_config(body.get("config"))
    region = body.get("region") or world.options.default_region
    if not isinstance(region, str):
        raise bad_request("region must be a string")
    validate_region(region)
    name = body.get("name")
    if name is not None and (not isinstance(name, str) or not name):
        raise bad_request("name must be a non-empty string")
    if name:
        for other in world.state.machines_of(app_name):
            settle(world, other)
            if other.name == name and other.state != "destroyed":
                raise ApiError(
                    409, f'machine with name "{name}" already exists: {other.id}', "already_exists"
                )
    volume_ids = _check_mounts(world, app_name, region, config, None)
    skip_secrets = bool(body.get("skip_secrets"))
    secrets_version = _visible_secrets(world, app_name, body.get("min_secrets_version"))
    now, wall = world.now(), world.wall()
    instance_id = world.ids.ulid(wall)
    machine = MachineRecord(
        id=world.ids.machine_id(),
        app=app.name,
        name=name or world.ids.machine_name(),
        region=region,
        state="created",
        instance_id=instance_id,
        config=config,
        private_ip=world.ids.private_ip(),
        created_wall=wall,
        created_mono=now,
        updated_wall=wall,
        updated_mono=now,
        secrets_version=0 if skip_secrets else secrets_version,
        skip_secrets=skip_secrets,
        cordoned=bool(body.get("skip_service_registration")),
        versions=[MachineVersion(version=instance_id, config=copy.deepcopy(config), created_wall=wall)],
    )
    lease_ttl = body.get("lease_ttl")
    if lease_ttl is not None:
        if not isinstance(lease_ttl, int) or not 0 < lease_ttl <= MAX_TTL:
            raise bad_request(f"lease_ttl must be between 1 and {MAX_TTL} seconds")
        machine.lease = Lease(
            nonce=world.ids.nonce(),
            owner=world.options.lease_owner,
            description="",
            expires_wall=wall + (lease_ttl or DEFAULT_TTL),
            version=instance_id,
        )
        machine.nonce = machine.lease.nonce
    machine.health.crash_looping = image_fails(world, app_name, str(config.get("image", "")))
    world.state.machines[machine.id] = machine
    record_view(world, machine, now)
    for volume_id in volume_ids:
        world.state.volumes[volume_id].attached_machine_id = machine.id
    add_event(world, machine, "launch", "created", "user", now)
    if not body.get("skip_launch"):
        profile = world.profile
        machine.plan = [
            PlannedStep(due_mono=now + profile.create, state="starting"),
            PlannedStep(
                due_mono=now + profile.create + profile.start,
                state="started",
                event_type="start",
                event_status="started",
            ),
        ]
    log.debug("fly_emulator.machine_created", app=app_name, machine=machine.id, region=region)
    return machine


def update_machine(
    world: World, app_name: str, machine_id: str, body: dict[str, Any], nonce: str | None
) -> MachineRecord:
    machine = _mutable(world, app_name, machine_id, nonce)
    if machine.state in ("destroying", "destroyed", "launch_failed"):
        raise precondition(f"unable to update machine from current state: '{machine.state}'")
    if machine.state in ("replacing", "updating"):
        raise precondition(f"unable to update machine from current state: '{machine.state}'")
    current_version = body.get("current_version")
    if (
        world.options.enforce_current_version
        and current_version is not None
        and current_version != machine.instance_id
    ):
        raise precondition(
            f"machine version mismatch: current version is {machine.instance_id}, request expected {current_version}"
        )
    for field_name in ("name", "region"):
        value = body.get(field_name)
        if value and value != getattr(machine, field_name):
            raise bad_request(f"machine {field_name} cannot be changed by an update")
    config = normalize_config(body.get("config"))
    old_mounts = [m.get("volume") for m in machine.config.get("mounts") or []]
    new_mounts = [m.get("volume") for m in config.get("mounts") or []]
    if old_mounts != new_mounts:
        raise bad_request("a machine's volume mounts cannot be changed by an update; create a new machine")
    _check_mounts(world, app_name, machine.region, config, machine.id)
    skip_secrets = bool(body.get("skip_secrets"))
    secrets_version = _visible_secrets(world, app_name, body.get("min_secrets_version"))
    wall = world.wall()
    image_before = str(machine.config.get("image", ""))
    machine.instance_id = world.ids.ulid(wall)
    machine.config = config
    machine.versions.append(
        MachineVersion(version=machine.instance_id, config=copy.deepcopy(config), created_wall=wall)
    )
    machine.secrets_version = 0 if skip_secrets else secrets_version
    machine.skip_secrets = skip_secrets
    machine.health.crash_looping = image_fails(world, app_name, str(config.get("image", "")))
    # A lease keeps the version it was taken at (fly-machines.md §8): a holder compares it with its cache.
    profile = world.profile
    was_running = machine.state in ("started", "starting", "restarting")
    if was_running and not body.get("skip_launch"):
        steps: list[tuple[float, str, str | None, str | None]] = [
            (profile.replace, "started", "start", "started")
        ]
    else:
        final = "created" if machine.state == "created" else "stopped"
        steps = [(profile.replace, final, "update", final)]
    _plan(world, machine, "replacing", steps, ("update", "replacing"))
    record_update(world, machine, image_before, restarts=steps[0][1] == "started")
    log.debug("fly_emulator.machine_updated", app=app_name, machine=machine.id, version=machine.instance_id)
    return machine


# --- power operations ------------------------------------------------------------------------------


def start_machine(
    world: World, app_name: str, machine_id: str, nonce: str | None, source: str = "user"
) -> dict[str, Any]:
    machine = _mutable(world, app_name, machine_id, nonce)
    previous = machine.state
    if previous in ("started", "starting"):
        return {"previous_state": previous, "migrated": False, "new_host": ""}
    if previous not in ("created", "stopped", "suspended", "failed"):
        raise precondition(f"unable to start machine from current state: '{previous}'")
    new_host = ""
    if machine.migrate_on_start:
        machine.migrate_on_start = False
        new_host = migrate_version(world, machine)
        boot = world.profile.start  # cold boot on the new host (a suspend snapshot does not move)
    else:
        boot = world.profile.resume if previous == "suspended" else world.profile.start
    _plan(world, machine, "starting", [(boot, "started", "start", "started")], ("start", "starting"))
    machine.events[-1].source = source
    machine.health.crash_looping = False
    return {"previous_state": previous, "migrated": bool(new_host), "new_host": new_host}


def migrate_version(world: World, machine: MachineRecord) -> str:
    """Move the machine to another host: a new version (same config); the old one is ``migrated``.
    Returns the new host id."""
    old = machine.instance_id
    wall = world.wall()
    machine.migrated_versions.append(old)
    machine.instance_id = world.ids.ulid(wall)
    machine.versions.append(
        MachineVersion(version=machine.instance_id, config=copy.deepcopy(machine.config), created_wall=wall)
    )
    add_event(world, machine, "migrate", "migrated", "flyd", world.now())
    touch(world, machine)
    return world.ids.nonce()[:12]


def stop_machine(
    world: World, app_name: str, machine_id: str, body: Any, nonce: str | None
) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise bad_request("invalid stop request: body must be a JSON object")
    signal = body.get("signal")
    if signal is not None and signal not in STOP_SIGNALS:
        raise bad_request(f"invalid signal {signal!r}")
    timeout = body.get("timeout")
    if timeout is not None and (not isinstance(timeout, str) or not DURATION.match(timeout)):
        raise bad_request(f'invalid stop timeout {timeout!r}: expected a duration string such as "10s"')
    machine = _mutable(world, app_name, machine_id, nonce)
    state = machine.state
    if state in ("stopped", "created", "stopping"):
        return {"ok": True}
    if state not in ("started", "starting", "restarting", "suspended", "failed"):
        raise precondition(f"unable to stop machine from current state: '{state}'")
    delay = 0.0 if state in ("suspended", "failed") else world.profile.stop
    _plan(world, machine, "stopping", [(delay, "stopped", "exit", "stopped")], ("stop", "stopping"))
    return {"ok": True}


def suspend_machine(world: World, app_name: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
    machine = _mutable(world, app_name, machine_id, nonce)
    if machine.state in ("suspended", "suspending"):
        return {"ok": True}
    if machine.state != "started":
        raise precondition(f"unable to suspend machine from current state: '{machine.state}'")
    reason = _suspend_refusal(machine.config)
    if reason:
        raise precondition(f"unable to suspend machine: {reason}")
    _plan(
        world,
        machine,
        "suspending",
        [(world.profile.suspend, "suspended", "suspend", "suspended")],
        ("suspend", "suspending"),
    )
    return {"ok": True}


def restart_machine(world: World, app_name: str, machine_id: str, nonce: str | None) -> dict[str, Any]:
    machine = _mutable(world, app_name, machine_id, nonce)
    if machine.state != "started":
        raise precondition(f"unable to restart machine from current state: '{machine.state}'")
    _plan(
        world,
        machine,
        "restarting",
        [(world.profile.restart, "started", "start", "started")],
        ("restart", "restarting"),
    )
    machine.health.crash_looping = False
    return {"ok": True}


def destroy_machine(
    world: World, app_name: str, machine_id: str, force: bool, nonce: str | None
) -> dict[str, Any]:
    machine = _mutable(world, app_name, machine_id, nonce, allow_destroyed=True)
    if machine.state in ("destroying", "destroyed", "launch_failed"):
        return {"ok": True}
    if machine.state not in ("stopped", "created", "suspended", "failed") and not force:
        raise precondition(
            f"unable to destroy machine, not currently stopped, suspended or failed (state: '{machine.state}'); "
            "use force=true"
        )
    _plan(
        world,
        machine,
        "destroying",
        [(world.profile.destroy, "destroyed", "destroy", "destroyed")],
        ("destroy", "destroying"),
    )
    log.debug("fly_emulator.machine_destroyed", app=app_name, machine=machine.id)
    return {"ok": True}


def set_cordon(
    world: World, app_name: str, machine_id: str, cordoned: bool, nonce: str | None
) -> dict[str, Any]:
    machine = _mutable(world, app_name, machine_id, nonce)
    machine.cordoned = cordoned
    touch(world, machine)
    return {"ok": True}


def _suspend_refusal(config: dict[str, Any]) -> str | None:
    """Fly's suspend preconditions (fly-machines.md §13): ≤ 2 GB memory, no swap, no schedule."""
    memory = (config.get("guest") or {}).get("memory_mb") or 256
    if memory > SUSPEND_MAX_MEMORY_MB:
        return f"suspend requires at most {SUSPEND_MAX_MEMORY_MB} MB of memory (machine has {memory} MB)"
    if (config.get("init") or {}).get("swap_size_mb"):
        return "suspend is not supported for machines with swap enabled"
    if config.get("schedule"):
        return "suspend is not supported for scheduled machines"
    return None


# --- wait ----------------------------------------------------------------------------------------------


def parse_wait_states(values: list[str]) -> list[str]:
    states: list[str] = []
    for value in values:
        states += [s.strip() for s in value.split(",") if s.strip()]
    if not states:
        return ["started"]
    for state in states:
        if state not in WAITABLE_STATES:
            raise bad_request(
                f"invalid state {state!r}: expected one of {sorted(WAITABLE_STATES)}", "invalid_argument"
            )
    return states


def parse_wait_timeout(value: str | None) -> int:
    if value is None or value == "":
        return MAX_WAIT_TIMEOUT
    try:
        timeout = int(value.removesuffix("s"))
    except ValueError as exc:
        raise bad_request(f"invalid timeout {value!r}", "invalid_argument") from exc
    if timeout < 1 or timeout > MAX_WAIT_TIMEOUT:
        raise bad_request(
            f"invalid timeout {timeout}: must be between 1 and {MAX_WAIT_TIMEOUT} seconds", "invalid_argument"
        )
    return timeout


def _reached(state: str, wanted: list[str]) -> bool:
    return state in wanted or ("settled" in wanted and state in SETTLED_STATES)


async def wait_machine(
    world: World, app_name: str, machine_id: str, states: list[str], version: str | None, timeout: int
) -> dict[str, Any]:
    machine = find_machine(world, app_name, machine_id, reading=True)
    if version is not None and version != machine.instance_id and version not in machine.old_versions:
        raise bad_request(f"machine {machine.id} has no version {version}", "invalid_argument")
    if "stopped" in states and version is None and world.options.wait_requires_version_for_stopped:
        raise bad_request(
            "instance_id (version) is required when waiting for the stopped state", "invalid_argument"
        )
    deadline = world.now() + timeout
    while True:
        machine = world.state.machines.get(machine_id) or machine
        settle(world, machine)
        replaced = version is not None and version != machine.instance_id
        if replaced:
            current = "migrated" if version in machine.migrated_versions else "replaced"
        else:
            current = machine.state
        if not replaced and _reached(current, states):
            event_id = machine.events[-1].id if machine.events else ""
            return {"ok": True, "state": current, "version": machine.instance_id, "event_id": event_id}
        if machine.gone and "destroyed" not in states:
            raise not_found("machine")
        now = world.now()
        if now >= deadline:
            raise ApiError(
                408,
                f"machine failed to reach desired state, {','.join(states)}, currently {current}",
                "deadline_exceeded",
            )
        next_due = machine.plan[0].due_mono if machine.plan and not replaced else deadline
        pause = min(next_due, deadline) - now
        await asyncio.sleep(min(max(world.clock.real_seconds(pause), 0.0), 0.02))


# --- read side -------------------------------------------------------------------------------------------


def _render_checks(world: World, machine: MachineRecord) -> list[dict[str, Any]]:
    if machine.state != "started" or machine.started_mono is None:
        return []
    ready_at = machine.started_mono + world.profile.gateway_boot
    if world.now() < ready_at:
        return []
    health: GatewayHealth = machine.health
    healthy = not health.crash_looping
    names = list((machine.config.get("checks") or {}).keys())
    for index, service in enumerate(machine.config.get("services") or []):
        for check in service.get("checks") or []:
            names.append(
                f"servicecheck-{index:02d}-{check.get('type', 'tcp')}-{service.get('internal_port', 0)}"
            )
    updated = rfc3339(world.clock.wall_at(ready_at))
    return [
        {
            "name": name,
            "status": "passing" if healthy else "critical",
            "output": "HTTP GET: 200 OK" if healthy else "dial tcp: connect: connection refused",
            "updated_at": updated,
        }
        for name in names
    ]


def render_machine(
    world: World,
    machine: MachineRecord,
    *,
    summary: bool = False,
    include_lease: bool = False,
    with_nonce: bool = False,
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": machine.id,
        "name": machine.name,
        "state": machine.state,
        "region": machine.region,
        "instance_id": machine.instance_id,
        "private_ip": machine.private_ip,
        "image_ref": image_ref(str(machine.config.get("image", ""))),
        "created_at": rfc3339(machine.created_wall),
        "updated_at": rfc3339(machine.updated_wall),
    }
    if not summary:
        if machine.host_status == "ok":
            body["config"] = copy.deepcopy(machine.config)
        else:
            body["incomplete_config"] = incomplete_config(machine.config)
        body["events"] = [e.render() for e in reversed(machine.events[-EVENTS_ON_MACHINE:])]
        body["checks"] = _render_checks(world, machine)
        body["host_status"] = machine.host_status
        body["cordoned"] = machine.cordoned
        if with_nonce and machine.nonce:
            body["nonce"] = machine.nonce
    if include_lease:
        lease = active_lease(world, machine)
        if lease is not None:
            body["lease"] = {
                "owner": lease.owner,
                "expires_at": int(lease.expires_wall),
                "description": lease.description,
            }
    return body


def incomplete_config(config: dict[str, Any]) -> dict[str, Any]:
    """What Fly shows when the host cannot be asked: only what the API itself stored."""
    return {key: copy.deepcopy(config[key]) for key in ("image", "guest", "metadata") if key in config}


def list_machines(world: World, app_name: str, query: dict[str, list[str]]) -> list[dict[str, Any]]:
    app = get_app(world, app_name)
    settle_app(world, app)
    require_app_visible(world, app)
    include_deleted = _flag(query, "include_deleted")
    summary = _flag(query, "summary")
    include_lease = _flag(query, "include_leases")
    states: list[str] = []
    for value in query.get("state", []):
        states += [s for s in value.split(",") if s]
    for state in states:
        if state not in LISTABLE_STATES:
            raise bad_request(f"invalid state filter {state!r}: expected {sorted(LISTABLE_STATES)}")
    regions = [r for value in query.get("region", []) for r in value.split(",") if r]
    metadata = {k[len("metadata.") :]: v[-1] for k, v in query.items() if k.startswith("metadata.")}
    out = []
    for record in sorted(world.state.machines_of(app_name), key=lambda m: m.created_mono):
        machine = listed(world, record)
        if machine is None:
            continue  # eventually consistent: not yet in the list
        if machine.state == "destroyed" and not include_deleted:
            continue
        if states and machine.state not in states:
            continue
        if regions and machine.region not in regions:
            continue
        if metadata and machine.host_status != "ok":
            continue  # no trustworthy config: a metadata filter cannot match it
        meta = machine.config.get("metadata") or {}
        if any(meta.get(k) != v for k, v in metadata.items()):
            continue
        out.append(render_machine(world, machine, summary=summary, include_lease=include_lease))
    return out


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    return bool(values) and values is not None and values[-1].lower() in ("true", "1", "yes")


def list_events(world: World, app_name: str, machine_id: str, limit: str | None) -> list[dict[str, Any]]:
    machine = find_machine(world, app_name, machine_id)
    try:
        count = int(limit) if limit else EVENTS_ON_MACHINE
    except ValueError as exc:
        raise bad_request(f"invalid limit {limit!r}") from exc
    count = max(1, min(count, MAX_EVENTS))
    return [e.render() for e in reversed(machine.events[-count:])]


def list_versions(world: World, app_name: str, machine_id: str) -> list[dict[str, Any]]:
    machine = find_machine(world, app_name, machine_id)
    return [
        {"version": v.version, "user_config": copy.deepcopy(v.config)} for v in reversed(machine.versions)
    ]


# --- metadata --------------------------------------------------------------------------------------------


def get_metadata(world: World, app_name: str, machine_id: str) -> dict[str, str]:
    machine = find_machine(world, app_name, machine_id)
    return dict(machine.config.get("metadata") or {})


def _metadata_dicts(machine: MachineRecord) -> list[dict[str, str]]:
    targets = [machine.config.setdefault("metadata", {})]
    if machine.versions:
        targets.append(machine.versions[-1].config.setdefault("metadata", {}))
    return targets


def set_metadata_key(world: World, app_name: str, machine_id: str, key: str, body: dict[str, Any]) -> None:
    machine = find_machine(world, app_name, machine_id, allow_destroyed=False)
    require_host(machine)
    value = body.get("value")
    if not isinstance(value, str):
        raise bad_request("value is required and must be a string")
    for target in _metadata_dicts(machine):
        target[key] = value
    touch(world, machine)


def get_metadata_key(world: World, app_name: str, machine_id: str, key: str) -> dict[str, str]:
    machine = find_machine(world, app_name, machine_id)
    meta = machine.config.get("metadata") or {}
    if key not in meta:
        raise not_found("metadata key")
    return {"value": meta[key]}


def delete_metadata_key(world: World, app_name: str, machine_id: str, key: str) -> None:
    machine = find_machine(world, app_name, machine_id, allow_destroyed=False)
    require_host(machine)
    for target in _metadata_dicts(machine):
        target.pop(key, None)
    touch(world, machine)


def replace_metadata(world: World, app_name: str, machine_id: str, body: dict[str, Any]) -> None:
    machine = find_machine(world, app_name, machine_id, allow_destroyed=False)
    require_host(machine)
    expected = body.get("machine_version")
    if expected is not None and expected != machine.instance_id:
        raise precondition(f"machine version mismatch: current version is {machine.instance_id}")
    changes = body.get("metadata")
    if not isinstance(changes, dict):
        raise bad_request("metadata must be an object")
    for target in _metadata_dicts(machine):
        for key, value in changes.items():
            if value in (None, ""):
                target.pop(key, None)
            else:
                target[key] = str(value)
    touch(world, machine)
