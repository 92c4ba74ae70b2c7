"""Apps (global names, async cascading delete) and their versioned, write-only secret store.

A new app answers GET and machine list with 404 for ``read_lag`` (read-after-write lag). A delete
(202) is all-or-nothing: every machine goes ``destroying`` → ``destroyed`` on a schedule, new machine
creates are refused (409), destroyed machines stay visible under ``include_deleted``, then the app
and everything in it answer 404."""

from __future__ import annotations

import re
from typing import Any

import structlog

from agents_config.openclaw_config import GATEWAY_TOKEN_ENV
from controlplane.fly.emulator.clock import rfc3339
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import ApiError, bad_request, not_found
from controlplane.fly.emulator.state import AppRecord, PlannedStep, SecretEntry, SecretWrite
from controlplane.fly.emulator.timeline import add_event, set_state, settle

log = structlog.get_logger(__name__)

APP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
SECRET_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def settle_app(world: World, app: AppRecord) -> bool:
    """Finish a pending deletion when due. Returns False when the app is gone."""
    if app.delete_at_mono is None or world.now() < app.delete_at_mono:
        return True
    state = world.state
    for machine_id in [m.id for m in state.machines_of(app.name)]:
        del state.machines[machine_id]
    for volume_id in [v.id for v in state.volumes.values() if v.app == app.name]:
        del state.volumes[volume_id]
    del state.apps[app.name]
    log.debug("fly_emulator.app_deleted", app=app.name)
    return False


def get_app(world: World, name: str) -> AppRecord:
    app = world.state.apps.get(name)
    if app is None or not settle_app(world, app):
        if name in world.state.foreign_apps:
            raise ApiError(403, f"you are not authorized to access app {name}", "unauthorized")
        raise not_found("app")
    return app


def require_app_visible(world: World, app: AppRecord) -> None:
    """GET app / list machines on an app younger than ``read_lag``: 404 (read-after-write lag)."""
    if app.created_mono is not None and world.now() < app.created_mono + world.profile.read_lag:
        raise not_found("app")


def _check_org(world: World, org: str | None) -> str:
    if not org:
        raise bad_request("org_slug is required")
    if org != world.state.org:
        raise ApiError(404, f"organization {org} not found", "not_found")
    return org


def create_app(world: World, body: dict[str, Any]) -> dict[str, Any]:
    name = body.get("app_name") or body.get("name")
    if not isinstance(name, str) or not name:
        raise bad_request("app_name is required")
    org = _check_org(world, body.get("org_slug"))
    if not APP_NAME.match(name):
        raise ApiError(
            422, "App name can only contain lowercase letters, numbers, and dashes", "invalid_name"
        )
    existing = world.state.apps.get(name)
    if (existing is not None and settle_app(world, existing)) or name in world.state.foreign_apps:
        raise ApiError(422, "Name has already been taken", "name_taken")
    network = body.get("network") or "default"
    app = AppRecord(
        name=name,
        org=org,
        network=str(network),
        id=world.ids.app_id(),
        internal_numeric_id=world.ids.numeric(),
        created_wall=world.wall(),
        created_mono=world.now(),
    )
    world.state.apps[name] = app
    log.debug("fly_emulator.app_created", app=name)
    return render_app(world, app)


def render_app(world: World, app: AppRecord) -> dict[str, Any]:
    machines = [m for m in world.state.machines_of(app.name) if m.state != "destroyed" and not m.gone]
    volumes = [v for v in world.state.volumes.values() if v.app == app.name and not v.destroyed]
    return {
        "id": app.id,
        "name": app.name,
        "status": "deployed" if machines else "pending",
        "organization": {"name": app.org, "slug": app.org},
        "network": app.network,
        "machine_count": len(machines),
        "volume_count": len(volumes),
        "internal_numeric_id": app.internal_numeric_id,
    }


def list_apps(world: World, org: str | None) -> dict[str, Any]:
    _check_org(world, org)
    apps = [a for a in list(world.state.apps.values()) if settle_app(world, a) and a.delete_at_mono is None]
    return {
        "total_apps": len(apps),
        "apps": [render_app(world, a) for a in sorted(apps, key=lambda a: a.name)],
    }


def delete_app(world: World, name: str, force: bool) -> None:
    app = get_app(world, name)
    if app.delete_at_mono is not None:
        return
    for machine in world.state.machines_of(name):
        settle(world, machine)
    running = [m for m in world.state.machines_of(name) if m.state in ("started", "starting", "replacing")]
    if running and not force:
        raise ApiError(
            412,
            f"app {name} has {len(running)} running machine(s); stop them first or pass force=true",
            "failed_precondition",
        )
    now = world.now()
    profile = world.profile
    # Cascade: every machine is destroyed, one after the other (a short stagger), before the app goes.
    last_destroyed = now
    for index, machine in enumerate(sorted(world.state.machines_of(name), key=lambda m: m.created_mono)):
        if machine.state in ("destroying", "destroyed"):
            continue
        due = now + profile.destroy + index * 0.05 * profile.destroy
        machine.plan = [
            PlannedStep(due_mono=due, state="destroyed", event_type="destroy", event_status="destroyed")
        ]
        machine.lease = None
        set_state(world, machine, "destroying", now)
        add_event(world, machine, "destroy", "destroying", "flyd", now)
        last_destroyed = max(last_destroyed, due)
    app.deleting_since_mono = now
    app.delete_at_mono = max(now + profile.app_delete, last_destroyed + min(profile.destroyed_retention, 1.0))
    settle_app(world, app)


# --- secrets ---------------------------------------------------------------------------------------


def _render_secret(entry: SecretEntry) -> dict[str, Any]:
    return {
        "name": entry.name,
        "digest": entry.digest,
        "created_at": rfc3339(entry.created_wall),
        "updated_at": rfc3339(entry.updated_wall),
    }


def _write(world: World, app: AppRecord, values: dict[str, str | None]) -> int:
    current = app.secrets_at(app.secrets_version)
    now_wall = world.wall()
    changes: dict[str, SecretEntry | None] = {}
    for name, value in values.items():
        if value is None:
            changes[name] = None
            continue
        mac = world.state.secret_mac(value)
        previous = current.get(name)
        changes[name] = SecretEntry(
            name=name,
            digest=mac[:16],
            mac=mac,
            created_wall=previous.created_wall if previous else now_wall,
            updated_wall=now_wall,
        )
    app.secrets_version += 1
    app.secret_writes.append(SecretWrite(version=app.secrets_version, mono=world.now(), changes=changes))
    log.debug("fly_emulator.secrets_written", app=app.name, names=sorted(values), version=app.secrets_version)
    return app.secrets_version


def _check_names(values: dict[str, Any]) -> None:
    for name, value in values.items():
        if not SECRET_NAME.match(name):
            raise bad_request(f"invalid secret name {name!r}")
        if value is not None and not isinstance(value, str):
            raise bad_request(f"secret {name}: value must be a string or null")


def set_secrets(world: World, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
    app = get_app(world, app_name)
    values = body.get("values")
    if not isinstance(values, dict) or not values:
        raise bad_request("values must be a non-empty object of NAME: value|null")
    _check_names(values)
    version = _write(world, app, values)
    return {"secrets": [_render_secret(e) for e in _sorted(app.secrets_at(version))], "version": version}


def _sorted(entries: dict[str, SecretEntry]) -> list[SecretEntry]:
    return [entries[k] for k in sorted(entries)]


def list_secrets(world: World, app_name: str, min_version: int | None) -> dict[str, Any]:
    app = get_app(world, app_name)
    visible = app.visible_secrets_version(world.now(), world.profile.secrets_visibility)
    if min_version is not None and min_version > visible:
        raise ApiError(
            412,
            f"secrets version {min_version} is not yet available (visible: {visible})",
            "failed_precondition",
        )
    return {"secrets": [_render_secret(e) for e in _sorted(app.secrets_at(visible))], "version": visible}


def get_secret(world: World, app_name: str, name: str) -> dict[str, Any]:
    app = get_app(world, app_name)
    visible = app.visible_secrets_version(world.now(), world.profile.secrets_visibility)
    entry = app.secrets_at(visible).get(name)
    if entry is None:
        raise not_found("secret")
    return _render_secret(entry)


def set_secret(world: World, app_name: str, name: str, body: dict[str, Any]) -> dict[str, Any]:
    app = get_app(world, app_name)
    value = body.get("value")
    if not isinstance(value, str):
        raise bad_request("value is required and must be a string")
    _check_names({name: value})
    version = _write(world, app, {name: value})
    return {**_render_secret(app.secrets_at(version)[name]), "version": version}


def delete_secret(world: World, app_name: str, name: str) -> dict[str, Any]:
    app = get_app(world, app_name)
    if name not in app.secrets_at(app.secrets_version):
        raise not_found("secret")
    return {"version": _write(world, app, {name: None})}


def gateway_token_mac(world: World, app: AppRecord, version: int) -> str | None:
    entry = app.secrets_at(version).get(GATEWAY_TOKEN_ENV)
    return entry.mac if entry else None
