"""Volumes: pinned to one host (zone) in one region, attached to at most one machine."""

from __future__ import annotations

import re
from typing import Any

from controlplane.fly.emulator.apps import get_app
from controlplane.fly.emulator.clock import rfc3339
from controlplane.fly.emulator.config import validate_region
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import ApiError, bad_request, not_found
from controlplane.fly.emulator.state import VolumeRecord
from controlplane.fly.emulator.timeline import settle

VOLUME_NAME = re.compile(r"^[a-z0-9_]{1,30}$")
MAX_SIZE_GB = 500


def render_volume(volume: VolumeRecord) -> dict[str, Any]:
    blocks = volume.size_gb * 1024 * 1024 // 4
    body: dict[str, Any] = {
        "id": volume.id,
        "name": volume.name,
        "state": volume.state,
        "size_gb": volume.size_gb,
        "region": volume.region,
        "zone": volume.zone,
        "encrypted": volume.encrypted,
        "fstype": volume.fstype,
        "type": "local",
        "created_at": rfc3339(volume.created_wall),
        "host_status": "ok",
        "block_size": 4096,
        "blocks": blocks,
        "blocks_free": blocks,
        "blocks_avail": blocks,
        "bytes_total": volume.size_gb * 1024**3,
        "bytes_used": 0,
        "auto_backup_enabled": volume.auto_backup_enabled,
        "snapshot_retention": volume.snapshot_retention,
    }
    if volume.attached_machine_id is not None:  # omitted when detached (the spec has no nulls)
        body["attached_machine_id"] = volume.attached_machine_id
    return body


def get_volume(world: World, app_name: str, volume_id: str) -> VolumeRecord:
    get_app(world, app_name)
    volume = world.state.volumes.get(volume_id)
    if volume is None or volume.app != app_name or volume.destroyed:
        raise not_found("volume")
    machine = world.state.machines.get(volume.attached_machine_id or "")
    if machine is not None:
        settle(world, machine)  # a destroyed machine releases its volume
    return volume


MAX_SNAPSHOT_RETENTION = 60  # days (Fly keeps snapshots 1 to 60 days)


def _snapshot_retention(value: Any) -> int:
    if value is None:
        return 5
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_SNAPSHOT_RETENTION:
        raise bad_request(
            f"snapshot_retention must be a number of days between 1 and {MAX_SNAPSHOT_RETENTION}"
        )
    return value


def create_volume(world: World, app_name: str, body: dict[str, Any]) -> dict[str, Any]:
    get_app(world, app_name)
    name = body.get("name")
    if not isinstance(name, str) or not VOLUME_NAME.match(name):
        raise bad_request("volume name must be 1-30 lowercase letters, digits or underscores")
    region = body.get("region")
    if not isinstance(region, str):
        raise bad_request("region is required")
    validate_region(region)
    size = body.get("size_gb", 1)
    if not isinstance(size, int) or size < 1 or size > MAX_SIZE_GB:
        raise bad_request(f"size_gb must be an integer between 1 and {MAX_SIZE_GB}")
    zone = world.ids.zone()
    source = body.get("source_volume_id")
    if source is not None:
        original = world.state.volumes.get(str(source))
        if original is None or original.destroyed:
            raise bad_request(f"source volume {source} not found")
        if original.zone == zone:
            zone = world.ids.zone()
    volume = VolumeRecord(
        id=world.ids.volume_id(),
        name=name,
        app=app_name,
        region=region,
        zone=zone,
        size_gb=size,
        encrypted=bool(body.get("encrypted", True)),
        fstype=str(body.get("fstype") or "ext4"),
        auto_backup_enabled=bool(body.get("auto_backup_enabled", True)),
        snapshot_retention=_snapshot_retention(body.get("snapshot_retention")),
        created_wall=world.wall(),
    )
    world.state.volumes[volume.id] = volume
    return render_volume(volume)


def list_volumes(world: World, app_name: str) -> list[dict[str, Any]]:
    get_app(world, app_name)
    volumes = [v for v in world.state.volumes.values() if v.app == app_name and not v.destroyed]
    return [render_volume(v) for v in sorted(volumes, key=lambda v: v.created_wall)]


def delete_volume(world: World, app_name: str, volume_id: str) -> dict[str, Any]:
    volume = get_volume(world, app_name, volume_id)
    if volume.attached_machine_id is not None:
        raise ApiError(
            412,
            f"volume {volume.id} is attached to machine {volume.attached_machine_id}; destroy it first",
            "failed_precondition",
        )
    volume.destroyed = True
    volume.state = "destroyed"
    return render_volume(volume)


def extend_volume(world: World, app_name: str, volume_id: str, body: dict[str, Any]) -> dict[str, Any]:
    volume = get_volume(world, app_name, volume_id)
    size = body.get("size_gb")
    if not isinstance(size, int) or size <= volume.size_gb or size > MAX_SIZE_GB:
        raise bad_request(
            f"size_gb must be larger than the current size ({volume.size_gb}) and at most {MAX_SIZE_GB}"
        )
    volume.size_gb = size
    machine = world.state.machines.get(volume.attached_machine_id or "")
    needs_restart = machine is not None and machine.state == "started"
    return {"volume": render_volume(volume), "needs_restart": needs_restart}
