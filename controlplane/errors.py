"""The failures every entry point (CLI command, API route) reports the same way.

Expected failures are one of three kinds, each with its exit code (CLI) and HTTP status (API):

    ControlPlaneError             exit 1   500   base; never raised directly
     ├── BadInput                 exit 2   422   the caller's input is wrong: names the field
     │    └── NotFound            exit 2   404   a named thing (tenant, plan ...) does not exist
     ├── Unavailable              exit 1   503   a dependency (database, Fly, a provider) failed
     └── Refused                  exit 3   409   a safety check said no (confirm, pins, limits)

The message is one line for a person: ``<field or resource>: <reason>``. It never carries a value the
user supplied where a name was expected (a pasted key must not come back): use
:func:`controlplane.redaction.preview` for "what was given" if anything at all.
"""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base of the expected failures. ``exit_code`` for the CLI, ``http_status`` for the API."""

    exit_code: int = 1
    http_status: int = 500
    code: str = "error"

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}" if subject else reason)


class BadInput(ControlPlaneError):
    """The input is wrong; ``subject`` names the field (``--plan``, ``body.provider``, ``CP_X``)."""

    exit_code = 2
    http_status = 422
    code = "bad_input"

    @property
    def field(self) -> str:
        return self.subject


class NotFound(BadInput):
    """A named thing does not exist (unknown tenant, plan, provider ...)."""

    http_status = 404
    code = "not_found"


class Unavailable(ControlPlaneError):
    """A dependency did not answer or refused us (database down, Fly 5xx, provider timeout)."""

    exit_code = 1
    http_status = 503
    code = "unavailable"


class Refused(ControlPlaneError):
    """A safety check refused the action (missing confirmation, a pinned tenant, a limit)."""

    exit_code = 3
    http_status = 409
    code = "refused"


__all__ = ["BadInput", "ControlPlaneError", "NotFound", "Refused", "Unavailable"]
