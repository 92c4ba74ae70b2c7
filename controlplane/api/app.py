"""The dashboard API's FastAPI application: :func:`create_app`.

Layers, outside in: :class:`~controlplane.api.telemetry.Telemetry` (request id, JSON access log,
metrics), :class:`~controlplane.api.limits.BodyLimit` (413 before any parsing), the routers. Every
dashboard router requires a service token; ``/healthz``, ``/readyz``, ``/metrics`` and
``/openapi.json`` are open. Every error is the one JSON shape of :mod:`controlplane.api.errors`.

Other areas' routers are mounted as given, without the service token (the Stripe webhook of issue
12 authenticates by Stripe's signature): list them in :func:`mounted_routers`, which ``controlplane
serve`` uses, or pass ``extra_routers`` (tests). Routes only change desired state (through the
services) and read; nothing here calls Fly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from importlib import metadata

from fastapi import APIRouter, Depends, FastAPI

from agents_config.catalog import PlanCatalog, load_catalog
from controlplane.api.auth import require_service_token
from controlplane.api.context import ApiContext
from controlplane.api.errors import install_error_handlers
from controlplane.api.limits import BodyLimit
from controlplane.api.routes import channels, health, keys, model, status, usage
from controlplane.api.telemetry import ApiMetrics, Telemetry
from controlplane.billing.webhook import WebhookIngestor
from controlplane.billing.webhook_route import webhook_router
from controlplane.byok.service import KeyService
from controlplane.byok.validate import KeyValidator
from controlplane.dashboard.caps import ServiceCaps
from controlplane.dashboard.channels import ChannelService
from controlplane.db.models import utcnow
from controlplane.db.session import Database
from controlplane.settings import Settings, get_settings
from controlplane.vault import Vault

#: The routers that need a service token, in the order the OpenAPI document lists them.
DASHBOARD_ROUTERS: tuple[APIRouter, ...] = (
    keys.router,
    channels.router,
    model.router,
    status.router,
    usage.router,
)
#: Paths that answer without a token (the contract test checks nothing else does).
OPEN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json"})

DESCRIPTION = """\
What the operator's dashboard backend calls for each user ("tenant", addressed by the operator's
own external id): provider keys, chat channels, model choice, status, banners, announcements, AI
usage, and the monthly service caps the operator's service proxies check and report.

Every dashboard route needs `Authorization: Bearer <service token>` (CP_API_TOKENS). Every error
is `{"error": {"code", "message", "field"}}` (plus `details` where a refusal has them). Writes only
change the tenant's desired state; the workers bring the agent in line. Keys and tokens travel only
in request bodies and are never returned.
"""


def _version() -> str:
    try:
        return metadata.version("openclaw-fleet-controlplane")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "0.0.0"


def mounted_routers() -> list[APIRouter]:
    """Routers of other areas served by the same app, each with its own authentication."""
    return [webhook_router()]  # Stripe's webhook: serves app.state.stripe_webhook


def create_app(
    settings: Settings | None = None,
    *,
    db: Database | None = None,
    validator: KeyValidator | None = None,
    catalog: PlanCatalog | None = None,
    vault: Vault | None = None,
    clock: Callable[[], datetime] = utcnow,
    extra_routers: Sequence[APIRouter] | None = None,
) -> FastAPI:
    """The API app. Anything not given is built from ``settings`` (default: the process settings);
    a database built here is disposed when the app shuts down. Raises ``SettingsError`` (naming
    the variable) when the vault key ring is missing."""
    settings = settings or get_settings()
    owns_db = db is None
    database = db or Database.from_url(
        settings.database_url, echo=settings.database_echo, pool_size=settings.database_pool_size
    )
    vault = vault or Vault.from_settings(settings)
    catalog = catalog or load_catalog(settings.plan_catalog)
    validator = validator or KeyValidator.from_settings(settings)
    ctx = ApiContext(
        settings=settings,
        db=database,
        catalog=catalog,
        vault=vault,
        validator=validator,
        keys=KeyService(database, vault, validator, clock=clock),
        channels=ChannelService(database, vault, catalog),
        caps=ServiceCaps(database, catalog, clock=clock),
        clock=clock,
    )

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        yield
        if owns_db:
            await database.dispose()

    app = FastAPI(
        title="OpenClaw fleet control plane: dashboard API",
        version=_version(),
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url=None,
        redoc_url=None,
        lifespan=lifespan,
    )
    metrics = ApiMetrics.create()
    app.state.ctx = ctx
    app.state.metrics = metrics
    app.state.api_tokens = tuple(t.get_secret_value().encode() for t in settings.api_tokens)
    secrets = settings.stripe_webhook_secrets()
    app.state.stripe_webhook = WebhookIngestor(database, secrets) if secrets else None
    install_error_handlers(app)
    for router in DASHBOARD_ROUTERS:
        app.include_router(router, dependencies=[Depends(require_service_token)])
    app.include_router(health.router)
    for router in mounted_routers() if extra_routers is None else extra_routers:
        app.include_router(router)
    app.add_middleware(BodyLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(Telemetry, metrics=metrics)  # outermost: sees every answer, 413s included
    return app


__all__ = ["DASHBOARD_ROUTERS", "OPEN_PATHS", "create_app", "mounted_routers"]
