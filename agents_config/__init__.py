"""Pure agent configuration: plan catalog, feature gates, model routing, OpenClaw and Fly configs.

No I/O (except :func:`load_catalog`), no database, no HTTP; imports only stdlib and pydantic.
"""

from agents_config.catalog import (
    CatalogError,
    Plan,
    PlanCatalog,
    UnknownPlanError,
    load_catalog,
    parse_catalog_text,
)
from agents_config.gates import FeatureGates
from agents_config.leakcheck import SecretLikeValueError
from agents_config.machine_config import render_machine_config, render_volume_request
from agents_config.openclaw_config import RenderedOpenClawConfig, SecretEnv, render_openclaw_config
from agents_config.routing import NoUsableModelError, RoutingDecision, route_models
from agents_config.spec import ChannelSpec, TenantSpec

__all__ = [
    "CatalogError",
    "ChannelSpec",
    "FeatureGates",
    "NoUsableModelError",
    "Plan",
    "PlanCatalog",
    "RenderedOpenClawConfig",
    "RoutingDecision",
    "SecretEnv",
    "SecretLikeValueError",
    "TenantSpec",
    "UnknownPlanError",
    "load_catalog",
    "parse_catalog_text",
    "render_machine_config",
    "render_openclaw_config",
    "render_volume_request",
    "route_models",
]
