"""The emulator's in-memory world: apps, secrets, volumes, machines, leases (pydantic records so a
snapshot is a plain JSON dump). Times ending in ``_mono`` are emulated monotonic seconds; ``*_wall``
are unix seconds. Secret values are never stored: only Fly's short digest and a salted HMAC."""

from __future__ import annotations

import hashlib
import hmac
import secrets as pysecrets
from typing import Any

from pydantic import BaseModel, Field, PrivateAttr

from controlplane.fly.emulator.agent_state import AgentState

TRANSIENT_STATES = frozenset(
    {
        "creating",
        "starting",
        "stopping",
        "restarting",
        "suspending",
        "destroying",
        "updating",
        "replacing",
        "launch_failed",
    }
)
SETTLED_STATES = frozenset({"created", "started", "stopped", "suspended", "failed", "destroyed"})
WAITABLE_STATES = frozenset({"started", "stopped", "suspended", "destroyed", "failed", "settled"})
LISTABLE_STATES = frozenset({"created", "started", "stopped", "suspended"})


class SecretEntry(BaseModel):
    name: str
    digest: str
    mac: str  # salted HMAC-SHA256 of the value, for gateway-token checks
    created_wall: float
    updated_wall: float


class SecretWrite(BaseModel):
    """One versioned write to an app's secret store: name -> entry (None = unset)."""

    version: int
    mono: float
    changes: dict[str, SecretEntry | None]


class AppRecord(BaseModel):
    name: str
    org: str
    network: str
    id: str
    internal_numeric_id: int
    created_wall: float
    created_mono: float | None = None  # None (older snapshots): old enough for any read lag
    delete_at_mono: float | None = None
    deleting_since_mono: float | None = None
    secrets_version: int = 0
    secret_writes: list[SecretWrite] = Field(default_factory=list)

    def secrets_at(self, version: int) -> dict[str, SecretEntry]:
        current: dict[str, SecretEntry] = {}
        for write in self.secret_writes:
            if write.version > version:
                break
            for name, entry in write.changes.items():
                if entry is None:
                    current.pop(name, None)
                else:
                    current[name] = entry
        return current

    def visible_secrets_version(self, now: float, delay: float) -> int:
        visible = 0
        for write in self.secret_writes:
            if write.mono + delay <= now:
                visible = write.version
        return visible


class MachineEvent(BaseModel):
    id: str
    type: str
    status: str
    source: str
    timestamp: int  # unix ms
    request: dict[str, Any] = Field(default_factory=dict)

    def render(self) -> dict[str, Any]:
        body = self.model_dump()
        if not body["request"]:
            body.pop("request")
        return body


class PlannedStep(BaseModel):
    """A transition that happens by itself at ``due_mono`` (Fly's flyd finishing an operation)."""

    due_mono: float
    state: str
    event_type: str | None = None
    event_status: str | None = None
    source: str = "flyd"


class Lease(BaseModel):
    nonce: str
    owner: str
    description: str
    expires_wall: float
    version: str


class MachineVersion(BaseModel):
    version: str
    config: dict[str, Any]
    created_wall: float


class GatewayHealth(BaseModel):
    """Test-controlled health of the OpenClaw gateway inside a machine."""

    ready: bool = True
    failing: list[str] = Field(default_factory=list)
    crash_looping: bool = False
    restart_count: int = 0
    exit_code: int = 0
    oom_killed: bool = False
    crash_every: float | None = None  # an ongoing crash loop: one more exit per this many seconds
    next_crash_mono: float | None = None


class ListView(BaseModel):
    """What the (eventually consistent) list endpoints show of a machine, captured at ``at_mono``
    and served from ``at_mono + list_consistency`` on. ``updated_*`` keep the change's own time."""

    at_mono: float
    state: str
    instance_id: str
    config: dict[str, Any]
    updated_wall: float
    updated_mono: float
    started_mono: float | None = None
    host_status: str = "ok"
    cordoned: bool = False


class MachineRecord(BaseModel):
    id: str
    app: str
    name: str
    region: str
    state: str
    instance_id: str
    config: dict[str, Any]
    private_ip: str
    created_wall: float
    created_mono: float
    updated_wall: float
    updated_mono: float
    secrets_version: int = 0
    skip_secrets: bool = False
    started_mono: float | None = None  # when the current boot reached "started"
    destroyed_mono: float | None = None
    gone: bool = False  # GET answers 404
    cordoned: bool = False
    host_status: str = "ok"
    lease: Lease | None = None
    nonce: str | None = None  # returned on create with lease_ttl only
    events: list[MachineEvent] = Field(default_factory=list)  # oldest first
    plan: list[PlannedStep] = Field(default_factory=list)
    versions: list[MachineVersion] = Field(default_factory=list)  # oldest first
    health: GatewayHealth = Field(default_factory=GatewayHealth)
    agent: AgentState = Field(default_factory=AgentState)  # the emulated OpenClaw agent's own view
    list_views: list[ListView] = Field(default_factory=list)  # oldest first; empty = list shows it live
    migrated_versions: list[str] = Field(default_factory=list)  # versions left behind by a migration
    migrate_on_start: bool = False  # the next start moves the machine to another host

    @property
    def old_versions(self) -> set[str]:
        return {v.version for v in self.versions[:-1]}


class VolumeRecord(BaseModel):
    id: str
    name: str
    app: str
    region: str
    zone: str
    size_gb: int
    encrypted: bool = True
    fstype: str = "ext4"
    state: str = "created"
    attached_machine_id: str | None = None
    auto_backup_enabled: bool = True
    snapshot_retention: int = 5
    created_wall: float
    destroyed: bool = False


class UpdateRecord(BaseModel):
    """One machine update as the emulator saw it: in flight from the request until the machine is
    back (replaced, and, when it restarts, its gateway booted)."""

    machine_id: str
    app: str
    image_before: str
    image_after: str
    started_mono: float
    ends_mono: float


class EmulatorState(BaseModel):
    org: str
    secret_salt: str = Field(default_factory=lambda: pysecrets.token_hex(16))
    apps: dict[str, AppRecord] = Field(default_factory=dict)
    machines: dict[str, MachineRecord] = Field(default_factory=dict)
    volumes: dict[str, VolumeRecord] = Field(default_factory=dict)
    foreign_apps: dict[str, str] = Field(default_factory=dict)  # app name -> other org
    error_regions: list[str] = Field(default_factory=list)  # org listing answers these as failed
    saved_mono: float = 0.0
    updates: list[UpdateRecord] = Field(default_factory=list)  # every machine update, in order
    failing_images: dict[str, list[str]] = Field(default_factory=dict)  # image -> apps ([] = all)
    _by_app: dict[str, list[str]] = PrivateAttr(default_factory=dict)
    _indexed: tuple[int, str | None] = PrivateAttr(default=(-1, None))

    def secret_mac(self, value: str) -> str:
        return hmac.new(self.secret_salt.encode(), value.encode(), hashlib.sha256).hexdigest()

    def machines_of(self, app: str) -> list[MachineRecord]:
        """The machines of ``app``, from an index by app (a fleet of 10,000 is not scanned on every
        probe). Rebuilt when a record was added or removed: the count or the newest id changed."""
        key = (len(self.machines), next(reversed(self.machines), None))
        if key != self._indexed:
            by_app: dict[str, list[str]] = {}
            for machine in self.machines.values():
                by_app.setdefault(machine.app, []).append(machine.id)
            self._by_app, self._indexed = by_app, key
        return [self.machines[i] for i in self._by_app.get(app, ())]
