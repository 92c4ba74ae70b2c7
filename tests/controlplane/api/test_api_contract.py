"""The API against its own published OpenAPI contract, with schemathesis, on SQLite and PostgreSQL.

Every operation of ``/openapi.json`` gets schema-valid requests (a share of them addressed to seeded
tenants, so they reach past the 404) and schema-violating ones, sent through the real app in
process. Each response is checked by schemathesis (no 5xx, a documented status, the declared
content type and body schema, invalid input refused); then every operation is sent again without a
token and must answer 401. The numbers of requests are counted and asserted (>= 500 per backend,
so >= 1,000 in all).

Hypothesis runs in a worker thread (it drives the cases synchronously) while the app and the
database stay on the test's event loop; each request is handed to the loop and awaited there.
Derandomized: the same cases every run.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable
from datetime import UTC, date, datetime
from typing import Any

import httpx
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.specs.openapi import checks as openapi_checks

from controlplane.dashboard.usage import DailyUsage, record_daily_usage
from controlplane.db.models import Announcement, Banner
from controlplane.enums import BannerKind
from tests.support.api import ApiHarness, own_auth_paths, telegram_token

POSITIVE_EXAMPLES = 16  # per operation
NEGATIVE_EXAMPLES = 8  # per operation
MIN_REQUESTS_PER_BACKEND = 500
TENANTS = ("alice", "sam", "pat")

# Checks that re-send the request themselves over `requests` to a live server; these requests go
# through the app in process instead, and the unauthenticated pass below does what ignored_auth does.
RESENDING = [
    openapi_checks.ignored_auth,
    openapi_checks.unsupported_method,
    openapi_checks.missing_required_header,
]

# Schema-valid requests may still break a rule the schema cannot express (a key's shape for its
# provider, sender ids per channel, a model the plan does not offer, dates in order): those answer
# 422 like schema violations do. Anything else outside this list (400, 405, 413, 3xx, 5xx) fails.
CONFIG = schemathesis.Config.from_str(
    """
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "404", "409", "422"]
"""
)


async def _seed(api: ApiHarness) -> None:
    alice = await api.tenant("alice", plan="pro")
    await api.tenant("sam", plan="starter")
    await api.tenant("pat", plan="power")
    await api.fly(
        alice, app_name="oc-alice", machine_id="e784079b449483", observed_state="started", observed_rev=1
    )
    r = await api.client.put("/v1/tenants/alice/keys/openai", json={"key": api.key("openai")})
    assert r.status_code == 200
    r = await api.client.put(
        "/v1/tenants/alice/channels/telegram", json={"bot_token": api.secret(telegram_token(77))}
    )
    assert r.status_code == 201
    async with api.db.transaction() as s:
        s.add(Banner(tenant_id=alice.id, kind=BannerKind.key_no_credit, subject="openai", active=True))
        s.add(Announcement(tenant_id=None, kind="maintenance", title="Maintenance", body="Sunday"))
        await record_daily_usage(
            s,
            alice.id,
            datetime.now(UTC).date(),
            [DailyUsage("openai", "gpt-5.4-mini", 100, 20, cost_microusd=42)],
        )
        await record_daily_usage(s, alice.id, date(2026, 1, 1), [DailyUsage("openai", "gpt-5.4", 1, 1)])


def _httpx_kwargs(case: schemathesis.Case) -> dict[str, Any]:
    sent = case.as_transport_kwargs(base_url="http://api.test")
    kwargs: dict[str, Any] = {
        "method": sent["method"],
        "url": sent["url"],
        "headers": {k: v for k, v in sent.get("headers", {}).items() if k.lower() != "authorization"},
        "params": sent.get("params") or None,
    }
    if "json" in sent:
        kwargs["json"] = sent["json"]
    elif sent.get("data") is not None:
        data = sent["data"]
        kwargs["content"] = data if isinstance(data, bytes) else str(data).encode()
    return kwargs


def _check_operation(
    operation: Any,
    mode: GenerationMode,
    examples: int,
    send: Callable[[httpx.AsyncClient, dict[str, Any]], httpx.Response],
    client: httpx.AsyncClient,
    counts: Counter[str],
) -> None:
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        derandomize=True,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode), tenant=st.sampled_from((*TENANTS, None)))
    def one(case: schemathesis.Case, tenant: str | None) -> None:
        if mode is GenerationMode.POSITIVE and tenant and "external_id" in (case.path_parameters or {}):
            case.path_parameters["external_id"] = tenant
        response = send(client, _httpx_kwargs(case))
        counts[f"{mode.value}:{response.status_code}"] += 1
        case.validate_response(response, excluded_checks=RESENDING)

    one()


def _unauthenticated_operation(
    operation: Any,
    send: Callable[[httpx.AsyncClient, dict[str, Any]], httpx.Response],
    client: httpx.AsyncClient,
    counts: Counter[str],
) -> None:
    @settings(
        max_examples=4,
        deadline=None,
        database=None,
        derandomize=True,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy())
    def bare(case: schemathesis.Case) -> None:
        response = send(client, _httpx_kwargs(case))
        counts["anonymous"] += 1
        if operation.path in own_auth_paths():
            assert response.status_code < 500
        else:
            assert response.status_code == 401, (case.method, case.path, response.text)

    bare()


def _drive(api: ApiHarness, spec: dict[str, Any], loop: asyncio.AbstractEventLoop) -> Counter[str]:
    """Run every operation's cases (in this worker thread); returns counts by kind and status."""
    schema = schemathesis.openapi.from_dict(spec, config=CONFIG)
    counts: Counter[str] = Counter()

    def send(client: httpx.AsyncClient, kwargs: dict[str, Any]) -> httpx.Response:
        return asyncio.run_coroutine_threadsafe(client.request(**kwargs), loop).result(timeout=60)

    for result in schema.get_all_operations():
        operation = result.ok()
        _check_operation(operation, GenerationMode.POSITIVE, POSITIVE_EXAMPLES, send, api.client, counts)
        if operation.path not in own_auth_paths():  # the open routes take no input to get wrong
            _check_operation(operation, GenerationMode.NEGATIVE, NEGATIVE_EXAMPLES, send, api.client, counts)
        _unauthenticated_operation(operation, send, api.anonymous, counts)
    return counts


async def test_the_api_keeps_its_published_contract(api: ApiHarness) -> None:
    await _seed(api)
    spec = (await api.anonymous.get("/openapi.json")).json()
    assert spec["openapi"].startswith("3.1")
    loop = asyncio.get_running_loop()
    counts = await asyncio.to_thread(_drive, api, spec, loop)
    bare = counts.pop("anonymous")

    total = sum(counts.values())
    assert total >= MIN_REQUESTS_PER_BACKEND, counts
    assert not [k for k in counts if k.split(":")[1].startswith("5")], counts
    # the seeded tenants were reached: successful answers, not only 404s and 422s
    assert sum(n for k, n in counts.items() if k.startswith("positive:2")) >= 100, counts
    assert bare >= len(spec["paths"])
    print(f"schemathesis: {total} requests ({dict(sorted(counts.items()))}), {bare} more without a token")
