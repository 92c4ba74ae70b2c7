"""The Fly machine config: guest, env, mounts, delivered file, services, checks, metadata."""

from __future__ import annotations

import base64

import pytest

from agents_config.gates import FeatureGates
from agents_config.machine_config import CONFIG_GUEST_PATH, render_machine_config, render_volume_request
from agents_config.openclaw_config import render_openclaw_config
from tests.support.agent_configs import catalogs, default_catalog, platform_catalog, spec


def _machine(plan: str, catalog=None, **fields):
    catalog = catalog or default_catalog()
    tenant = spec(plan=plan, byok_providers=["openai"], platform_keys=["moonshot", "anthropic"], **fields)
    return tenant, catalog, render_machine_config(tenant, catalog, volume_id="vol_123abc")


def test_shape_of_an_always_on_plan() -> None:
    tenant, catalog, m = _machine("pro", desired_rev=42)
    rendered = render_openclaw_config(tenant, catalog)
    assert m["image"] == tenant.image
    assert m["init"]["cmd"] == [
        "node",
        "dist/index.js",
        "gateway",
        "--allow-unconfigured",
        "--port",
        "3000",
        "--bind",
        "lan",
    ]
    assert m["env"]["OPENCLAW_STATE_DIR"] == "/data" and m["env"]["OPENCLAW_CONFIG_PATH"] == CONFIG_GUEST_PATH
    assert m["env"]["NODE_OPTIONS"] == "--max-old-space-size=1536"
    assert m["mounts"] == [{"volume": "vol_123abc", "path": "/data"}]
    (file,) = m["files"]
    assert file["guest_path"] == CONFIG_GUEST_PATH
    assert base64.b64decode(file["raw_value"]) == rendered.content
    (service,) = m["services"]
    assert service["internal_port"] == 3000
    assert service["ports"] == [
        {"port": 443, "handlers": ["tls", "http"]},
        {"port": 80, "handlers": ["http"], "force_https": True},
    ]
    assert (service["autostop"], service["autostart"], service["min_machines_running"]) == ("off", True, 1)
    (check,) = service["checks"]
    assert (check["path"], check["interval"], check["timeout"], check["grace_period"]) == (
        "/startupz",
        "15s",
        "5s",
        "2m",
    )
    assert m["restart"]["policy"] == "on-failure" and m["restart"]["max_retries"] > 0
    assert m["metadata"] == {
        "tenant_id": tenant.tenant_id,
        "desired_rev": "42",
        "openclaw_config_hash": rendered.sha256,
        "plan": "pro",
    }


def test_sleep_when_idle_plans_autostop() -> None:
    _, _, m = _machine("starter")
    (service,) = m["services"]
    assert (service["autostop"], service["autostart"], service["min_machines_running"]) == ("stop", True, 0)


@pytest.mark.parametrize("catalog_name", ["default", "platform-tiers"])
def test_guest_sizes_obey_flyctl_rules(catalog_name: str) -> None:
    catalog = catalogs()[catalog_name]
    for plan_id in catalog.plan_ids:
        _, _, m = _machine(plan_id, catalog)
        g = m["guest"]
        assert g["cpu_kind"] == "shared" and g["cpus"] in (1, 2, 4, 6, 8)
        assert g["memory_mb"] % 256 == 0 and 256 * g["cpus"] <= g["memory_mb"] <= 2048 * g["cpus"]
        assert (m["services"][0]["autostop"] == "stop") == FeatureGates.for_plan(
            catalog.plan(plan_id)
        ).sleep_when_idle


def test_volume_request_follows_the_plan() -> None:
    tenant = spec(plan="power", byok_providers=["openai"], region="ams")
    assert render_volume_request(tenant, default_catalog()) == {
        "name": "openclaw_data",
        "region": "ams",
        "size_gb": 10,
        "encrypted": True,
    }
    assert render_volume_request(spec(plan="premium"), platform_catalog())["size_gb"] == 3


def test_bad_volume_id_is_refused() -> None:
    tenant = spec(plan="pro", byok_providers=["openai"])
    with pytest.raises(ValueError, match="volume_id"):
        render_machine_config(tenant, default_catalog(), volume_id="../etc")
