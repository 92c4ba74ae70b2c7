"""Service caps (check = one indexed read; report idempotent per report id; UTC months; services a
plan does not include) and the agent's own usage (the poller's upsert, the API's read); on SQLite
and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import event, select

from controlplane.dashboard.caps import ServiceCaps, month_of, next_month_start
from controlplane.dashboard.usage import DailyUsage, micro_to_usd, record_daily_usage, usd_to_micro
from controlplane.db.models import ServiceUsage, ServiceUsageReport
from controlplane.db.session import Database
from controlplane.enums import UsageService
from controlplane.testing import FakeClock
from tests.support.api import BASE, ApiHarness, api_harness


@contextmanager
def counting_queries(db: Database) -> Iterator[list[str]]:
    """The SQL statements run meanwhile (SELECT/INSERT/UPDATE/DELETE only)."""
    seen: list[str] = []

    def before(_conn, _cursor, statement, _params, _context, _many) -> None:  # type: ignore[no-untyped-def]
        if statement.lstrip().upper().startswith(("SELECT", "INSERT", "UPDATE", "DELETE", "WITH")):
            seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", before)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", before)


async def test_a_cap_check_is_one_read_and_answers_allowed_used_limit(api: ApiHarness) -> None:
    await api.tenant("capper", plan="pro")
    with counting_queries(api.db) as queries:
        r = await api.client.get(f"{BASE}/capper/caps/web_search", params={"amount": 5})
    assert r.status_code == 200
    body = r.json()
    assert (body["included"], body["allowed"], body["used"], body["limit"], body["remaining"]) == (
        True,
        True,
        0,
        2000,
        2000,
    )
    assert body["period"] == month_of(datetime.now(UTC))
    assert len(queries) == 1, queries  # the tenant and its counter in one indexed read
    assert "external_id" in queries[0] and "service_usage" in queries[0]


async def test_a_report_retried_five_times_counts_once(api: ApiHarness) -> None:
    tenant = await api.tenant("retry", plan="pro")
    body = {"report_id": "proxy-7:req-0001", "amount": 3}
    answers = [await api.client.post(f"{BASE}/retry/caps/web_search/reports", json=body) for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 5
    assert [a.json()["counted"] for a in answers] == [True, False, False, False, False]
    assert {a.json()["cap"]["used"] for a in answers} == {3}
    # and five retries at the same moment count once as well
    burst = {"report_id": "proxy-7:req-0002", "amount": 4}
    results = await asyncio.gather(
        *(api.client.post(f"{BASE}/retry/caps/web_search/reports", json=burst) for _ in range(5))
    )
    assert sorted(r.json()["counted"] for r in results) == [False, False, False, False, True]
    async with api.db.transaction() as s:
        used = await s.scalar(select(ServiceUsage.used).where(ServiceUsage.tenant_id == tenant.id))
        reports = list(await s.scalars(select(ServiceUsageReport.report_id)))
    assert used == 7 and sorted(reports) == ["proxy-7:req-0001", "proxy-7:req-0002"]
    check = (await api.client.get(f"{BASE}/retry/caps/web_search")).json()
    assert (check["used"], check["remaining"]) == (7, 1993)


async def test_a_reused_report_id_with_other_content_is_refused(api: ApiHarness) -> None:
    await api.tenant("reuse", plan="pro")
    first = await api.client.post(f"{BASE}/reuse/caps/email/reports", json={"report_id": "r-1", "amount": 1})
    assert first.status_code == 200
    other = await api.client.post(f"{BASE}/reuse/caps/email/reports", json={"report_id": "r-1", "amount": 2})
    assert other.status_code == 409 and other.json()["error"]["field"] == "report_id"
    elsewhere = await api.client.post(
        f"{BASE}/reuse/caps/browser_minutes/reports", json={"report_id": "r-1", "amount": 1}
    )
    assert elsewhere.status_code == 409


async def test_a_plan_without_phone_answers_not_allowed_not_zero_of_zero(api: ApiHarness) -> None:
    await api.tenant("nophone", plan="starter")
    r = await api.client.get(f"{BASE}/nophone/caps/phone_minutes")
    assert r.status_code == 200
    body = r.json()
    assert body["included"] is False and body["allowed"] is False
    assert body["used"] is None and body["limit"] is None and body["remaining"] is None
    assert "not included in the Starter plan" in body["reason"]
    report = await api.client.post(
        f"{BASE}/nophone/caps/phone_minutes/reports", json={"report_id": "call-1", "amount": 2}
    )
    assert report.status_code == 409 and report.json()["error"]["field"] == "service"
    overview = (await api.client.get(f"{BASE}/nophone/caps")).json()
    assert {c["service"]: c["included"] for c in overview["caps"]} == {
        "web_search": True,
        "browser_minutes": True,
        "email": True,
        "phone_minutes": False,
    }


async def test_using_up_a_cap_and_the_utc_month_boundary(db: Database) -> None:
    clock = FakeClock(start=datetime(2026, 11, 30, 23, 59, 0, tzinfo=UTC))
    async with api_harness(db, clock=clock.now) as api:
        await api.tenant("month", plan="starter")  # 100 emails a month
        url = f"{BASE}/month/caps/email"
        r = await api.client.post(f"{url}/reports", json={"report_id": "nov-1", "amount": 99})
        assert r.json()["cap"]["remaining"] == 1 and r.json()["cap"]["allowed"] is True
        too_much = (await api.client.get(url, params={"amount": 2})).json()
        assert too_much["allowed"] is False and "Only 1 of" in too_much["reason"]
        await api.client.post(f"{url}/reports", json={"report_id": "nov-2", "amount": 1})
        spent = (await api.client.get(url)).json()
        assert (spent["allowed"], spent["remaining"], spent["period"]) == (False, 0, "2026-11")
        assert "reset on 2026-12-01" in spent["reason"]

        await clock.advance(120)  # 2026-12-01 00:01 UTC: a new month
        fresh = (await api.client.get(url)).json()
        assert (fresh["allowed"], fresh["used"], fresh["period"]) == (True, 0, "2026-12")
        # a late report of November usage counts in November, not December
        late = await api.client.post(
            f"{url}/reports",
            json={"report_id": "nov-3", "amount": 5, "occurred_at": "2026-11-30T23:58:00Z"},
        )
        assert late.status_code == 200 and late.json()["cap"]["used"] == 0
        too_old = await api.client.post(
            f"{url}/reports", json={"report_id": "oct-1", "amount": 1, "occurred_at": "2026-10-31T12:00:00Z"}
        )
        assert too_old.status_code == 422 and too_old.json()["error"]["field"] == "occurred_at"
        future = await api.client.post(
            f"{url}/reports", json={"report_id": "x-1", "amount": 1, "occurred_at": "2026-12-02T00:00:00Z"}
        )
        assert future.status_code == 422
        async with db.transaction() as s:
            rows = dict((p, u) for p, u in await s.execute(select(ServiceUsage.period, ServiceUsage.used)))
        assert rows == {"2026-11": 105}
        await api.assert_nothing_leaked()


def test_month_arithmetic_is_utc() -> None:
    from zoneinfo import ZoneInfo

    late_new_york = datetime(2026, 11, 30, 20, 0, tzinfo=ZoneInfo("America/New_York"))  # Dec 1, 01:00 UTC
    assert month_of(late_new_york) == "2026-12"
    assert next_month_start(datetime(2026, 12, 31, 23, 0, tzinfo=UTC)) == datetime(2027, 1, 1, tzinfo=UTC)


async def test_cap_service_reads_without_the_api(db: Database) -> None:
    from agents_config.catalog import load_catalog

    async with api_harness(db) as api:
        await api.tenant("direct", plan="power")
    caps = ServiceCaps(db, load_catalog())
    state = await caps.check("direct", UsageService.phone_minutes, 120)
    assert state.allowed and state.limit == 120
    assert not (await caps.check("direct", UsageService.phone_minutes, 121)).allowed


async def test_usage_rows_are_the_agents_daily_totals(api: ApiHarness) -> None:
    tenant = await api.tenant("tokens")
    day1, day2 = date(2026, 11, 20), date(2026, 11, 21)
    async with api.db.transaction() as s:
        await record_daily_usage(
            s,
            tenant.id,
            day1,
            [
                DailyUsage("anthropic", "claude-sonnet-4-6", 1000, 200, cost_microusd=usd_to_micro("0.0072")),
                DailyUsage("openai", "gpt-5.4-mini", 50, 10, cache_read_tokens=5),
            ],
        )
    async with api.db.transaction() as s:  # the poller reads again later: totals replace, never add
        await record_daily_usage(
            s,
            tenant.id,
            day1,
            [DailyUsage("anthropic", "claude-sonnet-4-6", 1500, 300, cost_microusd=usd_to_micro(0.0108))],
        )
        await record_daily_usage(
            s, tenant.id, day2, [DailyUsage("anthropic", "claude-sonnet-4-6", 10, 1, cost_microusd=37)]
        )
    r = await api.client.get(f"{BASE}/tokens/usage", params={"since": "2026-11-01", "until": "2026-11-30"})
    assert r.status_code == 200
    body = r.json()
    assert [(d["day"], d["provider"], d["total_tokens"], d["cost_usd"]) for d in body["days"]] == [
        ("2026-11-20", "anthropic", 1800, "0.010800"),
        ("2026-11-20", "openai", 65, None),
        ("2026-11-21", "anthropic", 11, "0.000037"),
    ]
    assert body["totals"] == [
        {"provider": "anthropic", "model": "claude-sonnet-4-6", "total_tokens": 1811, "cost_usd": "0.010837"},
        {"provider": "openai", "model": "gpt-5.4-mini", "total_tokens": 65, "cost_usd": None},
    ]
    empty = (
        await api.client.get(f"{BASE}/tokens/usage", params={"since": "2026-11-21", "until": "2026-11-21"})
    ).json()
    assert len(empty["days"]) == 1
    backwards = await api.client.get(
        f"{BASE}/tokens/usage", params={"since": "2026-11-22", "until": "2026-11-21"}
    )
    assert backwards.status_code == 422 and backwards.json()["error"]["field"] == "since"
    too_long = await api.client.get(
        f"{BASE}/tokens/usage", params={"since": "2024-01-01", "until": "2026-11-21"}
    )
    assert too_long.status_code == 422
    default = (await api.client.get(f"{BASE}/tokens/usage")).json()
    assert date.fromisoformat(default["until"]) - date.fromisoformat(default["since"]) == timedelta(days=29)


def test_usage_rows_refuse_nonsense() -> None:
    import pytest

    with pytest.raises(ValueError):
        DailyUsage("anthropic", "m", input_tokens=-1)
    with pytest.raises(ValueError):
        DailyUsage("", "m")
    assert micro_to_usd(1_234_567) == "1.234567" and usd_to_micro("1.2345675") == 1_234_568
