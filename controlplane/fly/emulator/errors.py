"""Fly-shaped API errors. Handlers raise ``ApiError``; the ASGI layer renders it."""

from __future__ import annotations

from typing import Any


class ApiError(Exception):
    """An HTTP error answer with a Fly-like JSON body ({"error": ..., "status"?: ...})."""

    def __init__(
        self,
        http_status: int,
        message: str,
        status: str | None = None,
        *,
        body: dict[str, Any] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.body: dict[str, Any] = body if body is not None else error_body(message, status)
        self.headers = headers or {}


def error_body(message: str, status: str | None = None) -> dict[str, Any]:
    body: dict[str, Any] = {"error": message}
    if status is not None:
        body["status"] = status
    return body


def lease_error_body(message: str, code: str = "invalid") -> dict[str, Any]:
    """Lease endpoints (and lease conflicts on mutations) answer in this shape."""
    return {"status": "error", "message": message, "code": code}


def not_found(what: str) -> ApiError:
    return ApiError(404, f"{what} not found", "not_found")


def bad_request(message: str, status: str = "invalid_argument") -> ApiError:
    return ApiError(400, message, status)


def precondition(message: str, status: str | None = "failed_precondition") -> ApiError:
    return ApiError(412, message, status)
