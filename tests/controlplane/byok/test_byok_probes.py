"""How a region's probes combine into one verdict (validate.py): error bodies on HTTP 200, keys
that a free endpoint cannot prove (MiniMax), credit and paid probes that refine an accepted key
without refusing it, Moonshot's balance call, MiniMax's plan check and region fallback."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
import respx

from controlplane.byok.catalog import get_spec
from controlplane.byok.classifiers._engine import extract
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.validate import KeyValidator, classify_response
from controlplane.db.models import KeyVerdict as V
from tests.support.byok_fakes import valid_key

GLOBAL, CN = "api.minimax.io", "api.minimaxi.com"
MODELS, PLAN, MESSAGE = "/anthropic/v1/models", "/v1/token_plan/remains", "/anthropic/v1/messages"

ANSWER = {
    "id": "msg_1",
    "type": "message",
    "role": "assistant",
    "model": "MiniMax-M2",
    "content": [{"type": "text", "text": "hi"}],
    "stop_reason": "max_tokens",
    "usage": {"input_tokens": 1, "output_tokens": 1},
}
MODEL_LIST = {"data": [{"id": "MiniMax-M2", "type": "model"}], "has_more": False}


def _validator(*, paid: bool = False) -> KeyValidator:
    async def no_sleep(_s: float) -> None:
        return None

    return KeyValidator(max_attempts=1, sleep=no_sleep, paid_probes=paid)


def _json(status: int, body: Any) -> httpx.Response:
    return httpx.Response(status, json=body)


async def _check(provider: str, *, paid: bool = False, region: str | None = None) -> Any:
    return await _validator(paid=paid).validate(
        provider, ProviderKeyValue(valid_key(provider)), region=region
    )


# ---------------------------------------------------------------------------------------------
# Finding 2a: only an error body makes a 200 an error


@pytest.mark.parametrize(
    ("probe", "body"),
    [
        ("message", ANSWER),
        ("models", MODEL_LIST),
        ("models", {"code": 0, "msg": "success", "data": []}),
        ("models", {"object": "list", "data": [{"id": "MiniMax-M2", "object": "model"}]}),
        ("models", {"base_resp": {"status_code": 0, "status_msg": "success"}, "type": "list"}),
    ],
)
def test_a_minimax_success_body_is_not_an_error(probe: str, body: dict[str, Any]) -> None:
    spec = get_spec("minimax")
    answer = extract(200, json.dumps(body), {})
    assert not answer.is_error and answer.tokens == frozenset()
    chosen = next(p for p in spec.probes if p.name == probe)
    assert classify_response(spec, chosen, 200, json.dumps(body), {}).verdict is V.ok


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"type": "error", "error": {"type": "authentication_error", "message": "invalid api key"}},
            V.invalid_key,
        ),
        ({"type": "error", "error": {"type": "api_error", "message": "system error (1033)"}}, V.overloaded),
        ({"base_resp": {"status_code": 2049, "status_msg": "invalid api key"}}, V.invalid_key),
        ({"object": "error", "type": "rate_limit_error", "message": "slow down"}, V.rate_limited),
    ],
)
def test_a_minimax_error_body_on_200_is_classified(body: dict[str, Any], expected: V) -> None:
    spec = get_spec("minimax")
    assert extract(200, json.dumps(body), {}).is_error
    assert classify_response(spec, spec.probes[0], 200, json.dumps(body), {}).verdict is expected


def test_error_statuses_still_read_top_level_codes() -> None:
    answer = extract(401, json.dumps({"code": "unauthenticated", "message": "no"}), {})
    assert answer.is_error and "unauthenticated" in answer.tokens


# ---------------------------------------------------------------------------------------------
# Finding 2b: a MiniMax key is proven only by the 1-token probe


async def test_minimax_free_endpoint_alone_leaves_the_key_unproven() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host=GLOBAL, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        plan = mock.route(host=GLOBAL, path=PLAN).mock(return_value=_json(404, {"message": "not found"}))
        paid = mock.route(path=MESSAGE).mock(return_value=_json(200, ANSWER))
        other = mock.route(host=CN).mock(return_value=_json(200, MODEL_LIST))
        verdict = await _check("minimax")
    assert verdict.verdict is V.unknown and "unproven" in verdict.flags
    assert verdict.message == (
        "MiniMax does not confirm keys on its free endpoint; the key will be proven on first use "
        "or with a paid check."
    )
    assert verdict.region == "global" and verdict.http_status == 200
    assert plan.call_count == 1 and paid.call_count == 0 and other.call_count == 0
    assert not verdict.refused


async def test_minimax_paid_probe_ok_proves_the_key() -> None:
    with respx.mock(assert_all_called=True) as mock:
        mock.route(host=GLOBAL, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(host=GLOBAL, path=PLAN).mock(return_value=_json(404, {"message": "not found"}))
        mock.route(host=GLOBAL, path=MESSAGE).mock(return_value=_json(200, ANSWER))
        verdict = await _check("minimax", paid=True)
    assert verdict.verdict is V.ok and "unproven" not in verdict.flags
    assert verdict.region == "global"


async def test_minimax_paid_probe_rejecting_the_key_refuses_it_in_every_region() -> None:
    with respx.mock() as mock:
        mock.route(path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(path=PLAN).mock(
            return_value=_json(200, {"base_resp": {"status_code": 1004, "status_msg": "login fail"}})
        )
        paid = mock.route(path=MESSAGE).mock(
            return_value=_json(
                401,
                {"type": "error", "error": {"type": "authentication_error", "message": "invalid api key"}},
            )
        )
        verdict = await _check("minimax", paid=True)
    assert verdict.verdict is V.invalid_key and paid.call_count == 2  # both regions asked


async def test_minimax_cn_key_is_found_by_the_paid_probe() -> None:
    with respx.mock() as mock:
        mock.route(path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(path=PLAN).mock(return_value=_json(404, {}))
        mock.route(host=GLOBAL, path=MESSAGE).mock(
            return_value=_json(
                401, {"type": "error", "error": {"type": "authentication_error", "message": "x"}}
            )
        )
        mock.route(host=CN, path=MESSAGE).mock(return_value=_json(200, ANSWER))
        verdict = await _check("minimax", paid=True)
    assert verdict.verdict is V.ok and verdict.region == "cn"


@pytest.mark.parametrize(
    "first", [httpx.Response(404, text="404 page not found"), httpx.Response(418, json={"message": "?"})]
)
async def test_minimax_tries_the_other_region_after_a_404_or_unknown(first: httpx.Response) -> None:
    with respx.mock() as mock:
        global_host = mock.route(host=GLOBAL).mock(return_value=first)
        mock.route(host=CN, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(host=CN, path=PLAN).mock(return_value=_json(404, {}))
        mock.route(host=CN, path=MESSAGE).mock(return_value=_json(200, ANSWER))
        verdict = await _check("minimax", paid=True)
    # the global host was asked everything (the paid probe could still have proven the key there)
    assert verdict.verdict is V.ok and verdict.region == "cn" and global_host.call_count == 3


async def test_minimax_unknown_everywhere_stays_unknown_not_refused() -> None:
    with respx.mock() as mock:
        mock.route(host=GLOBAL).mock(return_value=httpx.Response(404, text="404 page not found"))
        mock.route(host=CN).mock(
            return_value=_json(
                401, {"type": "error", "error": {"type": "authentication_error", "message": "x"}}
            )
        )
        verdict = await _check("minimax")
    assert verdict.verdict is V.unknown and verdict.region == "global"


async def test_minimax_unproven_key_is_not_sent_to_the_other_region() -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host=GLOBAL, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(host=GLOBAL, path=PLAN).mock(return_value=_json(404, {}))
        cn = mock.route(host=CN).mock(return_value=_json(200, MODEL_LIST))
        verdict = await _check("minimax")
    assert "unproven" in verdict.flags and cn.call_count == 0


# ---------------------------------------------------------------------------------------------
# Finding 3: credit and paid probes do not refuse a key the free check accepted


async def test_paid_probe_model_not_found_flags_the_key_instead_of_refusing_it() -> None:
    body = {
        "error": {
            "message": "The model `text-embedding-3-small` does not exist or you do not have access to it.",
            "type": "invalid_request_error",
            "param": None,
            "code": "model_not_found",
        }
    }
    with respx.mock() as mock:
        mock.route(path="/v1/models").mock(return_value=_json(200, {"data": []}))
        mock.route(path="/v1/embeddings").mock(return_value=_json(404, body))
        verdict = await _check("openai", paid=True)
    assert verdict.verdict is V.ok and "model_restricted" in verdict.flags and not verdict.refused


async def test_minimax_paid_probe_model_not_in_plan_is_a_flag() -> None:
    with respx.mock() as mock:
        mock.route(path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(path=PLAN).mock(return_value=_json(404, {}))
        mock.route(path=MESSAGE).mock(
            return_value=_json(200, {"base_resp": {"status_code": 2061, "status_msg": "model not in plan"}})
        )
        verdict = await _check("minimax", paid=True)
    assert not verdict.refused and "model_restricted" in verdict.flags


@pytest.mark.parametrize(
    ("status", "body"),
    [
        (403, {"error": {"message": "forbidden", "type": "x"}}),
        (401, {"error": {"message": "Authentication Fails", "type": "authentication_error"}}),
        (404, {"error": {"message": "not found", "type": "x"}}),
        (418, "teapot"),
    ],
)
async def test_credit_probe_refusals_are_flags(status: int, body: Any) -> None:
    with respx.mock() as mock:
        mock.route(path="/models").mock(return_value=_json(200, {"data": []}))
        mock.route(path="/user/balance").mock(
            return_value=httpx.Response(status, text=body) if isinstance(body, str) else _json(status, body)
        )
        verdict = await _check("deepseek")
    assert verdict.verdict is V.ok and "credit_unchecked" in verdict.flags


@pytest.mark.parametrize(
    ("provider", "free", "paid", "status", "body", "expected"),
    [
        (
            "anthropic",
            "/v1/models",
            "/v1/messages",
            402,
            {
                "type": "error",
                "error": {"type": "billing_error", "message": "Your credit balance is too low"},
            },
            V.no_credit,
        ),
        (
            "anthropic",
            "/v1/models",
            "/v1/messages",
            400,
            {
                "type": "error",
                "error": {
                    "type": "invalid_request_error",
                    "message": "You have reached your specified API usage limits.",
                },
            },
            V.spend_limit,
        ),
        (
            "openai",
            "/v1/models",
            "/v1/embeddings",
            401,
            {
                "error": {
                    "message": "You must be a member of an organization to use the API.",
                    "type": "invalid_request_error",
                    "code": "no_organization",
                }
            },
            V.revoked_or_blocked,
        ),
        (
            "openai",
            "/v1/models",
            "/v1/embeddings",
            429,
            {
                "error": {
                    "message": "You exceeded your current quota, please check your plan and billing details.",
                    "type": "insufficient_quota",
                    "code": "insufficient_quota",
                }
            },
            V.no_credit,
        ),
    ],
)
async def test_paid_probe_account_verdicts_are_final(
    provider: str, free: str, paid: str, status: int, body: dict[str, Any], expected: V
) -> None:
    with respx.mock() as mock:
        mock.route(path=free).mock(return_value=_json(200, {"data": []}))
        mock.route(path=paid).mock(return_value=_json(status, body))
        verdict = await _check(provider, paid=True)
    assert verdict.verdict is expected


async def test_paid_probe_auth_error_after_a_proven_key_is_a_flag() -> None:
    with respx.mock() as mock:
        mock.route(path="/v1/models").mock(return_value=_json(200, {"data": []}))
        mock.route(path="/v1/messages").mock(
            return_value=_json(
                401, {"type": "error", "error": {"type": "authentication_error", "message": "x"}}
            )
        )
        verdict = await _check("anthropic", paid=True)
    assert verdict.verdict is V.ok and "credit_unchecked" in verdict.flags


# ---------------------------------------------------------------------------------------------
# Finding 4: Moonshot's balance call decides after a 404 on /models

NOT_FOUND = {
    "error": {"type": "resource_not_found_error", "message": "Not found the model or Permission denied"}
}


@pytest.mark.parametrize(
    ("balance", "expected"),
    [
        ({"code": 0, "status": True, "data": {"available_balance": 12.5}}, V.ok),
        (
            {
                "code": 0,
                "status": True,
                "data": {"available_balance": 0, "voucher_balance": 0, "cash_balance": 0},
            },
            V.no_credit,
        ),
        ({"code": 0, "status": True, "data": {"available_balance": "0.00"}}, V.no_credit),
        ({"code": 0, "status": True, "data": {"available_balance": -1.5}}, V.no_credit),
    ],
)
async def test_moonshot_models_404_then_balance_decides(balance: dict[str, Any], expected: V) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host="api.moonshot.ai", path="/v1/models").mock(return_value=_json(404, NOT_FOUND))
        bal = mock.route(host="api.moonshot.ai", path="/v1/users/me/balance").mock(
            return_value=_json(200, balance)
        )
        cn = mock.route(host="api.moonshot.cn").mock(return_value=_json(401, {}))
        verdict = await _check("moonshot")
    assert verdict.verdict is expected and verdict.region == "intl"
    assert bal.call_count == 1 and cn.call_count == 0


async def test_moonshot_models_404_and_balance_401_tries_the_other_region() -> None:
    with respx.mock() as mock:
        mock.route(host="api.moonshot.ai", path="/v1/models").mock(return_value=_json(404, NOT_FOUND))
        mock.route(host="api.moonshot.ai", path="/v1/users/me/balance").mock(
            return_value=_json(
                401, {"error": {"type": "invalid_authentication_error", "message": "Invalid Authentication"}}
            )
        )
        mock.route(host="api.moonshot.cn", path="/v1/models").mock(return_value=_json(200, {"data": []}))
        mock.route(host="api.moonshot.cn", path="/v1/users/me/balance").mock(
            return_value=_json(200, {"code": 0, "status": True, "data": {"available_balance": 3}})
        )
        verdict = await _check("moonshot")
    assert verdict.verdict is V.ok and verdict.region == "cn"


async def test_moonshot_models_404_and_balance_unavailable_stays_unknown() -> None:
    with respx.mock() as mock:
        mock.route(path="/v1/models").mock(return_value=_json(404, NOT_FOUND))
        mock.route(path="/v1/users/me/balance").mock(return_value=_json(503, {}))
        verdict = await _check("moonshot")
    assert verdict.verdict is V.unknown and not verdict.refused


# ---------------------------------------------------------------------------------------------
# Finding 8: MiniMax plan keys, GET /v1/token_plan/remains


def _remains(*counts: int) -> dict[str, Any]:
    return {
        "model_remains": [
            {
                "model_name": f"MiniMax-M{i}",
                "current_interval_total_count": 1500,
                "current_interval_remaining_count": c,
                "remains_time": 3600,
            }
            for i, c in enumerate(counts)
        ],
        "base_resp": {"status_code": 0, "status_msg": "success"},
    }


@pytest.mark.parametrize(
    ("status", "body", "expected", "flag"),
    [
        (200, _remains(1245), V.ok, "plan_key"),
        (200, _remains(0, 12), V.ok, "plan_key"),
        (
            200,
            {"model_remains": [{"current_interval_total_count": 100, "current_interval_used_count": 20}]},
            V.ok,
            "plan_key",
        ),
        (200, _remains(0), V.spend_limit, "plan_key"),
        (200, _remains(0, 0), V.spend_limit, "plan_key"),
        (
            200,
            {"model_remains": [{"current_interval_total_count": 100, "current_interval_used_count": 100}]},
            V.spend_limit,
            "plan_key",
        ),
        (
            200,
            {"base_resp": {"status_code": 2056, "status_msg": "usage limit exceeded"}},
            V.spend_limit,
            None,
        ),
        (
            401,
            {"type": "error", "error": {"type": "authentication_error", "message": "x"}},
            V.ok,
            "credit_unchecked",
        ),
        (403, {"message": "forbidden"}, V.ok, "credit_unchecked"),
        (404, "404 page not found", V.ok, "credit_unchecked"),
        (
            200,
            {"base_resp": {"status_code": 2049, "status_msg": "invalid api key"}},
            V.ok,
            "credit_unchecked",
        ),
    ],
)
async def test_minimax_plan_check(status: int, body: Any, expected: V, flag: str | None) -> None:
    with respx.mock(assert_all_called=False) as mock:
        mock.route(host=GLOBAL, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        plan = mock.route(host=GLOBAL, path=PLAN).mock(
            return_value=httpx.Response(status, text=body) if isinstance(body, str) else _json(status, body)
        )
        mock.route(host=GLOBAL, path=MESSAGE).mock(return_value=_json(200, ANSWER))
        verdict = await _check("minimax", paid=True)
    assert plan.call_count == 1
    assert verdict.verdict is expected, verdict
    assert not verdict.refused
    if flag is not None:
        assert flag in verdict.flags


async def test_minimax_plan_check_without_paid_probe_keeps_the_key_unproven() -> None:
    with respx.mock() as mock:
        mock.route(host=GLOBAL, path=MODELS).mock(return_value=_json(200, MODEL_LIST))
        mock.route(host=GLOBAL, path=PLAN).mock(return_value=_json(200, _remains(100)))
        verdict = await _check("minimax")
    assert verdict.verdict is V.unknown and {"unproven", "plan_key"} <= set(verdict.flags)


def test_plan_probe_is_a_free_credit_probe_that_proves_nothing() -> None:
    plan = next(p for p in get_spec("minimax").probes if p.name == "plan")
    assert plan.kind.value == "credit" and plan.path == PLAN and plan.method == "GET" and not plan.proves
