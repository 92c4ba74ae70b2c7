"""What the health sweep reads from the agent, parsed from what the REAL OpenClaw 2026.9.6 printed
(``tests/support/openclaw_captures``), and the banner rules (thresholds, flapping, clearing, audit)
on every database backend."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from controlplane import banners
from controlplane.banners import Finding, Observation
from controlplane.db.models import AuditLog, Banner
from controlplane.enums import BannerKind, KeyVerdict
from controlplane.settings import SettingsError, load_settings
from workers import agent_report

CAPTURES = Path(__file__).resolve().parents[1] / "support" / "openclaw_captures"
NOW = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def captured(scenario: str, *argv_start: str) -> Any:
    data = json.loads((CAPTURES / f"{scenario}.json").read_text())
    for command in data["commands"]:
        if tuple(command["argv"][: len(argv_start)]) == argv_start:
            return command["stdout"]
    for probe in data["probes"]:
        if probe["path"] == argv_start[0]:
            return probe
    raise KeyError(argv_start)


@pytest.mark.parametrize(
    ("scenario", "verdict"),
    [
        ("billing", KeyVerdict.no_credit),
        ("auth", KeyVerdict.invalid_key),
        ("auth_permanent", KeyVerdict.revoked_or_blocked),
    ],
)
def test_the_agents_unusable_credentials_map_to_the_one_verdict_vocabulary(
    scenario: str, verdict: KeyVerdict
) -> None:
    status = captured(scenario, "openclaw", "models", "status")
    [item] = agent_report.unusable_keys(status)
    assert (item.provider, item.verdict) == ("anthropic", verdict)
    assert agent_report.unusable_keys(captured("healthy", "openclaw", "models", "status")) == []


def test_a_failing_channel_from_the_real_status_and_readyz() -> None:
    [telegram] = agent_report.channel_health(captured("channel_failed", "openclaw", "channels", "status"))
    assert (telegram.channel, telegram.ok, telegram.state) == ("telegram", False, "error")
    assert telegram.detail is not None and "Unauthorized" in telegram.detail
    probe = captured("channel_failed", "/readyz")
    ready = agent_report.readiness(probe["status"], probe["body"])
    assert ready.reachable and not ready.ready and ready.failing_channels == ("telegram",)
    assert agent_report.readiness(200, {"ready": True}).ready
    assert not agent_report.readiness(502, None).reachable
    assert not agent_report.readiness(503, {"ready": False, "failing": ["startup"]}).reachable


def test_usage_per_day_provider_and_model_from_the_real_sessions_usage() -> None:
    rows = agent_report.daily_usage(captured("usage", "openclaw", "gateway", "call"))
    [(day, [row])] = list(rows.items())
    assert day == date(2026, 12, 2)
    assert (row.provider, row.model, row.input_tokens, row.output_tokens) == (
        "anthropic",
        "claude-sonnet-4-6",
        1200,
        42,
    )
    assert row.cost_microusd is None  # OpenClaw had no price for it (missingCostEntries)


def test_output_that_is_not_json_is_ignored_without_echoing_it() -> None:
    assert agent_report.parse_json("sk-ant-api03-secret not json") is None
    assert agent_report.parse_json('[secrets] warning\n{"auth": {}}') == {"auth": {}}


def test_thresholds_come_from_settings() -> None:
    s = load_settings(banner_thresholds="agent_down=5")
    limits = banners.thresholds(s.banner_thresholds)
    assert limits[BannerKind.agent_down] == 5 and limits[BannerKind.channel_down] == 3
    with pytest.raises(SettingsError):
        load_settings(banner_thresholds="agent_down=0")


def scope(*kinds: BannerKind) -> frozenset[BannerKind]:
    return frozenset(kinds)


async def test_a_banner_rises_at_its_threshold_flapping_raises_nothing_and_good_clears(
    db, tenant_factory
) -> None:
    tenant = (await tenant_factory()).id
    down = Observation(tenant, scope(BannerKind.agent_down), (Finding(BannerKind.agent_down),))
    good = Observation(tenant, scope(BannerKind.agent_down))
    limits = banners.thresholds()

    async def see(*observations: Observation) -> list[banners.Change]:
        changes = []
        for obs in observations:
            async with db.transaction() as s:
                changes += await banners.observe(s, [obs], now=NOW, actor="poller", limits=limits)
        return changes

    assert await see(down, good, down, good, down, down) == []  # never three in a row
    [raised] = await see(down)
    assert raised.raised and raised.kind is BannerKind.agent_down
    assert await see(down) == []  # already up: no second raise
    [cleared] = await see(good)
    assert not cleared.raised
    async with db.read() as s:
        row = await s.scalar(select(Banner).where(Banner.tenant_id == tenant))
        assert row is not None and not row.active and row.consecutive_bad == 0 and row.subject == ""
        assert "not responding" in row.message
        actions = (await s.scalars(select(AuditLog.action).where(AuditLog.tenant_id == tenant))).all()
    assert [a for a in actions if a.startswith("banner.")] == ["banner.raised", "banner.cleared"]


async def test_banners_per_subject_and_kinds_out_of_scope_are_left_alone(db, tenant_factory) -> None:
    tenant = (await tenant_factory()).id
    both = Observation(
        tenant,
        scope(BannerKind.channel_down, BannerKind.key_invalid),
        (
            Finding(BannerKind.channel_down, "telegram"),
            Finding(BannerKind.channel_down, "discord"),
            Finding(BannerKind.key_invalid, "openai"),
        ),
    )
    for _ in range(3):
        async with db.transaction() as s:
            await banners.observe(s, [both], now=NOW, actor="poller")
    only_keys = Observation(tenant, scope(BannerKind.key_invalid))  # channels not looked at this time
    async with db.transaction() as s:
        changes = await banners.observe(s, [only_keys], now=NOW, actor="poller")
    assert [(c.kind, c.subject, c.raised) for c in changes] == [(BannerKind.key_invalid, "openai", False)]
    async with db.read() as s:
        up = {(r.kind, r.subject) for r in await s.scalars(select(Banner).where(Banner.active.is_(True)))}
    assert up == {(BannerKind.channel_down, "telegram"), (BannerKind.channel_down, "discord")}


async def test_set_banner_raises_and_clears_at_once_with_an_audit_row_each(db, tenant_factory) -> None:
    tenant = (await tenant_factory()).id
    async with db.transaction() as s:
        assert await banners.set_banner(
            s, tenant, BannerKind.payment_failed, active=True, now=NOW, actor="webhook", reason="invoice"
        )
        assert not await banners.set_banner(
            s, tenant, BannerKind.payment_failed, active=True, now=NOW, actor="webhook", reason="again"
        )
    async with db.transaction() as s:
        assert await banners.set_banner(
            s, tenant, BannerKind.payment_failed, active=False, now=NOW, actor="webhook", reason="paid"
        )
    async with db.read() as s:
        actions = (await s.scalars(select(AuditLog.action).where(AuditLog.tenant_id == tenant))).all()
    assert [a for a in actions if a.startswith("banner.")] == ["banner.raised", "banner.cleared"]
