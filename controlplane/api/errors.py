"""The API's one error shape, ``{"error": {"code", "message", "field"}}``, for every failure.

Expected failures are :mod:`controlplane.errors` exceptions (their ``http_status`` and ``code``),
BYOK errors (mapped here), request validation (422, the first problem, naming the field without
its location prefix: ``key``, ``allow_from[0]``, ``external_id``), Starlette's own HTTP errors
(404 for an unknown path, 405), the database being unreachable (503). Anything else is a 500 that
says only "internal error" and the request id; the traceback goes to the redacting log.

Messages never carry a value the caller sent (pydantic's input is never included) and pass through
:func:`controlplane.redaction.redact_text` once more on the way out. ``details`` carries machine-
readable extras where a refusal has them (a channel limit and the plan that allows more, a key's
verdict).
"""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from starlette.exceptions import HTTPException as StarletteHTTPException

from controlplane.byok.errors import (
    ByokError,
    InvalidModelPreference,
    KeyFormatRefused,
    KeyNotFound,
    KeyRefused,
    TenantNotFound,
    UnknownProvider,
)
from controlplane.errors import BadInput, ControlPlaneError, NotFound, Unavailable
from controlplane.limits import path_part
from controlplane.redaction import redact_text
from controlplane.settings import SettingsError
from controlplane.vault import VaultError

log = structlog.get_logger(__name__)

Detail = str | int | float | bool | None


class ErrorDetail(BaseModel):
    code: str
    message: str
    field: str | None = None
    details: dict[str, Detail] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class Unauthorized(ControlPlaneError):
    http_status = 401
    code = "unauthorized"


class PayloadTooLarge(BadInput):
    http_status = 413
    code = "too_large"


class _KeyRefused(BadInput):
    """The provider refused the key (invalid, revoked, no permission): its verdict in details."""

    code = "key_refused"


class _KeyFormat(BadInput):
    """The key's shape is wrong for the provider (checked before any call)."""

    code = "key_format"


_CODES = {400: "bad_input", 404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def error_response(
    status: int,
    code: str,
    message: str,
    field: str | None = None,
    details: dict[str, Detail] | None = None,
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    body = ErrorBody(error=ErrorDetail(code=code, message=redact_text(message), field=field, details=details))
    return JSONResponse(body.model_dump(), status_code=status, headers=headers)


def _from_byok(exc: ByokError) -> tuple[ControlPlaneError, dict[str, Detail] | None]:
    if isinstance(exc, KeyRefused):
        refused = _KeyRefused("key", exc.verdict.message)
        details: dict[str, Detail] = {"verdict": exc.verdict.verdict.value}
        if exc.verdict.retry_after is not None:
            details["retry_after"] = exc.verdict.retry_after
        return refused, details
    if isinstance(exc, KeyFormatRefused):
        return _KeyFormat("key", exc.reason), None
    if isinstance(exc, KeyNotFound):
        return NotFound("provider", str(exc)), None
    if isinstance(exc, TenantNotFound):
        return NotFound("external_id", "no tenant with this external id"), None
    if isinstance(exc, UnknownProvider):
        return NotFound("provider", str(exc)), None
    if isinstance(exc, InvalidModelPreference):
        subject, _, reason = str(exc).partition(": ")
        return BadInput(subject if reason else "model", reason or str(exc)), None
    return Unavailable("keys", "the key service failed"), None


def _field(loc: tuple[Any, ...]) -> str | None:
    parts = list(loc)
    if parts and parts[0] in ("body", "path", "query", "header", "cookie"):
        where = parts.pop(0)
        if not parts:
            return "body" if where == "body" else None
    name = ""
    for part in parts:  # a field name the caller made up (an unknown field) is described, never echoed
        shown = path_part(part)
        name += f"[{part}]" if isinstance(part, int) else (f".{shown}" if name else shown)
    return name or None


def _validation_message(field: str | None, error: dict[str, Any]) -> str:
    kind = error.get("type", "")
    if kind == "json_invalid":
        return "body: not valid JSON"
    if kind == "missing":
        return f"{field}: required"
    msg = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    return f"{field}: {msg}" if field else msg


def install_error_handlers(app: FastAPI) -> None:
    """Every failure answers with :class:`ErrorBody`."""

    @app.exception_handler(ControlPlaneError)
    async def _expected(request: Request, exc: ControlPlaneError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, Unauthorized) else None
        return error_response(
            exc.http_status,
            exc.code,
            str(exc),
            exc.subject or None,
            getattr(exc, "details", None),
            headers,
        )

    @app.exception_handler(ByokError)
    async def _byok(request: Request, exc: ByokError) -> JSONResponse:
        mapped, details = _from_byok(exc)
        return error_response(mapped.http_status, mapped.code, str(mapped), mapped.subject or None, details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first: dict[str, Any] = dict(errors[0]) if errors else {}
        field = _field(tuple(first.get("loc", ())))
        return error_response(422, "bad_input", _validation_message(field, first), field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not parse the body at all
            return error_response(422, "bad_input", "body: could not be parsed", "body")
        code = _CODES.get(exc.status_code, "error")
        return error_response(exc.status_code, code, str(exc.detail), None, None, dict(exc.headers or {}))

    async def _database(request: Request, exc: Exception) -> JSONResponse:
        log.warning("api.database_unavailable", error=type(exc).__name__)
        return error_response(503, "unavailable", "database: not reachable; try again shortly", "database")

    for kind in (OperationalError, InterfaceError, PoolTimeout, ConnectionError, TimeoutError):
        app.add_exception_handler(kind, _database)

    @app.exception_handler(DBAPIError)
    async def _dbapi(request: Request, exc: DBAPIError) -> JSONResponse:
        if exc.connection_invalidated:
            return await _database(request, exc)
        return await _internal(request, exc)

    @app.exception_handler(SettingsError)
    async def _settings(request: Request, exc: SettingsError) -> JSONResponse:
        return error_response(503, "unavailable", str(exc).splitlines()[0], "configuration")

    @app.exception_handler(VaultError)
    async def _vault(request: Request, exc: VaultError) -> JSONResponse:
        log.error("api.vault_error", error=type(exc).__name__)
        return error_response(503, "unavailable", "vault: a stored secret could not be used", "vault")

    @app.exception_handler(Exception)
    async def _internal(request: Request, exc: Exception) -> JSONResponse:
        request_id = request.scope.get("state", {}).get("request_id", "")
        log.error("api.internal_error", exc_info=exc, request_id=request_id)
        return error_response(500, "internal", f"internal error (request {request_id})")


#: OpenAPI ``responses`` entries of the error statuses a route can answer with.
def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    text = {
        401: "No or wrong service token",
        404: "No such tenant (or thing of the tenant)",
        409: "Refused by a rule (plan limits, a reused report id)",
        413: "Request body too large",
        422: "Bad input: the field and the reason",
        503: "A dependency (database, vault) is unavailable",
    }
    return {s: {"model": ErrorBody, "description": text[s]} for s in statuses}


__all__ = [
    "ErrorBody",
    "ErrorDetail",
    "PayloadTooLarge",
    "Unauthorized",
    "error_response",
    "error_responses",
    "install_error_handlers",
]
