"""Typed async client of the Fly Machines API (``https://api.machines.dev/v1``).

One method per endpoint the control plane uses; every method returns pydantic models or raises a
:class:`~controlplane.fly.errors.FlyError`. Pacing, the concurrency cap, retries and error
classification live in :mod:`controlplane.fly.transport` below it. This is the bottom layer of the
package's logic: the higher-level helpers sit above it and take a client as their first argument
(:class:`~controlplane.fly.leases.MachineLease`, :func:`~controlplane.fly.waits.wait_for`, the
idempotent creates in :mod:`~controlplane.fly.idempotency`, :class:`~controlplane.fly.paging.OrgMachineScan`);
this module never imports them.

Mutating machine calls take ``nonce=``: pass the lease nonce (``lease.nonce``) on every one of them.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import httpx
import structlog
from pydantic import BaseModel, SecretStr, ValidationError

from controlplane.clock import Clock
from controlplane.fly.auth import FlyAuth
from controlplane.fly.errors import (
    FlyConfigError,
    FlyError,
    FlyNotFound,
    FlyTimeout,
    FlyUnexpectedResponse,
)
from controlplane.fly.models import (
    App,
    AppSecret,
    CreateAppRequest,
    CreateMachineRequest,
    CreateVolumeRequest,
    ExecResult,
    Lease,
    Machine,
    MachineEvent,
    OrgMachineQuery,
    OrgMachinesPage,
    SecretsUpdate,
    StartResult,
    StopRequest,
    UpdateMachineRequest,
    Volume,
    WaitResult,
    WaitState,
    rfc3339,
    to_body,
)
from controlplane.fly.ratelimit import Limit, RateLimiter
from controlplane.fly.transport import (
    DEFAULT_TIMEOUT,
    REQUEST_ID_HEADER,
    FlyHTTP,
    RetryPolicy,
    query,
    seg,
)

if TYPE_CHECKING:
    from controlplane.settings import Settings

log = structlog.get_logger(__name__)

#: Longest single ``/wait`` Fly accepts (larger → 400 invalid_argument).
MAX_WAIT_SECONDS = 60
#: Extra read-timeout slack on top of the wait timeout (fly-machines.md §7: wait + 10–30 s).
WAIT_READ_SLACK = 15.0


M = TypeVar("M", bound=BaseModel)
_UNSET: Any = object()


def _json(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        return None


def _parse(model: type[M], response: httpx.Response, data: Any = _UNSET) -> M:
    """Validate an answer; a shape we cannot read becomes :class:`FlyUnexpectedResponse` (short,
    without the offending values) instead of a pydantic error."""
    body = _json(response) if data is _UNSET else data
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise _unexpected(model, response, exc) from None


def _parse_list(model: type[M], response: httpx.Response, data: Any = _UNSET) -> list[M]:
    body = _json(response) if data is _UNSET else data
    if body is None:
        return []
    if not isinstance(body, list):
        raise FlyUnexpectedResponse(
            f"expected a list of {model.__name__} from Fly",
            status_code=response.status_code,
            request_id=response.headers.get(REQUEST_ID_HEADER),
            method=response.request.method,
            path=response.request.url.path,
        )
    try:
        return [model.model_validate(item) for item in body]
    except ValidationError as exc:
        raise _unexpected(model, response, exc) from None


def _unexpected(
    model: type[BaseModel], response: httpx.Response, exc: ValidationError
) -> FlyUnexpectedResponse:
    where = sorted({".".join(str(p) for p in e["loc"]) or "<root>" for e in exc.errors(include_input=False)})
    return FlyUnexpectedResponse(
        f"unexpected {model.__name__} from Fly ({exc.error_count()} problem(s) at {', '.join(where[:5])})",
        status_code=response.status_code,
        request_id=response.headers.get(REQUEST_ID_HEADER),
        method=response.request.method,
        path=response.request.url.path,
    )


def _comma_list(values: str | Sequence[str] | None) -> str | None:
    """One query value for a filter taking several (``state=started,stopped``)."""
    if not values:
        return None
    return values if isinstance(values, str) else ",".join(values)


def _lease_from(response: httpx.Response) -> Lease:
    # Fly answers {"status":"success","data":{...}}; the spec models the lease flat (fly-machines.md §8, §16).
    body = _json(response)
    if isinstance(body, dict) and isinstance(body.get("data"), dict):
        body = body["data"]
    return _parse(Lease, response, body)


class FlyClient:
    """Async Fly Machines API client. Use as ``async with FlyClient.from_settings(s) as fly:``."""

    def __init__(
        self,
        *,
        token: str | SecretStr,
        base_url: str = "https://api.machines.dev",
        org: str = "personal",
        transport: httpx.AsyncBaseTransport | None = None,
        max_concurrency: int = 32,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        clock: Clock | None = None,
        rate_limits: Mapping[str, Limit] | None = None,
        rate_limiting: bool = True,
        rate_limit_scale: float = 1.0,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
    ) -> None:
        try:
            auth = FlyAuth(token)
        except ValueError as exc:
            raise FlyConfigError(str(exc)) from None
        api = base_url.rstrip("/")
        if not api.endswith("/v1"):
            api += "/v1"
        self.org = org
        #: Jitter source of every retry made with this client (seed it for reproducible runs).
        self.rng = rng or random.Random()
        limiter = None
        if clock is not None or rate_limits is not None or not rate_limiting or rate_limit_scale != 1.0:
            limiter = RateLimiter(
                clock=clock, limits=dict(rate_limits or {}), enabled=rate_limiting, scale=rate_limit_scale
            )
        self.http = FlyHTTP(
            api,
            auth,
            transport=transport,
            timeout=timeout,
            max_concurrency=max_concurrency,
            clock=clock,
            limiter=limiter,
            retry=retry,
            rng=self.rng,
        )
        self.clock = self.http.clock

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Clock | None = None,
    ) -> FlyClient:
        """Build from :class:`controlplane.settings.Settings` (``CP_FLY_*``); the transport and the
        clock are not settings (tests and the emulator pass their own)."""
        if settings.fly_api_token is None:
            raise FlyConfigError("CP_FLY_API_TOKEN is not set: the Fly client needs an org token")
        return cls(
            token=settings.fly_api_token,
            base_url=str(settings.fly_api_url),
            org=settings.fly_org,
            transport=transport,
            max_concurrency=settings.fly_max_concurrency,
            clock=clock,
        )

    def __repr__(self) -> str:
        from controlplane.url_redaction import redact_url

        return f"FlyClient(base_url={redact_url(self.http.base_url)!r}, org={self.org!r}, auth={self.http.auth!r})"

    async def __aenter__(self) -> FlyClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---------------------------------------------------------------------------- apps
    async def create_app(
        self,
        name: str,
        *,
        org: str | None = None,
        network: str | None = None,
        enable_subdomains: bool | None = None,
    ) -> App:
        """``POST /apps`` (not idempotent: see :func:`~controlplane.fly.idempotency.create_app_idempotent`).
        422 → FlyNameTaken."""
        body = CreateAppRequest(
            name=name, org_slug=org or self.org, network=network, enable_subdomains=enable_subdomains
        )
        response = await self.http.request(
            "POST", "/apps", action="create_app", scope="*", idempotent=False, json=to_body(body)
        )
        data = _json(response)
        if isinstance(data, dict) and data.get("name"):
            return _parse(App, response, data)
        return App.model_validate(
            {"name": name, "network": network, "organization": {"slug": org or self.org}}
        )

    async def get_app(self, name: str) -> App:
        response = await self.http.request(
            "GET", f"/apps/{seg(name)}", action="get_app", scope=name, idempotent=True
        )
        return _parse(App, response)

    async def list_apps(self, *, org: str | None = None) -> list[App]:
        response = await self.http.request(
            "GET",
            "/apps",
            action="list_apps",
            scope=org or self.org,
            idempotent=True,
            params=query(org_slug=org or self.org),
        )
        data = _json(response) or {}
        return _parse_list(App, response, data.get("apps") or [])

    async def delete_app(self, name: str, *, force: bool = False, missing_ok: bool = False) -> bool:
        """``DELETE /apps/{app}`` (202, asynchronous; cascades to machines, volumes, secrets).
        ``force=True`` sends ``?force=true`` (documented by Fly, not in the spec: stops running
        machines instead of refusing). Returns False if already gone and ``missing_ok``. Poll
        :meth:`get_app` until FlyNotFound to confirm (invariant 3)."""
        try:
            await self.http.request(
                "DELETE",
                f"/apps/{seg(name)}",
                action="delete_app",
                scope="*",
                idempotent=True,
                params=query(force=True if force else None),
            )
        except FlyNotFound:
            if missing_ok:
                return False
            raise
        return True

    # ---------------------------------------------------------------------------- secrets
    async def list_secrets(self, app: str, *, min_version: int | None = None) -> list[AppSecret]:
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/secrets",
            action="list_secrets",
            scope=app,
            idempotent=True,
            params=query(min_version=min_version),
        )
        data = _json(response) or {}
        return _parse_list(AppSecret, response, data.get("secrets") or [])

    async def set_secrets(self, app: str, values: Mapping[str, str | SecretStr]) -> SecretsUpdate:
        """Set app secrets in one write; returns the new secrets ``version`` (use it as
        ``min_secrets_version``). Values are never logged; repeating the same write is harmless,
        so transient failures are retried."""
        if not values:
            raise ValueError("set_secrets needs at least one value")
        plain = {name: v.get_secret_value() if isinstance(v, SecretStr) else v for name, v in values.items()}
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/secrets",
            action="update_secrets",
            scope=app,
            idempotent=True,
            json={"values": plain},
        )
        del plain
        return _parse(SecretsUpdate, response, _json(response) or {})

    async def unset_secrets(self, app: str, names: Iterable[str]) -> int | None:
        """Remove secrets (``DELETE /apps/{app}/secrets/{name}`` each; already absent is fine).
        Returns the last secrets version Fly reported, if any."""
        version: int | None = None
        for name in names:
            try:
                response = await self.http.request(
                    "DELETE",
                    f"/apps/{seg(app)}/secrets/{seg(name)}",
                    action="delete_secret",
                    scope=app,
                    idempotent=True,
                )
            except FlyNotFound:
                continue
            data = _json(response) or {}
            got = data.get("version", data.get("Version"))
            if isinstance(got, int):
                version = got
        return version

    # ---------------------------------------------------------------------------- volumes
    async def create_volume(self, app: str, request: CreateVolumeRequest) -> Volume:
        """Not idempotent: callers look volumes up by name (:meth:`list_volumes`) before retrying."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/volumes",
            action="create_volume",
            scope=app,
            idempotent=False,
            json=to_body(request),
        )
        return _parse(Volume, response)

    async def get_volume(self, app: str, volume_id: str) -> Volume:
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/volumes/{seg(volume_id)}",
            action="get_volume",
            scope=volume_id,
            idempotent=True,
        )
        return _parse(Volume, response)

    async def list_volumes(self, app: str) -> list[Volume]:
        response = await self.http.request(
            "GET", f"/apps/{seg(app)}/volumes", action="list_volumes", scope=app, idempotent=True
        )
        return _parse_list(Volume, response)

    async def extend_volume(self, app: str, volume_id: str, size_gb: int) -> Volume:
        """``PUT .../volumes/{id}/extend``: grow (never shrink) a volume; repeating it is harmless."""
        response = await self.http.request(
            "PUT",
            f"/apps/{seg(app)}/volumes/{seg(volume_id)}/extend",
            action="extend_volume",
            scope=volume_id,
            idempotent=True,
            json={"size_gb": size_gb},
        )
        body = _json(response) or {}
        return _parse(Volume, response, body.get("volume", body) if isinstance(body, dict) else body)

    async def delete_volume(self, app: str, volume_id: str, *, missing_ok: bool = False) -> bool:
        try:
            await self.http.request(
                "DELETE",
                f"/apps/{seg(app)}/volumes/{seg(volume_id)}",
                action="delete_volume",
                scope=volume_id,
                idempotent=True,
            )
        except FlyNotFound:
            if missing_ok:
                return False
            raise
        return True

    # ---------------------------------------------------------------------------- machines
    async def create_machine(self, app: str, request: CreateMachineRequest) -> Machine:
        """``POST /apps/{app}/machines``. NOT idempotent and never retried after an ambiguous
        answer; use :func:`~controlplane.fly.idempotency.create_machine_idempotent` from the reconciler."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines",
            action="create_machine",
            scope=app,
            idempotent=False,
            json=to_body(request),
        )
        return _parse(Machine, response)

    async def get_machine(self, app: str, machine_id: str, *, include_leases: bool = False) -> Machine:
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}",
            action="get_machine",
            scope=machine_id,
            idempotent=True,
            params=query(include_leases=include_leases or None),
        )
        return _parse(Machine, response)

    async def list_machines(
        self,
        app: str,
        *,
        metadata: Mapping[str, str] | None = None,
        state: str | Sequence[str] | None = None,
        region: str | None = None,
        include_deleted: bool | None = None,
        summary: bool | None = None,
    ) -> list[Machine]:
        """``GET /apps/{app}/machines``. ``metadata`` filters with ``metadata.<key>=<value>``
        (documented by Fly, not in the OpenAPI spec); ``state`` in created/started/stopped/suspended.
        The list is eventually consistent."""
        states = _comma_list(state)
        params = query(include_deleted=include_deleted, region=region, state=states, summary=summary)
        for key, value in (metadata or {}).items():
            params.append((f"metadata.{key}", value))
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/machines",
            action="list_machines",
            scope=app,
            idempotent=True,
            params=params,
        )
        return _parse_list(Machine, response)

    async def update_machine(
        self, app: str, machine_id: str, request: UpdateMachineRequest, *, nonce: str | None = None
    ) -> Machine:
        """Replace the WHOLE config (read → change → write, under a lease; invariant 5). Pass
        ``current_version``/``min_secrets_version``/``skip_launch`` on ``request``. Not retried."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}",
            action="update_machine",
            scope=machine_id,
            idempotent=False,
            json=to_body(request),
            nonce=nonce,
        )
        return _parse(Machine, response)

    async def start_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> StartResult:
        """412 (FlyWrongState) while the machine is still ``replacing``: wait, then retry.

        ``result.migrated``: Fly moved the machine to ``new_host`` and it has a NEW version — re-GET
        (or wait without a pinned version) before waiting; a wait on the old version answers
        ``migrated``, which :func:`~controlplane.fly.waits.wait_for` follows like ``replaced``."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/start",
            action="start_machine",
            scope=machine_id,
            idempotent=False,
            nonce=nonce,
        )
        result = _parse(StartResult, response, _json(response) or {})
        if result.migrated:
            log.info("fly.machine_migrated", app=app, machine_id=machine_id, new_host=result.new_host)
        return result

    async def stop_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        nonce: str | None = None,
    ) -> None:
        """Stop (idempotent, retried). Always sends a JSON object body."""
        await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/stop",
            action="stop_machine",
            scope=machine_id,
            idempotent=True,
            nonce=nonce,
            json=to_body(StopRequest(signal=signal, timeout=timeout)),
        )

    async def restart_machine(
        self,
        app: str,
        machine_id: str,
        *,
        signal: str | None = None,
        timeout: str | None = None,
        nonce: str | None = None,
    ) -> None:
        """Reboot the current version; applies no config or secrets change."""
        await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/restart",
            action="restart_machine",
            scope=machine_id,
            idempotent=False,
            nonce=nonce,
            params=query(signal=signal, timeout=timeout),
        )

    async def suspend_machine(self, app: str, machine_id: str, *, nonce: str | None = None) -> None:
        await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/suspend",
            action="suspend_machine",
            scope=machine_id,
            idempotent=False,
            nonce=nonce,
        )

    async def destroy_machine(
        self,
        app: str,
        machine_id: str,
        *,
        force: bool = False,
        nonce: str | None = None,
        missing_ok: bool = False,
    ) -> bool:
        """``DELETE`` (retried; 404 → False when ``missing_ok``). Confirm with
        ``wait_for(..., ["destroyed"])`` which treats 404 as destroyed."""
        try:
            await self.http.request(
                "DELETE",
                f"/apps/{seg(app)}/machines/{seg(machine_id)}",
                action="destroy_machine",
                scope=machine_id,
                idempotent=True,
                nonce=nonce,
                params=query(force=True if force else None),
            )
        except FlyNotFound:
            if missing_ok:
                return False
            raise
        return True

    async def wait_machine(
        self,
        app: str,
        machine_id: str,
        states: WaitState | Sequence[WaitState],
        *,
        version: str | None = None,
        timeout: int = MAX_WAIT_SECONDS,
        from_event_id: str | None = None,
    ) -> WaitResult:
        """ONE ``GET .../wait`` long poll (≤ 60 s). Raises FlyTimeout (408) when the state is not
        reached in time; use :func:`~controlplane.fly.waits.wait_for` to loop to your own deadline."""
        timeout = max(1, min(int(timeout), MAX_WAIT_SECONDS))
        state_list = [states] if isinstance(states, str) else list(states)
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/wait",
            action="wait_machine",
            scope=machine_id,
            idempotent=True,
            long_poll=True,
            params=query(state=state_list, version=version, timeout=timeout, from_event_id=from_event_id),
            timeout=httpx.Timeout(timeout + WAIT_READ_SLACK, connect=10.0),
            no_retry=(FlyTimeout,),
        )
        return _parse(WaitResult, response, _json(response) or {})

    async def list_events(self, app: str, machine_id: str, *, limit: int = 20) -> list[MachineEvent]:
        """Newest first; ``limit`` ≤ 50."""
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/events",
            action="list_events",
            scope=machine_id,
            idempotent=True,
            params=query(limit=max(1, min(limit, 50))),
        )
        return _parse_list(MachineEvent, response)

    async def exec_machine(
        self,
        app: str,
        machine_id: str,
        command: Sequence[str],
        *,
        timeout: int = 30,
        nonce: str | None = None,
    ) -> ExecResult:
        """Run ``command`` (argv, no shell) inside a started machine: ``POST .../exec``.

        Fly answers 200 even when the command failed: check ``result.exit_code``. Refusals raise:
        :class:`FlyWrongState` (412) when the machine is not started — exec never wakes a machine —
        and :class:`FlyLeaseHeld` (409) while another client holds its lease (pass ``nonce`` when
        the lease is ours). A machine action: paced at Fly's 1 req/s, burst 3 per machine; not
        retried after it may have run (a command need not be idempotent)."""
        if not command:
            raise ValueError("exec needs a command (argv list)")
        seconds = max(1, int(timeout))
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/exec",
            action="exec_machine",
            scope=machine_id,
            idempotent=False,
            nonce=nonce,
            json={"command": list(command), "timeout": seconds},
            timeout=httpx.Timeout(seconds + 15.0, connect=10.0),  # the command's time plus a round trip
        )
        return _parse(ExecResult, response, _json(response) or {})

    # ---------------------------------------------------------------------------- metadata
    async def get_metadata(self, app: str, machine_id: str) -> dict[str, str]:
        response = await self.http.request(
            "GET",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/metadata",
            action="get_metadata",
            scope=machine_id,
            idempotent=True,
        )
        data = _json(response) or {}
        return {str(k): str(v) for k, v in data.items()}

    async def set_metadata(self, app: str, machine_id: str, key: str, value: str) -> None:
        """Upsert one key (idempotent, retried). Whether this bumps the version is unverified."""
        await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/metadata/{seg(key)}",
            action="set_metadata",
            scope=machine_id,
            idempotent=True,
            json={"value": value},
        )

    async def delete_metadata(self, app: str, machine_id: str, key: str) -> None:
        try:
            await self.http.request(
                "DELETE",
                f"/apps/{seg(app)}/machines/{seg(machine_id)}/metadata/{seg(key)}",
                action="set_metadata",
                scope=machine_id,
                idempotent=True,
            )
        except FlyNotFound:
            return

    # ---------------------------------------------------------------------------- leases
    async def acquire_lease(
        self, app: str, machine_id: str, *, ttl: int = 13, description: str | None = None
    ) -> Lease:
        """Take the machine lease. 409 → FlyLeaseHeld. Not retried on ambiguous answers (a lease
        we do not know the nonce of simply expires after ``ttl``)."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/lease",
            action="acquire_lease",
            scope=machine_id,
            idempotent=False,
            json={k: v for k, v in {"ttl": ttl, "description": description}.items() if v is not None},
        )
        return _lease_from(response)

    async def refresh_lease(self, app: str, machine_id: str, nonce: str, *, ttl: int = 13) -> Lease:
        """Extend our lease (same nonce). Idempotent, retried."""
        response = await self.http.request(
            "POST",
            f"/apps/{seg(app)}/machines/{seg(machine_id)}/lease",
            action="refresh_lease",
            scope=machine_id,
            idempotent=True,
            nonce=nonce,
            json={"ttl": ttl},
        )
        return _lease_from(response)

    async def release_lease(self, app: str, machine_id: str, nonce: str) -> None:
        """Release our lease; an already expired/absent lease (404) is fine."""
        try:
            await self.http.request(
                "DELETE",
                f"/apps/{seg(app)}/machines/{seg(machine_id)}/lease",
                action="release_lease",
                scope=machine_id,
                idempotent=True,
                nonce=nonce,
            )
        except FlyNotFound:
            return

    async def get_lease(self, app: str, machine_id: str) -> Lease | None:
        """The current lease (incl. nonce) or None. For stale-lease recovery: get → release."""
        try:
            response = await self.http.request(
                "GET",
                f"/apps/{seg(app)}/machines/{seg(machine_id)}/lease",
                action="get_lease",
                scope=machine_id,
                idempotent=True,
            )
        except FlyNotFound:
            return None
        data = _json(response)
        return _lease_from(response) if data else None

    # ---------------------------------------------------------------------------- org listing
    async def list_org_machines_page(
        self, filters: OrgMachineQuery | None = None, *, cursor: str | None = None
    ) -> OrgMachinesPage:
        """One page of ``GET /orgs/{org}/machines``; :class:`~controlplane.fly.paging.OrgMachineScan`
        follows the cursor across pages."""
        filters = filters or OrgMachineQuery()
        org = filters.org or self.org
        states = _comma_list(filters.state)
        updated_after = rfc3339(filters.updated_after) if filters.updated_after is not None else None
        response = await self.http.request(
            "GET",
            f"/orgs/{seg(org)}/machines",
            action="list_org_machines",
            scope=org,
            idempotent=True,
            params=query(
                include_deleted=filters.include_deleted,
                region=filters.region,
                state=states,
                summary=filters.summary,
                updated_after=updated_after,
                cursor=cursor,
                limit=filters.limit,
            ),
        )
        return _parse(OrgMachinesPage, response, _json(response) or {})


__all__ = ["FlyClient", "FlyError", "MAX_WAIT_SECONDS", "WAIT_READ_SLACK"]
