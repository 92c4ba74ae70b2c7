"""Typed async client of the Fly Machines API.

Start here: :class:`FlyClient` (``FlyClient.from_settings(settings)``), the exceptions in
:mod:`controlplane.fly.errors`, and the models in :mod:`controlplane.fly.models`. The helpers above
the client take it as their first argument::

    await create_app_idempotent(fly, app)
    machine = await create_machine_idempotent(fly, app, request, tag)
    await wait_for(fly, app, machine.id, "started", timeout=300, version=machine.instance_id)
    async with MachineLease(fly, app, machine.id) as lease: ...
    async for listed in OrgMachineScan(fly, OrgMachineQuery(updated_after=since)): ...

The Fly emulator lives in the subpackage :mod:`controlplane.fly.emulator`.
"""

from controlplane.fly.auth import authorization_value
from controlplane.fly.client import MAX_WAIT_SECONDS, FlyClient
from controlplane.fly.errors import *  # noqa: F403
from controlplane.fly.errors import __all__ as _errors_all
from controlplane.fly.idempotency import (
    CREATE_TAG_KEY,
    create_app_idempotent,
    create_machine_idempotent,
    find_machines_by_tag,
)
from controlplane.fly.leases import MachineLease, clear_stale_lease
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
    OrgMachineQuery,
    SecretsUpdate,
    UpdateMachineRequest,
    Volume,
    WaitResult,
)
from controlplane.fly.paging import OrgMachineScan
from controlplane.fly.ratelimit import Limit, RateLimiter
from controlplane.fly.transport import LEASE_NONCE_HEADER, REQUEST_ID_HEADER, RetryPolicy
from controlplane.fly.waits import wait_for

__all__ = [
    "App",
    "AppSecret",
    "CREATE_TAG_KEY",
    "CreateMachineRequest",
    "CreateVolumeRequest",
    "FlyClient",
    "LEASE_NONCE_HEADER",
    "Lease",
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
    "OrgMachineQuery",
    "OrgMachineScan",
    "REQUEST_ID_HEADER",
    "RateLimiter",
    "RetryPolicy",
    "SecretsUpdate",
    "UpdateMachineRequest",
    "Volume",
    "WaitResult",
    "authorization_value",
    "clear_stale_lease",
    "create_app_idempotent",
    "create_machine_idempotent",
    "find_machines_by_tag",
    "wait_for",
    *_errors_all,
]
