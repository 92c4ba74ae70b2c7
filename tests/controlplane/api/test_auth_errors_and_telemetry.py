"""The API's edges: service tokens (several valid at once), the one error shape for every failure,
body limits before parsing, request ids, JSON access logs without values, metrics, health and
readiness; on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import httpx
from fastapi import APIRouter

from controlplane.api.app import OPEN_PATHS, create_app
from controlplane.api.auth import token_matches
from controlplane.db.session import Database
from tests.support.api import BASE, SECOND_TOKEN, SERVICE_TOKEN, ApiHarness, api_settings, own_auth_paths
from tests.support.byok_fakes import valid_key


def _concrete(path: str) -> str:
    return (
        path.replace("{external_id}", "someone")
        .replace("{provider}", "openai")
        .replace("{kind}", "telegram")
        .replace("{service}", "email")
        .replace("{announcement_id}", "0" * 32)
    )


def _error(response: httpx.Response) -> dict[str, object]:
    body = response.json()
    assert set(body) == {"error"} and {"code", "message", "field"} <= set(body["error"]), body
    error: dict[str, object] = body["error"]
    return error


async def test_every_route_but_the_open_ones_needs_a_service_token(api: ApiHarness) -> None:
    await api.tenant("someone")
    spec = (await api.anonymous.get("/openapi.json")).json()
    operations = [(m.upper(), p, op) for p, item in spec["paths"].items() for m, op in item.items()]
    guarded = [(m, p) for m, p, op in operations if p not in own_auth_paths()]
    assert len(guarded) >= 20
    for method, path, op in operations:  # the contract says so too
        assert (op.get("security") == [{"ServiceToken": []}]) == (path not in own_auth_paths()), (
            method,
            path,
        )
    for method, path in guarded:
        for headers in (
            {},
            {"authorization": "Bearer wrong-token-0123456789"},
            {"authorization": f"Basic {SERVICE_TOKEN}"},
        ):
            r = await api.anonymous.request(method, _concrete(path), headers=headers, json={})
            assert r.status_code == 401, (method, path, headers, r.text)
            assert _error(r)["code"] == "unauthorized" and r.headers["www-authenticate"] == "Bearer"
    for path in OPEN_PATHS:
        assert (await api.anonymous.get(path)).status_code == 200, path


async def test_several_tokens_are_valid_at_once(api: ApiHarness) -> None:
    await api.tenant("rot")
    for token in (SERVICE_TOKEN, SECOND_TOKEN):
        r = await api.anonymous.get(f"{BASE}/rot/status", headers={"authorization": f"Bearer {token}"})
        assert r.status_code == 200
    prefix = await api.anonymous.get(
        f"{BASE}/rot/status", headers={"authorization": f"Bearer {SERVICE_TOKEN[:-1]}"}
    )
    assert prefix.status_code == 401


def test_token_comparison() -> None:
    tokens = (b"a" * 20, b"b" * 20)
    assert token_matches("a" * 20, tokens) and token_matches("b" * 20, tokens)
    assert not token_matches("a" * 19, tokens) and not token_matches("a" * 21, tokens)
    assert not token_matches("a" * 20, ()) and not token_matches("\udcff", tokens)


async def test_no_tokens_configured_means_every_dashboard_route_refuses(db: Database) -> None:
    app = create_app(api_settings("sqlite:///unused.db", api_tokens=""), db=db)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        r = await client.get(f"{BASE}/x/status", headers={"authorization": "Bearer " + "x" * 20})
        assert r.status_code == 401
        assert (await client.get("/healthz")).status_code == 200


async def test_errors_have_one_shape_and_never_echo_what_was_sent(api: ApiHarness) -> None:
    await api.tenant("shape")
    key = api.key("openai")
    unknown_route = await api.client.get("/v1/nothing-here")
    assert unknown_route.status_code == 404 and _error(unknown_route)["code"] == "not_found"
    wrong_method = await api.client.patch(f"{BASE}/shape/status")
    assert wrong_method.status_code == 405 and _error(wrong_method)["code"] == "method_not_allowed"
    bad_id = await api.client.get(f"{BASE}/a%20b/status")
    assert bad_id.status_code == 422 and _error(bad_id)["field"] == "external_id"
    assert "a b" not in bad_id.text
    key_in_path = await api.client.get(f"{BASE}/{key}/status")
    assert key_in_path.status_code == 422 and "looks like a key" in str(_error(key_in_path)["message"])
    not_json = await api.client.put(
        f"{BASE}/shape/keys/openai", content=b'{"key": ', headers={"content-type": "application/json"}
    )
    assert not_json.status_code == 422 and _error(not_json)["message"] == "body: not valid JSON"
    wrong_type = await api.client.put(f"{BASE}/shape/keys/openai", json={"key": 12345})
    assert wrong_type.status_code == 422 and _error(wrong_type)["field"] == "key"
    too_long = await api.client.put(f"{BASE}/shape/keys/openai", json={"key": key * 20})
    assert too_long.status_code == 422 and _error(too_long)["field"] == "key" and key not in too_long.text
    missing = await api.client.post(f"{BASE}/shape/caps/email/reports", json={"amount": 1})
    assert missing.status_code == 422 and _error(missing) == {
        "code": "bad_input",
        "message": "report_id: required",
        "field": "report_id",
        "details": None,
    }


async def test_bodies_are_limited_before_any_parsing(db: Database) -> None:
    from tests.support.api import api_harness

    settings = api_settings("sqlite:///unused.db", api_max_body_bytes=2048)
    async with api_harness(db, settings=settings) as api:
        await api.tenant("big")
        url = f"{BASE}/big/keys/openai"
        declared = await api.client.put(
            url, content=b"{" + b" " * 3000 + b"}", headers={"content-type": "application/json"}
        )
        assert declared.status_code == 413 and _error(declared)["code"] == "too_large"

        async def chunks():  # no Content-Length: counted while read
            for _ in range(10):
                yield b" " * 500

        streamed = await api.client.put(url, content=chunks(), headers={"content-type": "application/json"})
        assert streamed.status_code == 413 and _error(streamed)["field"] == "body"
        deep = await api.client.put(
            url, content=b"[" * 40 + b"]" * 40, headers={"content-type": "application/json"}
        )
        assert deep.status_code == 413 and "nested deeper" in str(_error(deep)["message"])
        strings_are_not_nesting = json.dumps({"key": "[" * 100}).encode()
        flat = await api.client.put(
            url, content=strings_are_not_nesting, headers={"content-type": "application/json"}
        )
        assert flat.status_code == 422 and _error(flat)["code"] == "key_format"
        garbage_length = await api.client.put(
            url, content=b"{}", headers={"content-type": "application/json", "content-length": "2x"}
        )
        assert garbage_length.status_code in (400, 422)
        assert api.providers.calls == 0
        await api.assert_nothing_leaked()


async def test_access_log_lines_carry_the_route_template_and_no_values(api: ApiHarness) -> None:
    await api.tenant("logme")
    key = api.key("openai")
    r = await api.client.put(
        f"{BASE}/logme/keys/openai?note=private-value", json={"key": key}, headers={"x-request-id": "req-123"}
    )
    assert r.status_code == 200 and r.headers["x-request-id"] == "req-123"
    lines = [json.loads(line) for line in api.logs.getvalue().splitlines() if line.startswith("{")]
    access = [line for line in lines if line.get("event") == "http.request"]
    assert access, "no access log line"
    last = access[-1]
    assert last["route"] == "/v1/tenants/{external_id}/keys/{provider}"
    assert (last["method"], last["status"], last["request_id"]) == ("PUT", 200, "req-123")
    assert isinstance(last["duration_ms"], float)
    server_side = [line for line in lines if line.get("logger") != "httpx"]  # httpx: the test's own client
    assert "private-value" not in json.dumps(server_side) and "logme" not in json.dumps(access)
    # every line logged during the request carries its id
    assert all(
        line.get("request_id") == "req-123" for line in lines if line.get("event", "").startswith("byok.")
    )
    made_up = await api.client.get(f"{BASE}/logme/status", headers={"x-request-id": "bad id with spaces"})
    assert (
        made_up.headers["x-request-id"] != "bad id with spaces" and len(made_up.headers["x-request-id"]) == 32
    )


async def test_metrics_count_requests_by_route_template(api: ApiHarness) -> None:
    await api.tenant("metered")
    for _ in range(3):
        await api.client.get(f"{BASE}/metered/caps/email")
    await api.client.get(f"{BASE}/nobody/caps/email")
    text = (await api.anonymous.get("/metrics")).text
    route = "/v1/tenants/{external_id}/caps/{service}"
    assert f'cp_api_requests_total{{method="GET",route="{route}",status="200"}} 3.0' in text
    assert f'cp_api_requests_total{{method="GET",route="{route}",status="404"}} 1.0' in text
    assert "cp_api_request_duration_seconds_bucket" in text and "metered" not in text


async def test_health_and_readiness(api: ApiHarness) -> None:
    assert (await api.anonymous.get("/healthz")).json() == {"status": "ok"}
    assert (await api.anonymous.get("/readyz")).json() == {"status": "ready", "database": "ok"}


async def test_an_unreachable_database_answers_503_not_a_traceback() -> None:
    down = Database.from_url("postgresql://postgres@127.0.0.1:1/none")
    app = create_app(api_settings("sqlite:///unused.db"), db=down)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app, raise_app_exceptions=False),
            base_url="http://t",
            headers={"authorization": f"Bearer {SERVICE_TOKEN}"},
        ) as client:
            ready = await client.get("/readyz")
            assert ready.status_code == 503 and _error(ready)["field"] == "database"
            status = await client.get(f"{BASE}/anyone/status")
            assert status.status_code == 503 and _error(status)["code"] == "unavailable"
            assert "Traceback" not in status.text
    finally:
        await down.dispose()


async def test_unexpected_errors_answer_500_with_the_request_id_only(db: Database) -> None:
    key = valid_key("openai", 11)
    boom = APIRouter()

    @boom.get("/boom")
    async def explode() -> None:
        raise RuntimeError(f"something broke near {key}")

    app = create_app(api_settings("sqlite:///unused.db"), db=db, extra_routers=[boom])
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app, raise_app_exceptions=False), base_url="http://t"
    ) as client:
        r = await client.get("/boom", headers={"x-request-id": "oops-1"})
    assert r.status_code == 500
    assert _error(r) == {
        "code": "internal",
        "message": "internal error (request oops-1)",
        "field": None,
        "details": None,
    }
