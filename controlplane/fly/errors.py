"""One exception hierarchy for everything the Fly Machines API can answer, and :func:`classify`.

Fly's status codes are overloaded (capacity is 400, 403, 409 or 412 depending on the call; 409 is both
"lease held" and "name exists"), so :func:`classify` looks at the body ``status`` field and the body
text first and the HTTP code second (fly-machines.md, "Error body" and "Error codes and what to do").

Every class says, at class level, what a handler may assume about its instances:

* ``ambiguous``: the call may or may not have taken effect (look before repeating a create);
* ``transient``: repeating the same request later can succeed (retry with backoff);
* ``terminal``: no repeat succeeds without a human or a different request (park the tenant with the
  message; for FlyRegionCapacity and FlyQuotaExceeded try the next region first).

``True`` and ``False`` are promises every subclass keeps (``except FlyPrecondition:`` may retry, so
no 412 that can never succeed lives under it); ``None`` means "depends": on the subclass, or on the
call (a 404 right after a create is read-after-write lag; later it means gone). Columns below:
ambiguous, transient, terminal (Y = True, n = False, . = None)::

    FlyError                            . . .  base; never raised itself
     ├── FlyConfigError                 n n Y  the client is misconfigured; nothing was sent
     ├── FlyUnexpectedResponse          n . .  a 2xx answer we cannot read
     ├── FlyUnauthorized                n n Y  401: token missing, invalid or expired
     ├── FlyForbidden                   n n Y  403: e.g. an app of another organisation
     │    └── FlyQuotaExceeded          n n Y  403: the org's regional memory quota
     ├── FlyNotFound                    n . n  404: gone (a delete is done)
     ├── FlyBadRequest                  n n Y  400/422: the request itself is wrong
     │    └── FlyVolumeNotFound         n n Y  400: a stale volume id
     ├── FlyConflict                    n . .  409 of no known kind
     │    ├── FlyAlreadyExists          n . .  409: a machine of that name exists in the app
     │    └── FlyNameTaken              n . .  422: the app name is taken (by us, or not)
     │         └── FlyAppOwnedElsewhere n n Y  ... by another organisation
     ├── FlyLeaseHeld                   n Y n  409: another holder has the machine lease
     │    └── LeaseLost                 n Y n  our lease could not be refreshed
     ├── FlyPrecondition                n Y n  412: valid, but not now
     │    ├── FlyWrongState             n Y n  e.g. start while still replacing
     │    ├── FlyStaleVersion           n Y n  current_version is stale: re-GET, redo
     │    └── FlySecretsNotVisible      n Y n  min_secrets_version not visible yet
     ├── FlyCapacityError               n . .  Fly has no room for the request
     │    ├── FlyRegionCapacity         n n Y  the region is full: another region
     │    ├── FlyHostCapacity           n Y n  the machine's host is full for now
     │    └── FlyVolumeHostFull         n n Y  the volume's host is full: fork the volume
     ├── FlyHostDisabled                n Y n  deploys to the host are disabled for now
     ├── FlyIncompleteConfig            n Y n  host_status is not ok: config unknown
     ├── FlyRateLimited                 n Y n  429: nothing happened; Retry-After
     ├── FlyAmbiguous                   Y Y n  no answer we can trust
     │    ├── FlyTimeout                Y Y n  408 (also the normal end of one /wait)
     │    ├── FlyServerError            Y Y n  5xx
     │    └── FlyConnectionError        Y Y n  transport error after sending
     └── FlyWaitError                   n . .  wait_for ended without the wanted state
          ├── FlyWaitTimeout            n Y n  the caller's deadline passed
          └── FlyMachineUnusable        n n Y  the state cannot come without a new request
               ├── FlyMachineFailed     n n Y  failed / launch_failed: update or recreate
               └── FlyMachineDestroyed  n n Y  destroyed while waiting

Every error carries the ``fly-request-id`` (quote it to Fly support), the HTTP status code, Fly's
``status`` field and a short *safe* message: at most :data:`MAX_MESSAGE_CHARS` characters of Fly's own
message, never the request body (which may hold secret values) and never the API token.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar, TypedDict, Unpack

MAX_MESSAGE_CHARS = 300


class FlyErrorContext(TypedDict, total=False):
    """Where an error came from: what every :class:`FlyError` accepts besides its message."""

    status_code: int | None
    request_id: str | None
    fly_status: str | None
    method: str | None
    path: str | None


class FlyError(Exception):
    """Base class. The three flags are explained in the module docstring."""

    ambiguous: ClassVar[bool | None] = None
    transient: ClassVar[bool | None] = None
    terminal: ClassVar[bool | None] = None

    def __init__(self, message: str, **context: Unpack[FlyErrorContext]) -> None:
        self.message = _truncate(message)
        self.status_code = context.get("status_code")
        self.request_id = context.get("request_id")
        self.fly_status = context.get("fly_status")
        self.method = context.get("method")
        self.path = context.get("path")
        super().__init__(self.message)

    def __str__(self) -> str:
        parts = [self.message]
        where = " ".join(p for p in (self.method, self.path) if p)
        if self.status_code is not None:
            parts.append(f"(HTTP {self.status_code}{' ' + where if where else ''})")
        elif where:
            parts.append(f"({where})")
        if self.request_id:
            parts.append(f"[fly-request-id {self.request_id}]")
        return " ".join(parts)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(message={self.message!r}, status_code={self.status_code!r}, "
            f"fly_status={self.fly_status!r}, request_id={self.request_id!r})"
        )

    def log_fields(self) -> dict[str, Any]:
        """Safe structured fields for structlog."""
        return {
            "error_class": type(self).__name__,
            "status_code": self.status_code,
            "fly_status": self.fly_status,
            "fly_request_id": self.request_id,
            "method": self.method,
            "path": self.path,
            "error_message": self.message,
        }


# --- client side ------------------------------------------------------------------------------
class FlyConfigError(FlyError):
    """The client is misconfigured (e.g. no token). Never sent to Fly."""

    ambiguous = False
    transient = False
    terminal = True


class FlyUnexpectedResponse(FlyError):
    """A 2xx answer whose body we cannot read as the documented shape. The call took effect; a
    glitch passes, a changed API needs a human: which one, a repeat shows."""

    ambiguous = False


# --- definite refusals that need a human or a different request ------------------------------
class FlyUnauthorized(FlyError):
    """401: token missing, invalid or expired. Alert; do not retry."""

    ambiguous = False
    transient = False
    terminal = True


class FlyForbidden(FlyError):
    """403 other than quota: e.g. the app exists in an organisation this token cannot see."""

    ambiguous = False
    transient = False
    terminal = True


class FlyQuotaExceeded(FlyForbidden):
    """403 "organization X is using N MB of memory in <region> which is over the allowed quota":
    another region, or ask Fly to raise it."""


class FlyBadRequest(FlyError):
    """400/422 and anything else the request itself got wrong (validation, bad arguments)."""

    ambiguous = False
    transient = False
    terminal = True


FlyValidationError = FlyBadRequest


class FlyVolumeNotFound(FlyBadRequest):
    """400 "volume not found" when creating a machine with a stale volume id: clear it, recreate the
    volume, then create again (a different request)."""


# --- definite answers whose meaning depends on the call ----------------------------------------
class FlyNotFound(FlyError):
    """404: app, machine, volume, lease or secret not found. For deletes this means done. Right after
    a create it may be read-after-write lag; otherwise never recreate on anything but this."""

    ambiguous = False
    terminal = False


class FlyConflict(FlyError):
    """409 that is neither a lease conflict nor capacity."""

    ambiguous = False


class FlyAlreadyExists(FlyConflict):
    """409 ``already_exists``: a machine with that name exists in the app (our own earlier attempt,
    which the eventually consistent list may not show yet, or a stranger)."""


class FlyNameTaken(FlyConflict):
    """422 ``name_taken``: the (global) app name is taken, by us (adopt) or by someone else."""


class FlyAppOwnedElsewhere(FlyNameTaken):
    """App create: the name is taken by an app outside our organisation. Pick a new name."""

    transient = False
    terminal = True


# --- not now: the same request can succeed later -----------------------------------------------
class FlyLeaseHeld(FlyError):
    """409 "lease currently held by ...": another holder has the machine lease (or our nonce is
    missing/stale). Back off until it expires, or abort."""

    ambiguous = False
    transient = True
    terminal = False


class LeaseLost(FlyLeaseHeld):
    """Our lease could not be refreshed (expired, or taken over). Mutations will get 409."""


class FlyPrecondition(FlyError):
    """412: the request was valid but the machine/app is not in a state to accept it yet."""

    ambiguous = False
    transient = True
    terminal = False


class FlyWrongState(FlyPrecondition):
    """412 "unable to start machine from current state" (e.g. still ``replacing``). Re-GET, retry."""


class FlyStaleVersion(FlyPrecondition):
    """412: ``current_version``/``machine_version`` is stale. Re-GET and redo the change."""


class FlySecretsNotVisible(FlyPrecondition):
    """412: ``min_secrets_version`` is not yet visible in the secret store. Retry shortly."""


class FlyCapacityError(FlyError):
    """Fly has no room for the request (codes vary: 400, 409, 412, 5xx). Whether waiting helps
    depends on where the room is missing: see the subclasses."""

    ambiguous = False


class FlyRegionCapacity(FlyCapacityError):
    """``insufficient_capacity`` / "no capacity" in the region: try another region."""

    transient = False
    terminal = True


class FlyHostCapacity(FlyCapacityError):
    """409 "insufficient memory available ..." on start/update: the machine's host is full for now.
    Retry later, or recreate the machine on another host."""

    transient = True
    terminal = False


class FlyVolumeHostFull(FlyCapacityError):
    """412 ``volume_placement_capacity`` / "insufficient resources to create new machine with
    existing volume": the volume pins the machine to a full host. Fork the volume elsewhere or use
    another region; repeating the same create does not help."""

    transient = False
    terminal = True


class FlyHostDisabled(FlyError):
    """5xx "deploys to this host are temporarily disabled": a definite refusal (nothing changed), so
    not ambiguous and never repeated by the transport. It passes, but Fly's advice is to replace the
    machine (create a new one, destroy the old) instead of waiting to update it in place."""

    ambiguous = False
    transient = True
    terminal = False


class FlyIncompleteConfig(FlyError):
    """The machine's ``config`` is missing (``host_status != ok``: Fly shows ``incomplete_config``).
    Never build an update from it — a whole-config update would drop everything that is not there.
    The host usually comes back: read the machine again later."""

    ambiguous = False
    transient = True
    terminal = False


class FlyRateLimited(FlyError):
    """429: refused, nothing happened. ``retry_after`` holds the server's Retry-After in seconds
    when it sent one."""

    ambiguous = False
    transient = True
    terminal = False

    def __init__(
        self, message: str, *, retry_after: float | None = None, **context: Unpack[FlyErrorContext]
    ) -> None:
        super().__init__(message, **context)
        self.retry_after = retry_after


# --- ambiguous outcomes ---------------------------------------------------------------------
class FlyAmbiguous(FlyError):
    """The call may or may not have taken effect (408, 5xx, or a transport error after sending)."""

    ambiguous = True
    transient = True
    terminal = False


class FlyTimeout(FlyAmbiguous):
    """408: Fly timed out waiting on the host agent (the normal end of one ``/wait`` long poll)."""


class FlyServerError(FlyAmbiguous):
    """5xx from Fly."""


class FlyConnectionError(FlyAmbiguous):
    """Transport error (connection reset/refused, protocol error, read timeout, DNS)."""


# --- outcomes of wait_for (controlplane.fly.waits) --------------------------------------------
class FlyWaitError(FlyError):
    """:func:`~controlplane.fly.waits.wait_for` ended without the wanted state. A wait changes
    nothing, so never ambiguous. ``last_state`` is the machine state last seen, if any."""

    ambiguous = False

    def __init__(
        self, message: str, *, last_state: str | None = None, **context: Unpack[FlyErrorContext]
    ) -> None:
        super().__init__(message, **context)
        self.last_state = last_state


class FlyWaitTimeout(FlyWaitError):
    """The caller's deadline passed before the machine got there (still on its way, or stuck):
    waiting longer can succeed."""

    transient = True
    terminal = False


class FlyMachineUnusable(FlyWaitError):
    """The machine reached a state from which the wanted one cannot come without a new request
    (start, update, recreate); raised at once instead of waiting to the deadline."""

    transient = False
    terminal = True


class FlyMachineFailed(FlyMachineUnusable):
    """``failed`` (could not start: recover by start, update or recreate) or ``launch_failed`` (the
    launch failed; the machine ends ``destroyed``: recreate it)."""


class FlyMachineDestroyed(FlyMachineUnusable):
    """The machine was destroyed while waiting for another state."""


# --- classification ---------------------------------------------------------------------------
_LEASE_HELD = re.compile(
    r"lease (currently )?held|leased by|lease .*expires at|invalid lease|"
    r"lease nonce|requires a lease",
    re.I,
)
_NAME_TAKEN = re.compile(r"name_taken|already (been )?taken|name .*taken", re.I)
_ALREADY_EXISTS = re.compile(r"already_exists|already exists", re.I)
_HOST_CAPACITY = re.compile(r"insufficient (memory|cpu|resources)", re.I)
_VOLUME_HOST = re.compile(
    r"insufficient resources to create new machine with existing volume|"
    r"volume_placement_capacity",
    re.I,
)
_REGION_CAPACITY = re.compile(
    r"insufficient_capacity|no capacity|insufficient capacity|"
    r"capacity (is )?(not )?available",
    re.I,
)
_QUOTA = re.compile(r"quota", re.I)
_SECRETS = re.compile(r"secret", re.I)
_VERSION = re.compile(r"version|stale", re.I)
_STATE = re.compile(r"state", re.I)
_HOST_DISABLED = re.compile(r"temporarily disabled", re.I)
_VOLUME_NOT_FOUND = re.compile(r"volume .*not found|volume not found", re.I)


def _truncate(text: str) -> str:
    text = " ".join(str(text).split())
    if len(text) > MAX_MESSAGE_CHARS:
        return text[: MAX_MESSAGE_CHARS - 1] + "…"
    return text


def parse_error_body(body: bytes | str) -> tuple[str, str | None]:
    """Return ``(message, status_field)`` from a Fly error body.

    ``{"error": ..., "status": ...}`` (machines), ``{"status":"error","message":...,"code":...}``
    (leases), or plain text. Message preference: ``message``, then ``error``, then the raw body.
    """
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    try:
        data = json.loads(text) if text.strip() else None
    except ValueError:
        data = None
    if isinstance(data, dict):
        message = data.get("message") or data.get("error") or ""
        status = data.get("status")
        if status == "error":  # lease envelope: the interesting bit is "code"
            status = data.get("code") if isinstance(data.get("code"), str) else None
        if not isinstance(message, str):
            message = json.dumps(message)
        return (message or text.strip(), status if isinstance(status, str) else None)
    return (text.strip(), None)


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or an HTTP date); None when absent or unparseable."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now or datetime.now(UTC)
    return max(0.0, (when - current).total_seconds())


def classify(
    status_code: int,
    body: bytes | str,
    *,
    request_id: str | None = None,
    retry_after: str | None = None,
    method: str | None = None,
    path: str | None = None,
) -> FlyError:
    """Turn a non-2xx Fly answer into the matching :class:`FlyError` subclass."""
    message, fly_status = parse_error_body(body)
    if not message:
        message = f"Fly API answered HTTP {status_code}"
    context: FlyErrorContext = {
        "status_code": status_code,
        "request_id": request_id,
        "fly_status": fly_status,
        "method": method,
        "path": path,
    }
    haystack = f"{fly_status or ''} {message}"

    if status_code == 401:
        return FlyUnauthorized(message, **context)
    if status_code == 429:
        return FlyRateLimited(message, retry_after=parse_retry_after(retry_after), **context)
    # A 409 "insufficient memory" is the machine's HOST being full (start/update), whatever the
    # status field says: checked before the region-capacity status.
    if status_code == 409 and _HOST_CAPACITY.search(message) and not _VOLUME_HOST.search(message):
        return FlyHostCapacity(message, **context)
    # Body status field first: these mean the same thing whatever the code.
    if fly_status == "volume_placement_capacity" or _VOLUME_HOST.search(message):
        return FlyVolumeHostFull(message, **context)
    if fly_status == "insufficient_capacity":
        return FlyRegionCapacity(message, **context)
    if fly_status == "name_taken":
        return FlyNameTaken(message, **context)
    if status_code == 404:
        return FlyNotFound(message, **context)
    if status_code == 403:
        if _QUOTA.search(message):
            return FlyQuotaExceeded(message, **context)
        return FlyForbidden(message, **context)
    if status_code == 408:
        return FlyTimeout(message, **context)
    if status_code in (409, 412) and _LEASE_HELD.search(message):
        return FlyLeaseHeld(message, **context)
    if status_code == 409:
        if _HOST_CAPACITY.search(message):
            return FlyHostCapacity(message, **context)
        if _ALREADY_EXISTS.search(haystack):
            return FlyAlreadyExists(message, **context)
        return FlyConflict(message, **context)
    if status_code == 412:
        if _SECRETS.search(message):
            return FlySecretsNotVisible(message, **context)
        if _HOST_CAPACITY.search(message):
            return FlyHostCapacity(message, **context)
        if _VERSION.search(message):
            return FlyStaleVersion(message, **context)
        if _STATE.search(message):
            return FlyWrongState(message, **context)
        return FlyPrecondition(message, **context)
    if status_code >= 500:
        if _HOST_DISABLED.search(message):
            return FlyHostDisabled(message, **context)
        if _REGION_CAPACITY.search(message):
            return FlyRegionCapacity(message, **context)
        return FlyServerError(message, **context)
    # 400, 422 and other 4xx
    if _REGION_CAPACITY.search(message):
        return FlyRegionCapacity(message, **context)
    if _HOST_CAPACITY.search(message):
        return FlyHostCapacity(message, **context)
    if status_code == 422 and _NAME_TAKEN.search(haystack):
        return FlyNameTaken(message, **context)
    if _VOLUME_NOT_FOUND.search(message):
        return FlyVolumeNotFound(message, **context)
    if _ALREADY_EXISTS.search(haystack):
        return FlyAlreadyExists(message, **context)
    return FlyBadRequest(message, **context)


__all__ = [
    "FlyAlreadyExists",
    "FlyAmbiguous",
    "FlyAppOwnedElsewhere",
    "FlyBadRequest",
    "FlyCapacityError",
    "FlyConfigError",
    "FlyConflict",
    "FlyConnectionError",
    "FlyError",
    "FlyErrorContext",
    "FlyForbidden",
    "FlyHostCapacity",
    "FlyHostDisabled",
    "FlyIncompleteConfig",
    "FlyLeaseHeld",
    "FlyMachineDestroyed",
    "FlyMachineFailed",
    "FlyMachineUnusable",
    "FlyNameTaken",
    "FlyNotFound",
    "FlyPrecondition",
    "FlyQuotaExceeded",
    "FlyRateLimited",
    "FlyRegionCapacity",
    "FlySecretsNotVisible",
    "FlyServerError",
    "FlyStaleVersion",
    "FlyTimeout",
    "FlyUnauthorized",
    "FlyUnexpectedResponse",
    "FlyValidationError",
    "FlyVolumeHostFull",
    "FlyVolumeNotFound",
    "FlyWaitError",
    "FlyWaitTimeout",
    "FlyWrongState",
    "LeaseLost",
    "MAX_MESSAGE_CHARS",
    "classify",
    "parse_error_body",
    "parse_retry_after",
]
