"""GET /v1/orgs/{org}/machines: the fleet-wide listing, ordered by (updated_at, id), cursor paged.

Served from the same eventually consistent per-machine views as the app machine list: a change
shows up ``list_consistency`` after it happened, carrying its own (earlier) ``updated_at`` — so a
poller must overlap its ``updated_after`` window. ``host_status != ok``: ``incomplete_config``."""

from __future__ import annotations

import base64
import copy
from typing import Any

from controlplane.fly.emulator.apps import settle_app
from controlplane.fly.emulator.clock import parse_rfc3339, rfc3339
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import bad_request, not_found
from controlplane.fly.emulator.state import MachineRecord
from controlplane.fly.emulator.timeline import listed

DEFAULT_LIMIT = 100
MAX_LIMIT = 1000


def encode_cursor(machine: MachineRecord) -> str:
    raw = f"{machine.updated_mono!r}|{machine.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        mono, _, machine_id = base64.urlsafe_b64decode(padded.encode()).decode().partition("|")
        return float(mono), machine_id
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request("invalid cursor") from exc


def _overview(machine: MachineRecord) -> dict[str, Any]:
    config = machine.config
    return {
        "guest": copy.deepcopy(config.get("guest")),
        "image": config.get("image"),
        "metadata": dict(config.get("metadata") or {}),
    }


def _flag(query: dict[str, list[str]], name: str) -> bool:
    values = query.get(name)
    return bool(values) and values is not None and values[-1].lower() in ("true", "1", "yes")


def list_org_machines(world: World, org: str, query: dict[str, list[str]]) -> dict[str, Any]:
    if org != world.state.org:
        raise not_found("organization")
    summary = _flag(query, "summary")
    include_deleted = _flag(query, "include_deleted")
    states = [s for v in query.get("state", []) for s in v.split(",") if s]
    regions = [r for v in query.get("region", []) for r in v.split(",") if r]
    updated_after: float | None = None
    if query.get("updated_after"):
        try:
            updated_after = parse_rfc3339(query["updated_after"][-1])
        except ValueError as exc:
            raise bad_request("invalid updated_after: expected an RFC 3339 timestamp") from exc
    limit = DEFAULT_LIMIT
    if query.get("limit"):
        try:
            limit = int(query["limit"][-1])
        except ValueError as exc:
            raise bad_request("invalid limit") from exc
        if limit < 1:
            raise bad_request("invalid limit")
        limit = min(limit, MAX_LIMIT)
    after: tuple[float, str] | None = decode_cursor(query["cursor"][-1]) if query.get("cursor") else None

    for app in list(world.state.apps.values()):
        settle_app(world, app)
    error_regions = set(world.state.error_regions)
    candidates: list[MachineRecord] = []
    for record in list(world.state.machines.values()):
        machine = listed(world, record)
        if machine is None:
            continue  # eventually consistent: not in the listing yet
        if machine.gone and not include_deleted:
            continue
        if machine.state == "destroyed" and not include_deleted:
            continue
        if machine.region in error_regions:
            continue
        if states and machine.state not in states:
            continue
        if regions and machine.region not in regions:
            continue
        if updated_after is not None and machine.updated_wall <= updated_after:
            continue
        if after is not None and (machine.updated_mono, machine.id) <= after:
            continue
        candidates.append(machine)
    candidates.sort(key=lambda m: (m.updated_mono, m.id))
    page = candidates[:limit]
    body: dict[str, Any] = {
        "machines": [_render(world, m, summary) for m in page],
        "next_cursor": encode_cursor(page[-1]) if len(candidates) > limit else "",
        "last_updated_at": rfc3339(page[-1].updated_wall) if page else "",
        "last_machine_id": page[-1].id if page else "",
        "error_regions": sorted(error_regions),
    }
    return body


def _render(world: World, machine: MachineRecord, summary: bool) -> dict[str, Any]:
    body: dict[str, Any] = {
        "app_name": machine.app,
        "id": machine.id,
        "name": machine.name,
        "state": machine.state,
        "region": machine.region,
        "version": machine.instance_id,
        "private_ip": machine.private_ip,
        "created_at": rfc3339(machine.created_wall),
        "updated_at": rfc3339(machine.updated_wall),
    }
    key = "config" if machine.host_status == "ok" else "incomplete_config"
    body[key] = _overview(machine) if summary or key == "incomplete_config" else copy.deepcopy(machine.config)
    if not summary:
        body["host_status"] = machine.host_status
    return body
