"""One exception hierarchy for everything the Fly Machines API can answer.

Fly's status codes are overloaded (capacity is 400, 403, 409 or 412 depending on the call; 409 is both
"lease held" and "name exists"), so :func:`classify` looks at the body ``status`` field and the body
text first and the HTTP code second (reference §4.4, §9).

Every error carries the ``fly-request-id`` (quote it to Fly support), the HTTP status code, Fly's
``status`` field and a short *safe* message: at most :data:`MAX_MESSAGE_CHARS` characters of Fly's own
message, never the request body (which may hold secret values) and never the API token.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

MAX_MESSAGE_CHARS = 300


class FlyError(Exception):
    """Base class. ``ambiguous`` is True when the request may or may not have taken effect."""

    ambiguous: bool = False
    #: Whether repeating the same (idempotent) request later can reasonably succeed.
    transient: bool = False

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        fly_status: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = _truncate(message)
        self.status_code = status_code
        self.request_id = request_id
        self.fly_status = fly_status
        self.method = method
        self.path = path
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


# --- client side / configuration -----------------------------------------------------------
class FlyConfigError(FlyError):
    """The client is misconfigured (e.g. no token). Never sent to Fly."""


class FlyUnexpectedResponse(FlyError):
    """A 2xx answer whose body we cannot read as the documented shape."""


# --- 4xx ------------------------------------------------------------------------------------
class FlyUnauthorized(FlyError):
    """401: token missing, invalid or expired. Alert; do not retry."""


class FlyForbidden(FlyError):
    """403 other than quota: e.g. the app exists in an organisation this token cannot see."""


class FlyQuotaExceeded(FlyForbidden):
    """403 "organization X is using N MB of memory in <region> which is over the allowed quota"."""


class FlyNotFound(FlyError):
    """404: app, machine, volume, lease or secret not found. For deletes this means done."""


class FlyBadRequest(FlyError):
    """400/422 and anything else the request itself got wrong (validation, bad arguments)."""


FlyValidationError = FlyBadRequest


class FlyVolumeNotFound(FlyBadRequest):
    """400 "volume not found" when creating a machine with a stale volume id."""


class FlyConflict(FlyError):
    """409 that is neither a lease conflict nor capacity."""


class FlyAlreadyExists(FlyConflict):
    """409 ``already_exists``: a machine with that name exists in the app."""


class FlyNameTaken(FlyConflict):
    """422 ``name_taken``: the (global) app name is taken, by us or by someone else."""


class FlyAppOwnedElsewhere(FlyNameTaken):
    """App create: the name is taken by an app outside our organisation. Pick a new name."""


class FlyLeaseHeld(FlyError):
    """409 "lease currently held by ...": another holder has the machine lease (or our nonce is
    missing/stale). Back off until it expires, or abort."""

    transient = True


class FlyPrecondition(FlyError):
    """412: the request was valid but the machine/app is not in a state to accept it."""

    transient = True


class FlyWrongState(FlyPrecondition):
    """412 "unable to start machine from current state" (e.g. still ``replacing``). Re-GET, retry."""


class FlyStaleVersion(FlyPrecondition):
    """412: ``current_version``/``machine_version`` is stale. Re-GET and redo the change."""


class FlySecretsNotVisible(FlyPrecondition):
    """412: ``min_secrets_version`` is not yet visible in the secret store. Retry shortly."""


class FlyCapacityError(FlyError):
    """Fly has no room for the request (codes vary: 400, 409, 412, 5xx)."""


class FlyRegionCapacity(FlyCapacityError):
    """``insufficient_capacity`` / "no capacity" in the region: try another region."""


class FlyHostCapacity(FlyCapacityError):
    """The machine's (or volume's) host is full: "insufficient memory available ..."."""


class FlyVolumeHostFull(FlyPrecondition, FlyHostCapacity):
    """412 ``volume_placement_capacity`` / "insufficient resources to create new machine with
    existing volume": fork the volume elsewhere or use another region."""

    transient = False


class FlyRateLimited(FlyError):
    """429. ``retry_after`` holds the server's Retry-After in seconds when it sent one."""

    transient = True

    def __init__(self, message: str, *, retry_after: float | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.retry_after = retry_after


# --- ambiguous outcomes ---------------------------------------------------------------------
class FlyAmbiguous(FlyError):
    """The call may or may not have taken effect (408, 5xx, or a transport error after sending)."""

    ambiguous = True
    transient = True


class FlyTimeout(FlyAmbiguous):
    """408: Fly timed out waiting on the host agent (normal for ``/wait``)."""


class FlyWaitTimeout(FlyTimeout):
    """:meth:`FlyClient.wait_for` reached the caller's deadline. ``last_state`` if known."""

    ambiguous = False

    def __init__(self, message: str, *, last_state: str | None = None, **kw: Any) -> None:
        super().__init__(message, **kw)
        self.last_state = last_state


class FlyMachineUnusable(FlyWaitTimeout):
    """:meth:`FlyClient.wait_for` saw the machine reach a state from which the wanted one cannot come
    without our intervention; raised at once instead of waiting to the deadline. ``last_state`` says
    which. A subclass of :class:`FlyWaitTimeout` so "did not get there" handlers still catch it."""

    transient = False


class FlyMachineFailed(FlyMachineUnusable):
    """``failed`` (could not start: recover by start, update or recreate) or ``launch_failed`` (the
    launch failed; the machine ends ``destroyed``: recreate it)."""


class FlyMachineDestroyed(FlyMachineUnusable):
    """The machine was destroyed while waiting for another state."""


class FlyIncompleteConfig(FlyError):
    """The machine's ``config`` is missing (``host_status != ok``: Fly shows ``incomplete_config``).
    Never build an update from it — a whole-config update would drop everything that is not there."""


class FlyConnectionError(FlyAmbiguous):
    """Transport error (connection reset/refused, protocol error, read timeout, DNS)."""


class FlyServerError(FlyAmbiguous):
    """5xx from Fly."""


class FlyHostDisabled(FlyServerError):
    """ "deploys to this host are temporarily disabled": replace the machine instead of updating."""


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
    kw: dict[str, Any] = {
        "status_code": status_code,
        "request_id": request_id,
        "fly_status": fly_status,
        "method": method,
        "path": path,
    }
    haystack = f"{fly_status or ''} {message}"

    if status_code == 401:
        return FlyUnauthorized(message, **kw)
    if status_code == 429:
        return FlyRateLimited(message, retry_after=parse_retry_after(retry_after), **kw)
    # A 409 "insufficient memory" is the machine's HOST being full (start/update), whatever the
    # status field says: checked before the region-capacity status.
    if status_code == 409 and _HOST_CAPACITY.search(message) and not _VOLUME_HOST.search(message):
        return FlyHostCapacity(message, **kw)
    # Body status field first: these mean the same thing whatever the code.
    if fly_status == "volume_placement_capacity" or _VOLUME_HOST.search(message):
        return FlyVolumeHostFull(message, **kw)
    if fly_status == "insufficient_capacity":
        return FlyRegionCapacity(message, **kw)
    if fly_status == "name_taken":
        return FlyNameTaken(message, **kw)
    if status_code == 404:
        return FlyNotFound(message, **kw)
    if status_code == 403:
        if _QUOTA.search(message):
            return FlyQuotaExceeded(message, **kw)
        return FlyForbidden(message, **kw)
    if status_code == 408:
        return FlyTimeout(message, **kw)
    if status_code in (409, 412) and _LEASE_HELD.search(message):
        return FlyLeaseHeld(message, **kw)
    if status_code == 409:
        if _HOST_CAPACITY.search(message):
            return FlyHostCapacity(message, **kw)
        if _ALREADY_EXISTS.search(haystack):
            return FlyAlreadyExists(message, **kw)
        return FlyConflict(message, **kw)
    if status_code == 412:
        if _SECRETS.search(message):
            return FlySecretsNotVisible(message, **kw)
        if _HOST_CAPACITY.search(message):
            return FlyHostCapacity(message, **kw)
        if _VERSION.search(message):
            return FlyStaleVersion(message, **kw)
        if _STATE.search(message):
            return FlyWrongState(message, **kw)
        return FlyPrecondition(message, **kw)
    if status_code >= 500:
        if _HOST_DISABLED.search(message):
            return FlyHostDisabled(message, **kw)
        if _REGION_CAPACITY.search(message):
            return FlyRegionCapacity(message, **kw)
        return FlyServerError(message, **kw)
    # 400, 422 and other 4xx
    if _REGION_CAPACITY.search(message):
        return FlyRegionCapacity(message, **kw)
    if _HOST_CAPACITY.search(message):
        return FlyHostCapacity(message, **kw)
    if status_code == 422 and _NAME_TAKEN.search(haystack):
        return FlyNameTaken(message, **kw)
    if _VOLUME_NOT_FOUND.search(message):
        return FlyVolumeNotFound(message, **kw)
    if _ALREADY_EXISTS.search(haystack):
        return FlyAlreadyExists(message, **kw)
    return FlyBadRequest(message, **kw)


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
    "FlyForbidden",
    "FlyHostCapacity",
    "FlyHostDisabled",
    "FlyIncompleteConfig",
    "FlyMachineDestroyed",
    "FlyMachineFailed",
    "FlyMachineUnusable",
    "FlyLeaseHeld",
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
    "FlyWaitTimeout",
    "FlyWrongState",
    "MAX_MESSAGE_CHARS",
    "classify",
    "parse_error_body",
    "parse_retry_after",
]
