"""The reconcile contract (controller-runtime's ``reconcile.Reconciler`` is the model).

``reconcile(tenant_id) -> Result``: :meth:`Result.done` (converged; nothing to do until the next
mark) or :meth:`Result.after` (not there yet, nothing failed: look again in N seconds, e.g. while a
machine boots). Failures are exceptions, sorted by :func:`classify` into exactly two kinds:

* transient (:class:`TransientError`, a Fly error whose ``transient`` or ``ambiguous`` flag is set,
  any unexpected exception): retried with the tenant's backoff;
* terminal (:class:`TerminalError`, a Fly error whose ``terminal`` flag is set): no retry can succeed
  without a person or a different desired state, so the tenant is parked with the reason visible.
  Exception: a refused Fly token is the whole control plane's problem, not the tenant's; it is
  retried slowly rather than parking every tenant.

:func:`workers.handler.handle` is the ONE place that turns (result, error) into a queue action.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from controlplane.fly.errors import FlyConfigError, FlyError, FlyRateLimited, FlyUnauthorized

ErrorKind = Literal["transient", "terminal"]
#: Seconds before retrying a tenant after an error of the whole control plane (bad Fly token).
FLEET_ERROR_RETRY = 300.0


@dataclass(frozen=True, slots=True)
class Result:
    """What a successful reconcile says: done, or look again after ``requeue_after`` seconds."""

    requeue_after: float | None = None
    note: str = ""

    @classmethod
    def done(cls, note: str = "") -> Result:
        return cls(None, note)

    @classmethod
    def after(cls, seconds: float, note: str = "") -> Result:
        return cls(max(0.0, seconds), note)

    @property
    def is_done(self) -> bool:
        return self.requeue_after is None


class ReconcileError(Exception):
    """A reconcile failed; ``message`` is one line for an operator (no secrets)."""

    kind: ErrorKind = "transient"

    def __init__(self, message: str, *, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after


class TransientError(ReconcileError):
    """Try again later (with backoff)."""


class TerminalError(ReconcileError):
    """Park the tenant: quota, a bad image, an invalid config, no region with capacity left."""

    kind = "terminal"


def classify(exc: BaseException) -> tuple[ErrorKind, str, float | None]:
    """(kind, one-line message, server-requested retry delay) for any exception a reconcile raised."""
    if isinstance(exc, ReconcileError):
        return exc.kind, exc.message, exc.retry_after
    if isinstance(exc, (FlyUnauthorized, FlyConfigError)):
        # The control plane's own token or settings, not this tenant: parking every tenant would
        # need an operator to un-park the whole fleet once it is fixed. Retry slowly instead.
        return (
            "transient",
            f"{type(exc).__name__}: {exc} (check CP_FLY_API_TOKEN / CP_FLY_*)",
            FLEET_ERROR_RETRY,
        )
    if isinstance(exc, FlyError):
        retry_after = exc.retry_after if isinstance(exc, FlyRateLimited) else None
        terminal = bool(exc.terminal) and not (exc.transient or exc.ambiguous)
        return ("terminal" if terminal else "transient"), f"{type(exc).__name__}: {exc}", retry_after
    return "transient", f"unexpected {type(exc).__name__}: {exc}", None


__all__ = ["ErrorKind", "ReconcileError", "Result", "TerminalError", "TransientError", "classify"]
