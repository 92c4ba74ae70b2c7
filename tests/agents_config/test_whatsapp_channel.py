"""WhatsApp in the generated config: no token, E.164 senders, always-on plans only.

The real OpenClaw validator sees WhatsApp-enabled configs through the conformance matrix
(``tests/support/agent_configs.py``: CHANNEL_SETS 2 and 3 and a WhatsApp-only case); this file
checks what the generator decides.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from agents_config.gates import FeatureGates
from agents_config.openclaw_config import NOT_ON_SLEEPING_PLANS, render_openclaw_config
from agents_config.spec import ChannelSpec
from tests.support.agent_configs import (
    catalog_of,
    conformance_cases,
    default_catalog,
    platform_catalog,
    spec,
)

WA = ChannelSpec(kind="whatsapp", allow_from=("+15555550123", "+447700900123"))


def test_always_on_plan_enables_whatsapp_with_dm_policy_and_phone_numbers_only() -> None:
    tenant = spec(plan="pro", byok_providers=["openai"], channels=[WA])
    rendered = render_openclaw_config(tenant, default_catalog())
    assert rendered.config["channels"]["whatsapp"] == {
        "enabled": True,
        "dmPolicy": "allowlist",
        "allowFrom": ["+15555550123", "+447700900123"],
    }
    assert rendered.channels == ("whatsapp",) and rendered.dropped_channels == ()
    # no token and no app secret: the link is made by a QR scan and lives on the volume
    assert not [s for s in rendered.secret_env if s.kind == "channel"]


def test_whatsapp_without_senders_defaults_to_pairing_and_open_needs_the_wildcard() -> None:
    pairing = render_openclaw_config(
        spec(plan="power", byok_providers=["openai"], channels=[ChannelSpec(kind="whatsapp")]),
        default_catalog(),
    )
    assert pairing.config["channels"]["whatsapp"] == {"enabled": True, "dmPolicy": "pairing"}
    open_dms = render_openclaw_config(
        spec(
            plan="power",
            byok_providers=["openai"],
            channels=[ChannelSpec(kind="whatsapp", dm_policy="open")],
        ),
        default_catalog(),
    )
    assert open_dms.config["channels"]["whatsapp"]["allowFrom"] == ["*"]


def test_sleeping_plan_drops_whatsapp_with_the_reason() -> None:
    tenant = spec(
        plan="starter",
        byok_providers=["openai"],
        channels=[WA, ChannelSpec(kind="telegram", allow_from=("123456789",))],
    )
    rendered = render_openclaw_config(tenant, default_catalog())
    assert "whatsapp" not in rendered.config["channels"]
    assert rendered.channels == ("telegram",)
    assert rendered.dropped_channels == ("whatsapp",)
    assert rendered.channel_notes == (f"whatsapp: {NOT_ON_SLEEPING_PLANS}",)
    assert not FeatureGates.for_plan(default_catalog().plan("starter")).supports_channel("whatsapp")


@pytest.mark.parametrize(
    "number",
    ["15555550123", "+0123456789", "+1555", "+1234567890123456", "+1 555 555 0123", "tel:+15555550123"],
)
def test_only_e164_numbers_are_accepted_as_whatsapp_senders(number: str) -> None:
    with pytest.raises(ValidationError) as err:
        ChannelSpec(kind="whatsapp", allow_from=(number,))
    assert "allow_from[0]" in str(err.value)


def test_platform_key_plans_refuse_open_whatsapp_dms() -> None:
    tenant = spec(
        plan="premium",
        platform_keys=["anthropic"],
        channels=[ChannelSpec(kind="whatsapp", dm_policy="open")],
    )
    with pytest.raises(ValueError, match=r"channels\[0\]\.dm_policy"):
        render_openclaw_config(tenant, platform_catalog())


def test_the_conformance_matrix_puts_whatsapp_through_the_validator_on_every_always_on_plan() -> None:
    enabled = {
        name.rsplit("-", 1)[0]
        for name, tenant in conformance_cases()
        if "whatsapp" in render_openclaw_config(tenant, catalog_of(name)).config.get("channels", {})
    }
    assert {"default-pro", "default-power", "platform-tiers-premium", "platform-tiers-byok"} <= enabled
    assert "default-starter" not in enabled
