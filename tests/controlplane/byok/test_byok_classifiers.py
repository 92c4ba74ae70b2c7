"""Every documented error shape (reference §3) classified to its verdict, through the real
validator and httpx, with respx serving bodies shaped like each provider's documented bodies."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import respx

from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.validate import KeyValidator
from controlplane.db.models import KeyVerdict as V
from tests.support.byok_fakes import valid_key


def anthropic(kind: str, message: str = "x") -> dict[str, Any]:
    return {"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_1"}


def openai(message: str, type_: str | None = None, code: str | None = None) -> dict[str, Any]:
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def google(code: int, status: str, message: str, *details: dict[str, Any]) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "status": status, "details": list(details)}}


def error_info(reason: str) -> dict[str, Any]:
    return {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": reason, "domain": "googleapis.com"}


def openrouter(code: int, message: str, **metadata: Any) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "metadata": metadata or None}}


def mistral(message: str, type_: str) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": type_, "param": None, "code": None}


def moonshot(type_: str, message: str = "x") -> dict[str, Any]:
    return {"error": {"type": type_, "message": message}}


def minimax(code: int, msg: str = "x") -> dict[str, Any]:
    return {"base_resp": {"status_code": code, "status_msg": msg}}


def xai(error: str, code: str = "Client specified an invalid argument") -> dict[str, Any]:
    return {"code": code, "error": error}


CASES: list[tuple[str, int, Any, V]] = [
    # Anthropic §3.1
    ("anthropic", 401, anthropic("authentication_error", "invalid x-api-key"), V.invalid_key),
    ("anthropic", 402, anthropic("billing_error", "billing issue"), V.no_credit),
    (
        "anthropic",
        400,
        anthropic("invalid_request_error", "Your credit balance is too low to access the Anthropic API."),
        V.no_credit,
    ),
    (
        "anthropic",
        400,
        anthropic(
            "invalid_request_error",
            "You have reached your specified workspace API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
        ),
        V.spend_limit,
    ),
    (
        "anthropic",
        400,
        anthropic("invalid_request_error", "You have reached your specified API usage limits."),
        V.spend_limit,
    ),
    ("anthropic", 403, anthropic("permission_error", "no access"), V.permission),
    ("anthropic", 404, anthropic("not_found_error", "model: x"), V.unknown),
    ("anthropic", 429, anthropic("rate_limit_error", "acceleration limits"), V.rate_limited),
    ("anthropic", 500, anthropic("api_error", "Internal server error"), V.overloaded),
    ("anthropic", 504, anthropic("timeout_error", "timeout"), V.overloaded),
    ("anthropic", 529, anthropic("overloaded_error", "Overloaded"), V.overloaded),
    # OpenAI §3.2
    (
        "openai",
        401,
        openai("Incorrect API key provided: sk-proj-****abcd.", "invalid_request_error", "invalid_api_key"),
        V.invalid_key,
    ),
    (
        "openai",
        401,
        openai(
            "You must be a member of an organization to use the API.",
            "invalid_request_error",
            "no_organization",
        ),
        V.revoked_or_blocked,
    ),
    (
        "openai",
        401,
        openai("IP not authorized for this project.", "invalid_request_error", None),
        V.permission,
    ),
    (
        "openai",
        401,
        openai(
            "You have insufficient permissions for this operation. Missing scopes: model.request.",
            "invalid_request_error",
        ),
        V.permission,
    ),
    (
        "openai",
        403,
        openai(
            "Country, region, or territory not supported",
            "request_forbidden",
            "unsupported_country_region_territory",
        ),
        V.permission,
    ),
    (
        "openai",
        404,
        openai(
            "The model does not exist or you do not have access to it.",
            "invalid_request_error",
            "model_not_found",
        ),
        V.permission,
    ),
    (
        "openai",
        429,
        openai(
            "You exceeded your current quota, please check your plan and billing details.",
            "insufficient_quota",
            "insufficient_quota",
        ),
        V.no_credit,
    ),
    (
        "openai",
        429,
        openai("You exceeded your current quota, please check your plan and billing details.", None, None),
        V.no_credit,
    ),
    (
        "openai",
        429,
        openai("Rate limit reached for requests", "requests", "rate_limit_exceeded"),
        V.rate_limited,
    ),
    (
        "openai",
        503,
        openai("The engine is currently overloaded, please try again later", "server_error"),
        V.overloaded,
    ),
    ("openai", 500, openai("The server had an error", "server_error"), V.overloaded),
    # Google Gemini §3.3
    (
        "google",
        400,
        google(
            400,
            "INVALID_ARGUMENT",
            "API key not valid. Please pass a valid API key.",
            error_info("API_KEY_INVALID"),
        ),
        V.invalid_key,
    ),
    (
        "google",
        400,
        google(
            400,
            "INVALID_ARGUMENT",
            "API key expired. Please renew the API key.",
            error_info("API_KEY_INVALID"),
        ),
        V.invalid_key,
    ),
    (
        "google",
        400,
        google(400, "INVALID_ARGUMENT", "API key expired. Please renew the API key."),
        V.invalid_key,
    ),
    (
        "google",
        403,
        google(
            403,
            "PERMISSION_DENIED",
            "Generative Language API has not been used in project 1 before or it is disabled.",
            error_info("SERVICE_DISABLED"),
        ),
        V.permission,
    ),
    (
        "google",
        403,
        google(403, "PERMISSION_DENIED", "Your API key was reported as leaked. Please use another API key."),
        V.revoked_or_blocked,
    ),
    (
        "google",
        400,
        google(
            400,
            "FAILED_PRECONDITION",
            "User location is not supported for the API use without a billing account linked.",
        ),
        V.no_credit,
    ),
    (
        "google",
        429,
        google(
            429,
            "RESOURCE_EXHAUSTED",
            "You exceeded your current quota, please check your plan and billing details.",
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerMinutePerProjectPerModel-FreeTier"}],
            },
        ),
        V.rate_limited,
    ),
    (
        "google",
        429,
        google(
            429,
            "RESOURCE_EXHAUSTED",
            "Quota exceeded.",
            {
                "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                "violations": [{"quotaId": "GenerateRequestsPerDayPerProjectPerModel-FreeTier"}],
            },
        ),
        V.spend_limit,
    ),
    ("google", 500, google(500, "INTERNAL", "An internal error has occurred."), V.overloaded),
    ("google", 504, google(504, "DEADLINE_EXCEEDED", "Deadline exceeded"), V.overloaded),
    (
        "google",
        503,
        google(503, "UNAVAILABLE", "The model is overloaded. Please try again later."),
        V.overloaded,
    ),
    # Groq §3.4
    ("groq", 401, openai("Invalid API Key", "invalid_request_error", "invalid_api_key"), V.invalid_key),
    ("groq", 403, openai("Forbidden", "permissions_error"), V.permission),
    ("groq", 404, openai("The model does not exist", "invalid_request_error", "model_not_found"), V.unknown),
    ("groq", 413, openai("Request too large", "invalid_request_error"), V.unknown),
    ("groq", 422, openai("Unprocessable", "invalid_request_error"), V.unknown),
    (
        "groq",
        429,
        openai("Rate limit reached on tokens per minute", "tokens", "rate_limit_exceeded"),
        V.rate_limited,
    ),
    (
        "groq",
        498,
        openai("Flex tier capacity exceeded", "capacity_exceeded", "capacity_exceeded"),
        V.rate_limited,
    ),
    ("groq", 503, openai("Service unavailable (maintenance)", "internal_server_error"), V.overloaded),
    ("groq", 502, "<html>bad gateway</html>", V.overloaded),
    # OpenRouter §3.5
    ("openrouter", 401, openrouter(401, "No auth credentials found"), V.invalid_key),
    (
        "openrouter",
        402,
        openrouter(402, "Insufficient credits", limit_source="openrouter_credits"),
        V.no_credit,
    ),
    (
        "openrouter",
        402,
        openrouter(402, "Key limit reached", limit_source="openrouter_key_limit"),
        V.spend_limit,
    ),
    ("openrouter", 403, openrouter(403, "Key limit exceeded"), V.spend_limit),
    ("openrouter", 403, openrouter(403, "Input was flagged by moderation", reasons=["hate"]), V.permission),
    ("openrouter", 408, openrouter(408, "Request timed out"), V.overloaded),
    ("openrouter", 502, openrouter(502, "Upstream model is down"), V.overloaded),
    ("openrouter", 503, openrouter(503, "No provider meets your routing requirements"), V.overloaded),
    ("openrouter", 429, openrouter(429, "Rate limit exceeded: free-models-per-day"), V.rate_limited),
    # Mistral §3.6
    ("mistral", 401, mistral("Unauthorized", "authentication_error"), V.invalid_key),
    ("mistral", 402, mistral("Payment required", "invalid_request_error"), V.no_credit),
    ("mistral", 403, mistral("Model not available on your plan", "invalid_request_error"), V.permission),
    ("mistral", 404, mistral("Not found", "invalid_request_error"), V.unknown),
    ("mistral", 422, mistral("Invalid model", "invalid_request_error"), V.unknown),
    ("mistral", 429, mistral("Requests rate limit exceeded", "rate_limit_error"), V.rate_limited),
    ("mistral", 500, mistral("Internal error", "server_error"), V.overloaded),
    ("mistral", 503, mistral("Service unavailable", "server_error"), V.overloaded),
    # DeepSeek §3.7
    (
        "deepseek",
        401,
        openai(
            "Authentication Fails, Your api key: ****abcd is invalid",
            "authentication_error",
            "invalid_request_error",
        ),
        V.invalid_key,
    ),
    ("deepseek", 402, openai("Insufficient Balance", "unknown_error", "invalid_request_error"), V.no_credit),
    ("deepseek", 400, openai("Invalid format", "invalid_request_error"), V.unknown),
    ("deepseek", 422, openai("Invalid parameters", "invalid_request_error"), V.unknown),
    ("deepseek", 429, openai("Rate limit reached", "rate_limit_error"), V.rate_limited),
    ("deepseek", 500, openai("Server error", "server_error"), V.overloaded),
    ("deepseek", 503, openai("Server overloaded", "server_error"), V.overloaded),
    # Moonshot §3.8
    (
        "moonshot",
        429,
        moonshot("exceeded_current_quota_error", "Your account is suspended due to insufficient balance"),
        V.no_credit,
    ),
    (
        "moonshot",
        403,
        moonshot("exceeded_current_quota_error", "Your account is suspended due to insufficient balance"),
        V.no_credit,
    ),
    ("moonshot", 403, moonshot("permission_denied_error", "not allowed"), V.permission),
    ("moonshot", 404, moonshot("resource_not_found_error", "Not found the model"), V.unknown),
    ("moonshot", 429, moonshot("rate_limit_reached_error", "max RPM reached"), V.rate_limited),
    (
        "moonshot",
        429,
        moonshot("engine_overloaded_error", "The engine is currently overloaded"),
        V.overloaded,
    ),
    ("moonshot", 400, moonshot("content_filter", "high risk"), V.unknown),
    ("moonshot", 400, moonshot("invalid_request_error", "bad request"), V.unknown),
    ("moonshot", 500, moonshot("server_error", "oops"), V.overloaded),
    # MiniMax §3.9 (base_resp errors are also tested on HTTP 200 below)
    (
        "minimax",
        200,
        minimax(1004, "login fail: Please carry the API secret key in the Authorization field"),
        V.invalid_key,
    ),
    ("minimax", 200, minimax(2049, "invalid api key"), V.invalid_key),
    ("minimax", 401, anthropic("authentication_error", "invalid api key"), V.invalid_key),
    ("minimax", 403, {"message": "forbidden"}, V.invalid_key),
    ("minimax", 200, minimax(1008, "insufficient balance"), V.no_credit),
    ("minimax", 200, minimax(1028), V.no_credit),
    ("minimax", 200, minimax(1030), V.no_credit),
    ("minimax", 200, minimax(2056, "usage limit exceeded"), V.spend_limit),
    ("minimax", 200, minimax(2061, "model not in plan"), V.permission),
    ("minimax", 200, minimax(1002, "rate limit"), V.rate_limited),
    ("minimax", 200, minimax(1039, "tpm limit"), V.rate_limited),
    ("minimax", 200, minimax(1041, "conn limit"), V.rate_limited),
    ("minimax", 200, minimax(1001, "timeout"), V.overloaded),
    ("minimax", 200, minimax(1024, "internal error"), V.overloaded),
    ("minimax", 200, minimax(1033, "system error"), V.overloaded),
    ("minimax", 500, anthropic("api_error", "system error (1033)"), V.overloaded),
    ("minimax", 400, anthropic("invalid_request_error", "insufficient balance (1008)"), V.no_credit),
    ("minimax", 200, minimax(1000, "unknown error"), V.unknown),
    ("minimax", 200, minimax(1026, "sensitive input"), V.unknown),
    ("minimax", 200, minimax(2013, "invalid params"), V.unknown),
    # Cohere §3.10
    ("cohere", 401, {"message": "invalid api token"}, V.invalid_key),
    ("cohere", 401, {"message": "no api key supplied"}, V.invalid_key),
    ("cohere", 401, {"message": "Your API key has expired"}, V.invalid_key),
    ("cohere", 200, {"valid": False, "organization_id": None, "owner_id": None}, V.invalid_key),
    ("cohere", 402, {"message": "Please add a payment method: billing limit reached"}, V.no_credit),
    (
        "cohere",
        429,
        {"message": "You are using a Trial key, which is limited to 20 API calls / minute."},
        V.rate_limited,
    ),
    (
        "cohere",
        429,
        {"message": "You are using a Trial key, which is limited to 1000 API calls / month."},
        V.spend_limit,
    ),
    ("cohere", 404, {"message": "not found"}, V.unknown),
    ("cohere", 499, {"message": "request cancelled"}, V.unknown),
    ("cohere", 500, {"message": "internal server error"}, V.overloaded),
    # xAI §3.11
    (
        "xai",
        400,
        xai("Incorrect API key provided: xa***ab. You can obtain an API key from https://console.x.ai."),
        V.invalid_key,
    ),
    ("xai", 401, xai("Missing or garbled Authorization header", "Unauthenticated"), V.invalid_key),
    (
        "xai",
        403,
        xai("Your newly created team doesn't have any credits or licenses yet.", "Permission denied"),
        V.no_credit,
    ),
    ("xai", 403, xai("The API key has been blocked.", "Permission denied"), V.revoked_or_blocked),
    ("xai", 403, xai("The API key does not have the ACL for this model.", "Permission denied"), V.permission),
    (
        "xai",
        429,
        xai("Your team has reached its monthly spending limit.", "Resource exhausted"),
        V.spend_limit,
    ),
    ("xai", 429, xai("Too many requests", "Resource exhausted"), V.rate_limited),
    ("xai", 404, xai("Not found", "Not found"), V.unknown),
    ("xai", 415, xai("Unsupported media type", "x"), V.unknown),
    ("xai", 500, xai("Internal", "Internal"), V.overloaded),
    ("xai", 503, xai("Service unavailable", "Unavailable"), V.overloaded),
    # generic revocation wording
    ("mistral", 401, mistral("This API key has been revoked.", "authentication_error"), V.invalid_key),
    ("deepseek", 403, openai("Your account has been deactivated."), V.revoked_or_blocked),
]


def _response(status: int, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    if isinstance(body, str):
        return httpx.Response(status, text=body, headers=headers)
    return httpx.Response(status, json=body, headers=headers)


def validator() -> KeyValidator:
    async def no_sleep(_s: float) -> None:
        return None

    return KeyValidator(max_attempts=1, sleep=no_sleep, timeout=5)


@pytest.mark.parametrize(("provider", "status", "body", "expected"), CASES)
async def test_documented_answers_get_their_verdict(
    provider: str, status: int, body: Any, expected: V
) -> None:
    key = valid_key(provider)
    with respx.mock(assert_all_called=False) as mock:
        mock.route().mock(return_value=_response(status, body))
        verdict = await validator().validate(provider, ProviderKeyValue(key))
    assert verdict.verdict is expected, (verdict, body)
    assert verdict.http_status == status
    assert verdict.message and key not in verdict.message
    if expected is V.unknown:
        assert verdict.preview  # kept for ops
    else:
        assert verdict.preview is None


# ---------------------------------------------------------------------------------------------
# Success paths and the free credit / limit checks


OK_BODIES: dict[str, list[tuple[str, Any]]] = {
    "anthropic": [("/v1/models", {"data": [{"id": "claude-x", "type": "model"}], "has_more": True})],
    "openai": [("/v1/models", {"object": "list", "data": [{"id": "gpt-x"}]})],
    "google": [("/v1beta/models", {"models": [{"name": "models/gemini-x"}], "nextPageToken": "t"})],
    "groq": [("/openai/v1/models", {"object": "list", "data": []})],
    "openrouter": [
        (
            "/api/v1/key",
            {
                "data": {
                    "label": "k",
                    "limit": None,
                    "limit_remaining": None,
                    "usage": 0,
                    "is_free_tier": False,
                }
            },
        )
    ],
    "mistral": [("/v1/models", {"object": "list", "data": []})],
    "deepseek": [
        ("/models", {"object": "list", "data": []}),
        (
            "/user/balance",
            {"is_available": True, "balance_infos": [{"currency": "USD", "total_balance": "5.00"}]},
        ),
    ],
    "moonshot": [
        ("/v1/models", {"object": "list", "data": []}),
        (
            "/v1/users/me/balance",
            {
                "code": 0,
                "status": True,
                "data": {"available_balance": 12.5, "voucher_balance": 0, "cash_balance": 12.5},
            },
        ),
    ],
    "minimax": [  # the free endpoint alone proves nothing: the paid probe is needed for ok
        ("/anthropic/v1/models", {"data": [], "base_resp": {"status_code": 0, "status_msg": "success"}}),
        (
            "/v1/token_plan/remains",
            {
                "model_remains": [{"model_name": "MiniMax-M2", "current_interval_remaining_count": 10}],
                "base_resp": {"status_code": 0},
            },
        ),
        (
            "/anthropic/v1/messages",
            {
                "id": "m",
                "type": "message",
                "role": "assistant",
                "content": [{"type": "text", "text": "h"}],
                "usage": {"input_tokens": 1, "output_tokens": 1},
            },
        ),
    ],
    "cohere": [("/v1/check-api-key", {"valid": True, "organization_id": "o", "owner_id": "u"})],
    "xai": [
        (
            "/v1/api-key",
            {
                "redacted_api_key": "xai-...ab",
                "api_key_blocked": False,
                "api_key_disabled": False,
                "team_blocked": False,
                "acls": ["api-key:model:*"],
            },
        )
    ],
}

HOSTS = {
    "anthropic": "api.anthropic.com",
    "openai": "api.openai.com",
    "google": "generativelanguage.googleapis.com",
    "groq": "api.groq.com",
    "openrouter": "openrouter.ai",
    "mistral": "api.mistral.ai",
    "deepseek": "api.deepseek.com",
    "moonshot": "api.moonshot.ai",
    "minimax": "api.minimax.io",
    "cohere": "api.cohere.com",
    "xai": "api.x.ai",
}


def _mock_ok(
    mock: respx.MockRouter, provider: str, overrides: dict[str, Any] | None = None
) -> list[respx.Route]:
    routes = []
    for path, body in OK_BODIES[provider]:
        routes.append(
            mock.route(host=HOSTS[provider], path=path).mock(
                return_value=httpx.Response(200, json=(overrides or {}).get(path, body))
            )
        )
    return routes


@pytest.mark.parametrize("provider", sorted(OK_BODIES))
async def test_accepted_key_is_ok_and_sent_only_in_the_documented_header(provider: str) -> None:
    key = valid_key(provider)
    paid = provider == "minimax"  # MiniMax keys are only proven by the 1-token probe
    with respx.mock(assert_all_called=True) as mock:
        routes = _mock_ok(mock, provider)
        verdict = await KeyValidator(max_attempts=1, paid_probes=paid).validate(
            provider, ProviderKeyValue(key)
        )
    assert verdict.verdict is V.ok, verdict
    assert "unproven" not in verdict.flags
    for route in routes:
        request = route.calls.last.request
        assert key not in str(request.url)  # never in the URL or query string
        assert request.url.scheme == "https"
        headers = {k.lower(): v for k, v in request.headers.items()}
        if provider == "anthropic":
            assert headers["x-api-key"] == key and headers["anthropic-version"] == "2023-06-01"
            assert "authorization" not in headers
        elif provider == "google":
            assert headers["x-goog-api-key"] == key and "authorization" not in headers
        else:
            assert headers["authorization"] == f"Bearer {key}"


CREDIT_CASES = [
    ("deepseek", "/user/balance", {"is_available": False, "balance_infos": []}, V.no_credit),
    (
        "moonshot",
        "/v1/users/me/balance",
        {
            "code": 0,
            "status": True,
            "data": {"available_balance": 0, "voucher_balance": 0, "cash_balance": 0},
        },
        V.no_credit,
    ),
    (
        "moonshot",
        "/v1/users/me/balance",
        {"code": 0, "status": True, "data": {"available_balance": -3.2}},
        V.no_credit,
    ),
    (
        "openrouter",
        "/api/v1/key",
        {"data": {"limit": 10, "limit_remaining": 0, "usage": 10, "is_free_tier": False}},
        V.spend_limit,
    ),
    (
        "openrouter",
        "/api/v1/key",
        {"data": {"limit": None, "limit_remaining": None, "expires_at": "2020-01-01T00:00:00Z"}},
        V.revoked_or_blocked,
    ),
    ("openrouter", "/api/v1/key", {"data": {"limit": None, "is_management_key": True}}, V.permission),
    (
        "xai",
        "/v1/api-key",
        {"api_key_blocked": True, "api_key_disabled": False, "team_blocked": False},
        V.revoked_or_blocked,
    ),
    (
        "xai",
        "/v1/api-key",
        {"api_key_blocked": False, "api_key_disabled": True, "team_blocked": False},
        V.revoked_or_blocked,
    ),
    (
        "xai",
        "/v1/api-key",
        {"api_key_blocked": False, "api_key_disabled": False, "team_blocked": True},
        V.revoked_or_blocked,
    ),
    ("cohere", "/v1/check-api-key", {"valid": False}, V.invalid_key),
]


@pytest.mark.parametrize(("provider", "path", "body", "expected"), CREDIT_CASES)
async def test_free_credit_and_limit_checks(provider: str, path: str, body: Any, expected: V) -> None:
    with respx.mock(assert_all_called=True) as mock:
        _mock_ok(mock, provider, {path: body})
        verdict = await validator().validate(provider, ProviderKeyValue(valid_key(provider)))
    assert verdict.verdict is expected, verdict


async def test_openrouter_free_tier_is_flagged() -> None:
    with respx.mock() as mock:
        _mock_ok(mock, "openrouter", {"/api/v1/key": {"data": {"limit": None, "is_free_tier": True}}})
        verdict = await validator().validate("openrouter", ProviderKeyValue(valid_key("openrouter")))
    assert verdict.verdict is V.ok and "free_tier" in verdict.flags


async def test_credit_check_failing_transiently_keeps_ok_with_a_flag() -> None:
    with respx.mock() as mock:
        mock.route(host=HOSTS["deepseek"], path="/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        mock.route(host=HOSTS["deepseek"], path="/user/balance").mock(
            return_value=httpx.Response(503, json={})
        )
        verdict = await validator().validate("deepseek", ProviderKeyValue(valid_key("deepseek")))
    assert verdict.verdict is V.ok and "credit_unchecked" in verdict.flags


async def test_moonshot_key_from_the_other_region_is_found_and_remembered() -> None:
    key = valid_key("moonshot")
    with respx.mock() as mock:
        intl = mock.route(host="api.moonshot.ai").mock(
            return_value=httpx.Response(
                401, json=moonshot("invalid_authentication_error", "Invalid Authentication")
            )
        )
        mock.route(host="api.moonshot.cn", path="/v1/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        mock.route(host="api.moonshot.cn", path="/v1/users/me/balance").mock(
            return_value=httpx.Response(
                200, json={"code": 0, "status": True, "data": {"available_balance": 1}}
            )
        )
        verdict = await validator().validate("moonshot", ProviderKeyValue(key))
        assert verdict.verdict is V.ok and verdict.region == "cn"
        # a stored region is tried first next time
        assert intl.call_count == 1
        again = await validator().validate("moonshot", ProviderKeyValue(key), region="cn")
        assert again.verdict is V.ok and intl.call_count == 1


async def test_invalid_in_every_region_is_invalid() -> None:
    with respx.mock() as mock:
        mock.route().mock(return_value=httpx.Response(401, json=moonshot("incorrect_api_key_error")))
        verdict = await validator().validate("moonshot", ProviderKeyValue(valid_key("moonshot")))
    assert verdict.verdict is V.invalid_key and verdict.region == "intl"


# ---------------------------------------------------------------------------------------------
# Retry hints, retries, transport failures, redirects, base URL overrides


async def test_retry_after_header_and_gemini_retry_info() -> None:
    with respx.mock() as mock:
        mock.route().mock(
            return_value=httpx.Response(
                429, json=anthropic("rate_limit_error"), headers={"retry-after": "17"}
            )
        )
        v1 = await validator().validate("anthropic", ProviderKeyValue(valid_key("anthropic")))
    assert v1.verdict is V.rate_limited and v1.retry_after == 17.0
    body = google(
        429,
        "RESOURCE_EXHAUSTED",
        "Quota exceeded",
        {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": "32.5s"},
    )
    with respx.mock() as mock:
        mock.route().mock(return_value=httpx.Response(429, json=body))
        v2 = await validator().validate("google", ProviderKeyValue(valid_key("google")))
    assert v2.verdict is V.rate_limited and v2.retry_after == 32.5
    with respx.mock() as mock:
        mock.route().mock(
            return_value=httpx.Response(
                429,
                json=openai("Rate limit", "requests", "rate_limit_exceeded"),
                headers={"retry-after-ms": "1500"},
            )
        )
        v3 = await validator().validate("openai", ProviderKeyValue(valid_key("openai")))
    assert v3.retry_after == 1.5


async def test_transient_answers_are_retried_honouring_retry_after() -> None:
    waits: list[float] = []

    async def sleep(s: float) -> None:
        waits.append(s)

    with respx.mock() as mock:
        route = mock.route().mock(
            side_effect=[
                httpx.Response(529, json=anthropic("overloaded_error"), headers={"retry-after": "2"}),
                httpx.Response(200, json={"data": []}),
            ]
        )
        verdict = await KeyValidator(max_attempts=3, sleep=sleep).validate(
            "anthropic", ProviderKeyValue(valid_key("anthropic"))
        )
    assert verdict.verdict is V.ok and route.call_count == 2 and waits == [2.0]


async def test_long_retry_after_is_not_waited_for() -> None:
    async def sleep(_s: float) -> None:
        raise AssertionError("must not sleep")

    with respx.mock() as mock:
        route = mock.route().mock(
            return_value=httpx.Response(
                429, json=anthropic("rate_limit_error"), headers={"retry-after": "3600"}
            )
        )
        verdict = await KeyValidator(max_attempts=3, sleep=sleep).validate(
            "anthropic", ProviderKeyValue(valid_key("anthropic"))
        )
    assert verdict.verdict is V.rate_limited and route.call_count == 1 and verdict.retry_after == 3600


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (httpx.ConnectTimeout("timed out"), V.overloaded),
        (httpx.ReadTimeout("timed out"), V.overloaded),
        (httpx.ConnectError("connection refused"), V.unknown),
        (httpx.RemoteProtocolError("peer closed"), V.unknown),
        (OSError("network unreachable"), V.unknown),
    ],
)
async def test_network_failures_are_never_invalid_key(exc: Exception, expected: V) -> None:
    with respx.mock() as mock:
        mock.route().mock(side_effect=exc)
        verdict = await validator().validate("openai", ProviderKeyValue(valid_key("openai")))
    assert verdict.verdict is expected and verdict.http_status is None


async def test_redirects_are_not_followed() -> None:
    with respx.mock(assert_all_called=False) as mock:
        first = mock.route(host="api.openai.com").mock(
            return_value=httpx.Response(302, headers={"location": "https://evil.example/steal"})
        )
        other = mock.route(host="evil.example").mock(return_value=httpx.Response(200, json={}))
        verdict = await validator().validate("openai", ProviderKeyValue(valid_key("openai")))
    assert verdict.verdict is V.unknown and first.call_count == 1 and other.call_count == 0


async def test_operator_base_url_override_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    from controlplane.settings import load_settings

    monkeypatch.setenv("CP_OPENAI_BASE_URL", "http://fake-providers.internal:9000/openai/v1/")
    settings = load_settings()
    with respx.mock() as mock:
        route = mock.get("http://fake-providers.internal:9000/openai/v1/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        verdict = await KeyValidator(settings).validate("openai", ProviderKeyValue(valid_key("openai")))
    assert verdict.verdict is V.ok and route.call_count == 1


async def test_paid_probes_are_opt_in() -> None:
    with respx.mock(assert_all_called=False) as mock:
        models = mock.route(host=HOSTS["anthropic"], path="/v1/models").mock(
            return_value=httpx.Response(200, json={"data": []})
        )
        paid = mock.route(host=HOSTS["anthropic"], path="/v1/messages").mock(
            return_value=httpx.Response(
                400,
                json=anthropic(
                    "invalid_request_error", "Your credit balance is too low to access the Anthropic API."
                ),
            )
        )
        free_only = await validator().validate("anthropic", ProviderKeyValue(valid_key("anthropic")))
        assert free_only.verdict is V.ok and paid.call_count == 0
        with_paid = await KeyValidator(max_attempts=1, paid_probes=True).validate(
            "anthropic", ProviderKeyValue(valid_key("anthropic"))
        )
    assert with_paid.verdict is V.no_credit and paid.call_count == 1 and models.call_count == 2
    assert paid.calls.last.request.headers["x-api-key"] == valid_key("anthropic")


async def test_spend_limit_message_quotes_the_reset_date() -> None:
    body = anthropic(
        "invalid_request_error",
        "You have reached your specified API usage limits. You will regain access on 2026-12-01 at 00:00 UTC.",
    )
    with respx.mock() as mock:
        mock.route().mock(return_value=httpx.Response(400, json=body))
        verdict = await validator().validate("anthropic", ProviderKeyValue(valid_key("anthropic")))
    assert verdict.verdict is V.spend_limit and "2026-12-01" in verdict.message
