"""Classification of Fly's answers into the exception hierarchy (reference §4.4, §9)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from controlplane.fly import errors as E
from controlplane.fly.errors import classify, parse_error_body, parse_retry_after


@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (401, {"error": "unauthorized"}, E.FlyUnauthorized),
        (404, {"error": "machine not found"}, E.FlyNotFound),
        (404, {"status": "error", "message": "lease not found", "code": "not_found"}, E.FlyNotFound),
        (
            403,
            {"error": "organization acme is using 8192 MB of memory in iad which is over the allowed quota"},
            E.FlyQuotaExceeded,
        ),
        (403, {"error": "app is in another organization"}, E.FlyForbidden),
        (408, {"error": "machine failed to reach desired state, started, currently stopped"}, E.FlyTimeout),
        (
            409,
            {
                "status": "error",
                "message": "machine ID 1234 lease currently held by x@y, expires at 2026-01-01T00:00:00Z",
                "code": "invalid",
            },
            E.FlyLeaseHeld,
        ),
        (412, {"error": "machine ID 1234 lease currently held by someone"}, E.FlyLeaseHeld),
        (409, {"error": "insufficient memory available to fulfill request"}, E.FlyHostCapacity),
        # the host is full even if the body says insufficient_capacity (that status means region)
        (
            409,
            {
                "error": "could not reserve resource for machine: insufficient memory available to fulfill request",
                "status": "insufficient_capacity",
            },
            E.FlyHostCapacity,
        ),
        (
            409,
            {"error": 'machine with name "u-42" already exists (ID 123)', "status": "already_exists"},
            E.FlyAlreadyExists,
        ),
        (409, {"error": "something else"}, E.FlyConflict),
        (412, {"error": "unable to start machine from current state: 'replacing'"}, E.FlyWrongState),
        (412, {"error": "current_version mismatch: machine version is stale"}, E.FlyStaleVersion),
        (
            412,
            {"error": "min_secrets_version 7 is not yet available in the secrets store"},
            E.FlySecretsNotVisible,
        ),
        (
            412,
            {"error": "insufficient resources to create new machine with existing volume 'vol_1'"},
            E.FlyVolumeHostFull,
        ),
        (412, {"error": "could not place", "status": "volume_placement_capacity"}, E.FlyVolumeHostFull),
        (412, {"error": "precondition failed"}, E.FlyPrecondition),
        (400, {"error": "no capacity available in region iad"}, E.FlyRegionCapacity),
        (
            500,
            {"error": "could not reserve resource", "status": "insufficient_capacity"},
            E.FlyRegionCapacity,
        ),
        (400, {"error": "volume not found"}, E.FlyVolumeNotFound),
        (400, {"error": "invalid_argument: timeout must be <= 60"}, E.FlyBadRequest),
        (422, {"error": "Name has already been taken", "status": "name_taken"}, E.FlyNameTaken),
        (422, {"error": "Name has already been taken"}, E.FlyNameTaken),
        (422, {"error": "invalid region"}, E.FlyBadRequest),
        (429, {"error": "rate limit exceeded"}, E.FlyRateLimited),
        (500, {"error": "internal error"}, E.FlyServerError),
        (503, "upstream connect error", E.FlyServerError),
        (503, {"error": "deploys to this host are temporarily disabled"}, E.FlyHostDisabled),
    ],
)
def test_classification_by_body_not_code_alone(status: int, body: object, expected: type) -> None:
    import json

    raw = body if isinstance(body, str) else json.dumps(body)
    err = classify(status, raw, request_id="01REQ", method="POST", path="/apps/a/machines")
    assert type(err) is expected
    assert err.status_code == status
    assert err.request_id == "01REQ"
    assert "01REQ" in str(err)


def test_same_code_different_meaning() -> None:
    # 412 is three different things; 409 is lease, name or capacity.
    assert isinstance(classify(412, '{"error":"min_secrets_version not visible"}'), E.FlySecretsNotVisible)
    assert isinstance(
        classify(412, '{"error":"unable to start machine from current state"}'), E.FlyWrongState
    )
    host_full = classify(412, '{"error":"x","status":"volume_placement_capacity"}')
    # a capacity error, not a "not now" precondition: `except FlyPrecondition: retry` must not see it
    assert isinstance(host_full, E.FlyCapacityError) and not isinstance(host_full, E.FlyPrecondition)
    assert host_full.terminal and not host_full.transient


def test_ambiguity_flags() -> None:
    assert classify(408, "{}").ambiguous
    assert classify(502, "{}").ambiguous
    assert E.FlyConnectionError("reset").ambiguous
    for status in (400, 401, 403, 404, 409, 412, 422, 429):
        assert not classify(status, '{"error":"x"}').ambiguous, status


def test_error_body_parsing_prefers_message_then_error_then_raw() -> None:
    assert parse_error_body('{"status":"error","message":"held","code":"invalid"}') == ("held", "invalid")
    assert parse_error_body('{"error":"boom","status":"unknown"}') == ("boom", "unknown")
    assert parse_error_body("plain text") == ("plain text", None)
    assert parse_error_body(b"") == ("", None)


def test_message_is_short_and_single_line() -> None:
    err = classify(500, '{"error": "' + "x\\n" * 1000 + '"}')
    assert len(err.message) <= E.MAX_MESSAGE_CHARS
    assert "\n" not in err.message


def test_retry_after_parsing() -> None:
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("1.5") == 1.5
    assert parse_retry_after(None) is None
    assert parse_retry_after("soon") is None
    now = datetime(2026, 1, 1, tzinfo=UTC)
    assert parse_retry_after("Thu, 01 Jan 2026 00:00:05 GMT", now=now) == 5.0
    err = classify(429, '{"error":"slow down"}', retry_after="2")
    assert isinstance(err, E.FlyRateLimited) and err.retry_after == 2.0


def test_repr_and_log_fields_are_safe() -> None:
    err = classify(404, '{"error":"app not found"}', request_id="R1", method="GET", path="/apps/x")
    assert "R1" in repr(err)
    fields = err.log_fields()
    assert fields["fly_request_id"] == "R1" and fields["status_code"] == 404
