"""The tenant's Fly machine config (Machines API ``MachineConfig``) and its volume request.

Only non-secret values go in: env holds paths and Node options, the delivered file is the OpenClaw
config (which refers to secrets by variable name), metadata holds ids, revision and config hash.
Secrets reach the machine as Fly app secrets, never through this dict.
"""

from __future__ import annotations

import base64
from typing import Any

from agents_config.catalog import PlanCatalog
from agents_config.gates import FeatureGates
from agents_config.leakcheck import assert_no_secret_like_values
from agents_config.openclaw_config import (
    GATEWAY_PORT,
    STATE_DIR,
    RenderedOpenClawConfig,
    WebhookListener,
    render_openclaw_config,
)
from agents_config.spec import TenantSpec

# Delivered through ``config.files`` on the root filesystem: regenerated on every boot, so the
# control plane stays the owner of the config (in-gateway edits do not survive a restart).
CONFIG_GUEST_PATH = "/etc/openclaw/openclaw.json"
CONFIG_FILE_MODE = 0o644
VOLUME_NAME = "openclaw_data"
RESTART_MAX_RETRIES = 10
GATEWAY_CMD: tuple[str, ...] = (
    "node",
    "dist/index.js",
    "gateway",
    "--allow-unconfigured",
    "--port",
    str(GATEWAY_PORT),
    "--bind",
    "lan",
)

# Machine metadata keys (the reconciler and the poller read them back).
META_TENANT_ID = "tenant_id"
META_DESIRED_REV = "desired_rev"
META_CONFIG_HASH = "openclaw_config_hash"
META_PLAN = "plan"


def _node_heap_mb(memory_mb: int) -> int:
    return memory_mb * 3 // 4  # 2048 MB → 1536, as upstream


def _scaling(gates: FeatureGates, autostart: bool = True) -> dict[str, Any]:
    # Every service of the machine gets the same policy: any of them may wake it (Fly's proxy only).
    if not autostart:
        # A stopped tenant (billing, operator): nothing reaching Fly's proxy may start it again.
        return {"autostop": "off", "autostart": False, "min_machines_running": 0}
    if gates.sleep_when_idle:
        return {"autostop": "stop", "autostart": True, "min_machines_running": 0}
    return {"autostop": "off", "autostart": True, "min_machines_running": 1}


def _webhook_service(gates: FeatureGates, listener: WebhookListener, autostart: bool) -> dict[str, Any]:
    """A webhook listener (e.g. Telegram's) on its own public TLS port, so an inbound update wakes
    a sleeping machine."""
    return {
        "protocol": "tcp",
        "internal_port": listener.internal_port,
        "ports": [{"port": listener.public_port, "handlers": ["tls", "http"]}],
        **_scaling(gates, autostart),
    }


def _service(gates: FeatureGates, autostart: bool) -> dict[str, Any]:
    service: dict[str, Any] = {
        "protocol": "tcp",
        "internal_port": GATEWAY_PORT,
        "ports": [
            {"port": 443, "handlers": ["tls", "http"]},
            {"port": 80, "handlers": ["http"], "force_https": True},
        ],
        "checks": [
            {
                "type": "http",
                "method": "GET",
                "path": "/startupz",
                "protocol": "http",
                "interval": "15s",
                "timeout": "5s",
                "grace_period": "2m",
            }
        ],
    }
    service.update(_scaling(gates, autostart))
    return service


def render_machine_config(
    spec: TenantSpec,
    catalog: PlanCatalog,
    *,
    volume_id: str,
    openclaw: RenderedOpenClawConfig | None = None,
    autostart: bool = True,
) -> dict[str, Any]:
    """The whole MachineConfig to send on create or update (Fly has no partial update).

    ``openclaw`` is the already rendered config (rendered here when None). ``autostart=False`` is
    for a stopped tenant: Fly's proxy must not start the machine for any request. Raises like
    :func:`render_openclaw_config`, and ``ValueError`` for a malformed volume id.
    """
    if not volume_id.startswith("vol_") or not volume_id[4:].isalnum():
        raise ValueError("volume_id: expected a Fly volume id like 'vol_abc123'")
    plan = catalog.plan(spec.plan)
    gates = FeatureGates.for_plan(plan)
    rendered = openclaw if openclaw is not None else render_openclaw_config(spec, catalog)
    size = plan.machine
    config: dict[str, Any] = {
        "image": spec.image,
        "guest": {"cpu_kind": size.cpu_kind, "cpus": size.cpus, "memory_mb": size.memory_mb},
        "env": {
            "NODE_ENV": "production",
            "NODE_OPTIONS": f"--max-old-space-size={_node_heap_mb(size.memory_mb)}",
            "OPENCLAW_CONFIG_PATH": CONFIG_GUEST_PATH,
            "OPENCLAW_PREFER_PNPM": "1",
            "OPENCLAW_STATE_DIR": STATE_DIR,
        },
        "init": {"cmd": list(GATEWAY_CMD)},
        "mounts": [{"volume": volume_id, "path": STATE_DIR}],
        "services": [
            _service(gates, autostart),
            *(_webhook_service(gates, w, autostart) for w in rendered.webhook_listeners),
        ],
        "restart": {"policy": "on-failure", "max_retries": RESTART_MAX_RETRIES},
        "metadata": {
            META_TENANT_ID: spec.tenant_id,
            META_DESIRED_REV: str(spec.desired_rev),
            META_CONFIG_HASH: rendered.sha256,
            META_PLAN: plan.id,
        },
    }
    # Everything but the file (base64 looks random) is scanned; the file's JSON was scanned already.
    assert_no_secret_like_values(config, what="machine config")
    config["files"] = [
        {
            "guest_path": CONFIG_GUEST_PATH,
            "raw_value": base64.b64encode(rendered.content).decode("ascii"),
            "mode": CONFIG_FILE_MODE,
        }
    ]
    return config


def render_volume_request(spec: TenantSpec, catalog: PlanCatalog) -> dict[str, Any]:
    """Body for ``POST /apps/{app}/volumes``: name, region and the plan's size."""
    plan = catalog.plan(spec.plan)
    return {
        "name": VOLUME_NAME,
        "region": spec.region,
        "size_gb": plan.machine.volume_size_gb,
        "encrypted": True,
    }


__all__ = [
    "CONFIG_GUEST_PATH",
    "GATEWAY_CMD",
    "META_CONFIG_HASH",
    "META_DESIRED_REV",
    "META_PLAN",
    "META_TENANT_ID",
    "VOLUME_NAME",
    "render_machine_config",
    "render_volume_request",
]
