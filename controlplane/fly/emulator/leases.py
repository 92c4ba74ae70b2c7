"""Machine leases: acquire/refresh/release/show, and the nonce check every mutation goes through."""

from __future__ import annotations

from typing import Any

from controlplane.fly.emulator.clock import rfc3339
from controlplane.fly.emulator.context import World
from controlplane.fly.emulator.errors import ApiError, bad_request, lease_error_body
from controlplane.fly.emulator.state import Lease, MachineRecord

DEFAULT_TTL = 30
MAX_TTL = 3600


def active_lease(world: World, machine: MachineRecord) -> Lease | None:
    lease = machine.lease
    if lease is not None and lease.expires_wall <= world.wall():
        machine.lease = None
        return None
    return lease


def _conflict(machine: MachineRecord, lease: Lease) -> ApiError:
    message = (
        f"machine ID {machine.id} lease currently held by {lease.owner}, "
        f"expires at {rfc3339(lease.expires_wall)}"
    )
    return ApiError(409, message, body=lease_error_body(message, "invalid"))


def require_nonce(world: World, machine: MachineRecord, nonce: str | None) -> None:
    """Mutations on a leased machine must carry the lease nonce (409 otherwise)."""
    lease = active_lease(world, machine)
    if lease is not None and nonce != lease.nonce:
        raise _conflict(machine, lease)


def envelope(lease: Lease) -> dict[str, Any]:
    return {
        "status": "success",
        "data": {
            "nonce": lease.nonce,
            "expires_at": int(lease.expires_wall),
            "owner": lease.owner,
            "description": lease.description,
            "version": lease.version,
        },
    }


def _ttl(value: Any) -> int:
    if value is None or value == "":
        return DEFAULT_TTL
    try:
        ttl = int(value)
    except (TypeError, ValueError) as exc:
        raise bad_request(f"invalid lease ttl {value!r}") from exc
    if ttl <= 0 or ttl > MAX_TTL:
        raise bad_request(f"invalid lease ttl {ttl}: must be between 1 and {MAX_TTL} seconds")
    return ttl


def acquire(
    world: World, machine: MachineRecord, body: dict[str, Any], query_ttl: str | None, nonce: str | None
) -> dict[str, Any]:
    ttl = _ttl(body.get("ttl", query_ttl))
    description = str(body.get("description") or "")
    lease = active_lease(world, machine)
    expires = world.wall() + ttl
    if lease is not None:
        if nonce != lease.nonce:
            raise _conflict(machine, lease)
        lease.expires_wall = expires  # refresh keeps the nonce
        if description:
            lease.description = description
        return envelope(lease)
    machine.lease = Lease(
        nonce=world.ids.nonce(),
        owner=world.options.lease_owner,
        description=description,
        expires_wall=expires,
        version=machine.instance_id,
    )
    return envelope(machine.lease)


def release(world: World, machine: MachineRecord, nonce: str | None) -> dict[str, Any]:
    if not nonce:
        raise bad_request("fly-machine-lease-nonce header is required to release a lease")
    lease = active_lease(world, machine)
    if lease is None:
        raise ApiError(404, "lease not found", "not_found")
    if nonce != lease.nonce:
        raise _conflict(machine, lease)
    machine.lease = None
    return {"status": "success", "data": {"ok": True}}


def show(world: World, machine: MachineRecord) -> dict[str, Any]:
    lease = active_lease(world, machine)
    if lease is None:
        raise ApiError(404, "lease not found", "not_found")
    return envelope(lease)
