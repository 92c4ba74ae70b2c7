"""Pydantic v2 models of the Fly Machines API objects the control plane uses.

Response models use ``extra="allow"``: Fly returns more than we model, and a machine config read back
with GET must be posted back *whole* on update (there is no partial update), so unknown fields are
kept and re-serialised. Request bodies are produced with :func:`to_body` (``exclude_none``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from controlplane.fly.errors import FlyIncompleteConfig

#: States accepted by ``GET .../wait`` (plus pseudo-state ``settled``).
WaitState = Literal["started", "stopped", "suspended", "destroyed", "failed", "settled"]
#: States accepted by the machine list filters.
ListState = Literal["created", "started", "stopped", "suspended"]

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
GONE_STATES = frozenset({"destroyed", "destroying"})
#: Terminal states of an OLD version: the machine lives on under a new ``instance_id``.
SUPERSEDED_STATES = frozenset({"replaced", "migrated"})
#: The machine could not (re)start: waiting longer for another state is pointless.
FAILED_STATES = frozenset({"failed", "launch_failed"})


class FlyModel(BaseModel):
    """Base: tolerate and keep unknown fields."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)


def to_body(model: BaseModel) -> dict[str, Any]:
    """JSON-ready request body: no ``None`` fields, aliases applied."""
    return model.model_dump(mode="json", exclude_none=True, by_alias=True)


# --- apps ---------------------------------------------------------------------------------------
class AppOrganization(FlyModel):
    name: str | None = None
    slug: str | None = None


class App(FlyModel):
    id: str | None = None
    name: str
    status: str | None = None
    organization: AppOrganization | None = None
    network: str | None = None
    machine_count: int | None = None
    volume_count: int | None = None


class CreateAppRequest(FlyModel):
    """``POST /apps``. The spec and fly-go send ``name``; Fly's docs say ``app_name`` (fly-machines.md §3.1)."""

    name: str
    org_slug: str
    network: str | None = None
    enable_subdomains: bool | None = None


# --- secrets ------------------------------------------------------------------------------------
class AppSecret(FlyModel):
    """Metadata of one app secret. Fly never returns plaintext values to us."""

    name: str
    digest: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class SecretsUpdate(FlyModel):
    """Answer of a secrets write: ``version`` is what to pass as ``min_secrets_version``."""

    version: int | None = None
    secrets: list[AppSecret] = Field(default_factory=list)


# --- volumes ------------------------------------------------------------------------------------
class Volume(FlyModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    zone: str | None = None
    size_gb: int | None = None
    encrypted: bool | None = None
    attached_machine_id: str | None = None
    host_status: str | None = None
    created_at: str | None = None


class CreateVolumeRequest(FlyModel):
    name: str
    region: str
    size_gb: int
    encrypted: bool | None = None
    fstype: str | None = None
    snapshot_id: str | None = None
    source_volume_id: str | None = None
    require_unique_zone: bool | None = None
    auto_backup_enabled: bool | None = None
    snapshot_retention: int | None = None


# --- machine config -----------------------------------------------------------------------------
class MachineGuest(FlyModel):
    cpu_kind: str | None = None
    cpus: int | None = None
    memory_mb: int | None = None


class MachineRestart(FlyModel):
    policy: str | None = None
    max_retries: int | None = None


class MachineMount(FlyModel):
    volume: str
    path: str
    name: str | None = None


class StopConfig(FlyModel):
    signal: str | None = None
    timeout: str | None = None


class MachineService(FlyModel):
    protocol: str | None = None
    internal_port: int | None = None
    ports: list[dict[str, Any]] | None = None
    autostop: str | None = None
    autostart: bool | None = None
    min_machines_running: int | None = None
    concurrency: dict[str, Any] | None = None
    checks: list[dict[str, Any]] | None = None

    @field_validator("autostop", mode="before")
    @classmethod
    def _autostop_as_string(cls, value: Any) -> Any:
        # Responses encode "off"/"stop" as false/true (fly-machines.md §4.2); requests want the string.
        if value is True:
            return "stop"
        if value is False:
            return "off"
        return value


class MachineConfig(FlyModel):
    """The whole machine config. Unknown fields are kept so an update re-posts everything."""

    image: str
    env: dict[str, str] | None = None
    guest: MachineGuest | None = None
    metadata: dict[str, str] | None = None
    services: list[MachineService] | None = None
    checks: dict[str, dict[str, Any]] | None = None
    restart: MachineRestart | None = None
    init: dict[str, Any] | None = None
    mounts: list[MachineMount] | None = None
    files: list[dict[str, Any]] | None = None
    stop_config: StopConfig | None = None
    auto_destroy: bool | None = None


class CreateMachineRequest(FlyModel):
    config: MachineConfig
    name: str | None = None
    region: str | None = None
    skip_launch: bool | None = None
    skip_service_registration: bool | None = None
    skip_secrets: bool | None = None
    min_secrets_version: int | None = None
    lease_ttl: int | None = None


class UpdateMachineRequest(FlyModel):
    """Full replacement of a machine's config (there is no partial update)."""

    config: MachineConfig
    current_version: str | None = None
    min_secrets_version: int | None = None
    skip_launch: bool | None = None
    skip_secrets: bool | None = None
    skip_service_registration: bool | None = None

    @classmethod
    def from_machine(
        cls, machine: Machine, *, min_secrets_version: int | None = None, skip_launch: bool | None = None
    ) -> UpdateMachineRequest:
        """A whole-config update starting from a freshly read machine (a deep copy of its config,
        ``current_version`` pinned). Refuses with :class:`~controlplane.fly.errors.FlyIncompleteConfig`
        when the machine has no ``config`` (``host_status != ok``: only ``incomplete_config``) —
        posting a partial config would wipe everything missing from it."""
        if machine.config is None:
            raise FlyIncompleteConfig(
                f"machine {machine.id} has no complete config (host_status {machine.host_status or 'unknown'}); "
                "refusing to build an update from it: re-read it once its host is ok"
            )
        return cls(
            config=machine.config.model_copy(deep=True),
            current_version=machine.current_version,
            min_secrets_version=min_secrets_version,
            skip_launch=skip_launch,
        )


class StopRequest(FlyModel):
    signal: str | None = None
    timeout: str | None = None


# --- machine ------------------------------------------------------------------------------------
class CheckStatus(FlyModel):
    name: str | None = None
    status: str | None = None
    output: str | None = None
    updated_at: str | None = None


class MachineEvent(FlyModel):
    id: str | None = None
    type: str | None = None
    status: str | None = None
    source: str | None = None
    timestamp: int | None = None
    request: dict[str, Any] | None = None


class StrippedLease(FlyModel):
    owner: str | None = None
    expires_at: int | None = None
    description: str | None = None


class Machine(FlyModel):
    id: str
    name: str | None = None
    state: str | None = None
    region: str | None = None
    instance_id: str | None = None
    version: str | None = None
    private_ip: str | None = None
    config: MachineConfig | None = None
    incomplete_config: dict[str, Any] | None = None
    image_ref: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    events: list[MachineEvent] = Field(default_factory=list)
    checks: list[CheckStatus] = Field(default_factory=list)
    host_status: str | None = None
    cordoned: bool | None = None
    nonce: str | None = None
    lease: StrippedLease | None = None

    @property
    def current_version(self) -> str | None:
        """The machine's current version id (``instance_id``; ``version`` on newer answers)."""
        return self.instance_id or self.version

    @property
    def metadata(self) -> dict[str, str]:
        """``config.metadata``, or what ``incomplete_config`` holds when the host is not ok."""
        if self.config is not None:
            return dict(self.config.metadata or {})
        return _incomplete_metadata(self.incomplete_config)

    @property
    def host_ok(self) -> bool:
        """False when ``host_status`` is ``unknown``/``unreachable``: the state is not trustworthy
        and ``config`` is missing (do not act destructively, do not update)."""
        return self.host_status in (None, "ok")

    @property
    def healthy(self) -> bool:
        """At least one check result and all passing (an empty list right after start is not)."""
        return bool(self.checks) and all(c.status == "passing" for c in self.checks)


def _incomplete_metadata(incomplete: dict[str, Any] | None) -> dict[str, str]:
    meta = (incomplete or {}).get("metadata")
    return {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


class StartResult(FlyModel):
    previous_state: str | None = None
    migrated: bool | None = None
    new_host: str | None = None


class WaitResult(FlyModel):
    ok: bool = True
    state: str | None = None
    version: str | None = None
    event_id: str | None = None


class ExecResult(FlyModel):
    """Answer of ``POST .../exec``. Fly answers 200 even when the command failed: read
    ``exit_code``. The repr shows sizes, never the output (status commands print key previews)."""

    exit_code: int = 0
    exit_signal: int | None = None
    stdout: str = ""
    stderr: str = ""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def __repr__(self) -> str:
        return (
            f"ExecResult(exit_code={self.exit_code}, exit_signal={self.exit_signal}, "
            f"stdout=<{len(self.stdout)} chars>, stderr=<{len(self.stderr)} chars>)"
        )

    __str__ = __repr__


class Lease(FlyModel):
    nonce: str
    expires_at: int | None = None
    owner: str | None = None
    description: str | None = None
    version: str | None = None


# --- org listing --------------------------------------------------------------------------------
class MachineOverviewConfig(FlyModel):
    image: str | None = None
    guest: MachineGuest | None = None
    metadata: dict[str, str] | None = None


class OrgMachine(FlyModel):
    id: str
    app_name: str | None = None
    name: str | None = None
    state: str | None = None
    region: str | None = None
    version: str | None = None
    private_ip: str | None = None
    config: MachineOverviewConfig | None = None
    incomplete_config: dict[str, Any] | None = None
    host_status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @property
    def metadata(self) -> dict[str, str]:
        if self.config is not None:
            return dict(self.config.metadata or {})
        return _incomplete_metadata(self.incomplete_config)


class OrgMachinesPage(FlyModel):
    machines: list[OrgMachine] = Field(default_factory=list)
    next_cursor: str | None = None
    last_updated_at: str | None = None
    last_machine_id: str | None = None
    error_regions: list[str] | None = None


@dataclass(frozen=True)
class OrgMachineQuery:
    """The filters of the org-wide listing (``GET /orgs/{org}/machines``): one value passed from
    :class:`~controlplane.fly.paging.OrgMachineScan` to every page it asks for. ``org=None`` is the
    client's own organisation; ``None`` elsewhere leaves the filter out."""

    org: str | None = None
    updated_after: datetime | str | None = None
    state: str | Sequence[str] | None = None
    region: str | None = None
    include_deleted: bool | None = None
    summary: bool | None = True
    limit: int | None = 1000


def rfc3339(value: datetime | str) -> str:
    """RFC 3339 timestamp for ``updated_after``."""
    if isinstance(value, str):
        return value
    if value.tzinfo is None:
        raise ValueError("updated_after must be timezone-aware")
    return value.isoformat().replace("+00:00", "Z")


__all__ = [
    "App",
    "AppOrganization",
    "AppSecret",
    "CheckStatus",
    "CreateAppRequest",
    "CreateMachineRequest",
    "CreateVolumeRequest",
    "FAILED_STATES",
    "GONE_STATES",
    "Lease",
    "ListState",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineGuest",
    "MachineMount",
    "MachineOverviewConfig",
    "MachineRestart",
    "MachineService",
    "OrgMachine",
    "OrgMachineQuery",
    "OrgMachinesPage",
    "SecretsUpdate",
    "StartResult",
    "StopConfig",
    "StopRequest",
    "StrippedLease",
    "SUPERSEDED_STATES",
    "TRANSIENT_STATES",
    "UpdateMachineRequest",
    "Volume",
    "WaitResult",
    "WaitState",
    "rfc3339",
    "to_body",
]
