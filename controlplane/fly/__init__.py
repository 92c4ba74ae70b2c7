"""Typed async client of the Fly Machines API.

Start here: :class:`FlyClient` (``FlyClient.from_settings(settings)``), the exceptions in
:mod:`controlplane.fly.errors`, and the models in :mod:`controlplane.fly.models`.
The Fly emulator lives in the subpackage :mod:`controlplane.fly.emulator`.
"""

from controlplane.fly.auth import authorization_value
from controlplane.fly.client import MAX_WAIT_SECONDS, FlyClient
from controlplane.fly.clock import Clock, SystemClock
from controlplane.fly.errors import *  # noqa: F403
from controlplane.fly.errors import __all__ as _errors_all
from controlplane.fly.idempotency import CREATE_TAG_KEY, find_machines_by_tag
from controlplane.fly.leases import LeaseLost, MachineLease, clear_stale_lease
from controlplane.fly.models import (
    App,
    AppSecret,
    CreateMachineRequest,
    CreateVolumeRequest,
    Lease,
    Machine,
    MachineConfig,
    MachineEvent,
    MachineGuest,
    MachineMount,
    MachineService,
    OrgMachine,
    SecretsUpdate,
    UpdateMachineRequest,
    Volume,
    WaitResult,
)
from controlplane.fly.paging import OrgMachineScan
from controlplane.fly.ratelimit import Limit, RateLimiter
from controlplane.fly.transport import LEASE_NONCE_HEADER, REQUEST_ID_HEADER, RetryPolicy

__all__ = [
    "App",
    "AppSecret",
    "CREATE_TAG_KEY",
    "Clock",
    "CreateMachineRequest",
    "CreateVolumeRequest",
    "FlyClient",
    "LEASE_NONCE_HEADER",
    "Lease",
    "LeaseLost",
    "Limit",
    "MAX_WAIT_SECONDS",
    "Machine",
    "MachineConfig",
    "MachineEvent",
    "MachineGuest",
    "MachineLease",
    "MachineMount",
    "MachineService",
    "OrgMachine",
    "OrgMachineScan",
    "REQUEST_ID_HEADER",
    "RateLimiter",
    "RetryPolicy",
    "SecretsUpdate",
    "SystemClock",
    "UpdateMachineRequest",
    "Volume",
    "WaitResult",
    "authorization_value",
    "clear_stale_lease",
    "find_machines_by_tag",
    *_errors_all,
]
