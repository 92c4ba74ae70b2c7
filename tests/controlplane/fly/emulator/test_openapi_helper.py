"""The shared spec helper (tests/fly_openapi.py) catches what it should, and knows the spec's gaps."""

from __future__ import annotations

import pytest

from tests.support.fly_openapi import (
    OpenAPIValidationError,
    match_operation,
    validate_request,
    validate_response,
)


def test_templated_paths_match_operations() -> None:
    assert match_operation("GET", "/v1/apps/a/machines/m").operation_id == "Machines_show"
    assert match_operation(
        "GET", "https://api.machines.dev/v1/apps/a/machines/m/metadata/k"
    ).operation_id == ("Machines_get_metadata_key")
    assert match_operation("GET", "/v1/orgs/o/machines?limit=5").path_params == {"org_slug": "o"}
    with pytest.raises(OpenAPIValidationError):
        match_operation("PATCH", "/v1/apps/a/machines/m")
    with pytest.raises(OpenAPIValidationError):
        match_operation("GET", "/v1/nope")


def test_requests_are_checked_strictly() -> None:
    validate_request(
        "POST", "/v1/apps/a/machines", None, {"config": {"image": "x"}, "min_secrets_version": 3}
    )
    validate_request("GET", "/v1/apps/a/machines", {"metadata.control_plane_id": "x", "summary": True})
    validate_request("POST", "/v1/apps/a/machines/m/lease", {"ttl": 30})
    validate_request("POST", "/v1/apps", None, {"app_name": "a", "org_slug": "o"})
    with pytest.raises(OpenAPIValidationError, match="auto_stop_machines"):
        validate_request(
            "POST", "/v1/apps/a/machines", None, {"config": {"image": "x", "auto_stop_machines": True}}
        )
    with pytest.raises(OpenAPIValidationError, match="timeout"):
        validate_request("GET", "/v1/apps/a/machines/m/wait", {"state": "started", "timeout": "soon"})
    with pytest.raises(OpenAPIValidationError, match="bogus"):
        validate_request("GET", "/v1/apps/a/machines/m/wait", {"state": "started,bogus"})
    with pytest.raises(OpenAPIValidationError, match="not accepted"):
        validate_request("GET", "/v1/apps/a/machines", {"stat": "started"})
    with pytest.raises(OpenAPIValidationError, match="requires a JSON body"):
        validate_request("POST", "/v1/apps/a/machines", None, None)


def test_responses_are_checked_with_known_gaps() -> None:
    validate_response(
        "POST",
        "/v1/apps/a/machines/m/lease",
        201,
        {"status": "success", "data": {"nonce": "n", "expires_at": 1, "owner": "o", "version": "v"}},
    )
    validate_response(
        "POST",
        "/v1/apps/a/machines/m",
        409,
        {"status": "error", "message": "lease currently held", "code": "invalid"},
    )
    validate_response(
        "GET", "/v1/apps/a/machines/m/wait", 408, {"error": "timeout", "status": "deadline_exceeded"}
    )
    validate_response("GET", "/v1/apps/a/machines/m", 200, {"config": {"services": [{"autostop": False}]}})
    with pytest.raises(OpenAPIValidationError, match="not declared"):
        validate_response("POST", "/v1/apps/a/machines", 201, {})
    with pytest.raises(OpenAPIValidationError, match="error"):
        validate_response("GET", "/v1/apps/a/machines/m", 500, {"message": "x"})
    with pytest.raises(OpenAPIValidationError, match="lease"):
        validate_response("POST", "/v1/apps/a/machines/m/lease", 201, {"nonce": "flat"})
