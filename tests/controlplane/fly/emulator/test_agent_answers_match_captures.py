"""The emulated agent answers every captured probe and command of the real OpenClaw 2026.9.6 with the
same shape and meaning (captures: tests/support/openclaw_captures, comparison: agent_conformance)."""

from __future__ import annotations

import pytest

from tests.support.agent_conformance import SCENARIOS, capture_names, differences, emulate, load_capture


def test_every_capture_has_a_scenario() -> None:
    assert set(capture_names()) == set(SCENARIOS)


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_emulator_matches_the_real_capture(name: str) -> None:
    real = load_capture(name)
    assert real["probes"] or real["commands"]
    emulated = await emulate(real)
    assert differences(real, emulated) == []


async def test_the_comparison_catches_a_changed_shape_or_meaning() -> None:
    real = load_capture("billing")
    broken = await emulate(real)
    status = broken["commands"][0]["stdout"]
    assert broken["commands"][0]["argv"] == ["openclaw", "models", "status", "--json"]
    status["auth"]["unusableProfiles"][0]["reason"] = "auth"
    del status["auth"]["oauth"]
    status["auth"]["unusableProfiles"][0]["until"] = "soon"
    problems = differences(real, broken)
    assert any("real means" in p and "billing" in p for p in problems)
    assert any("emulated lacks ['oauth']" in p for p in problems)
    assert any("until: real number, emulated string" in p for p in problems)
