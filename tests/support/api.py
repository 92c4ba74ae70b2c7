"""The dashboard API under test: the real app on a test database, an in-process client, fake LLM
providers answering in their documented shapes, captured logs, and a leak check.

:class:`ApiHarness` records every secret a test sends (provider keys, bot tokens: :meth:`secret`)
and every response body; :meth:`ApiHarness.assert_nothing_leaked` then looks for each secret in
the responses, the captured log output (JSON lines at DEBUG level, the API's access log included),
the audit log, channel settings and the secrets table (which must hold ciphertexts only). The API
tests' fixture runs it after every test, so the whole API suite checks it.
"""

from __future__ import annotations

import io
import json
import logging
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import httpx
import structlog
from fastapi import FastAPI
from sqlalchemy import select

from agents_config.catalog import PlanCatalog, load_catalog
from controlplane.api import create_app
from controlplane.byok.validate import KeyValidator
from controlplane.db.models import AuditLog, Channel, FlyResources, ProviderKey, Secret, Tenant, utcnow
from controlplane.db.session import Database
from controlplane.logging import configure_logging
from controlplane.settings import Settings, load_settings
from controlplane.vault import Vault
from tests.support.byok_fakes import chars, valid_key
from tests.support.db import TEST_RING, TEST_VAULT_KEYS

SERVICE_TOKEN = "svc-token-" + "t" * 24
SECOND_TOKEN = "svc-token-" + "u" * 24  # both valid at once: rotation
BASE = "/v1/tenants"


def telegram_token(seed: int = 1) -> str:
    return f"{100000000 + seed}:" + chars(35, seed=seed)


def discord_token(seed: int = 1) -> str:
    return chars(24, seed=seed) + "." + chars(6, seed=seed + 1) + "." + chars(27, seed=seed + 2)


def slack_tokens(seed: int = 1) -> tuple[str, str]:
    return "xoxb-" + chars(30, seed=seed), "xapp-" + chars(30, seed=seed + 1)


class FakeProviders:
    """The providers' validation endpoints (httpx transport). Every key is valid unless listed in
    ``refused`` (401 in the provider's own error shape, echoing part of the key as OpenAI does),
    ``no_credit`` (OpenAI's 429 ``insufficient_quota``, Anthropic's 400 credit balance) or
    ``overloaded`` (529/503)."""

    def __init__(self) -> None:
        self.refused: set[str] = set()
        self.no_credit: set[str] = set()
        self.overloaded: set[str] = set()
        self.calls = 0

    def _key(self, request: httpx.Request) -> str:
        for header in ("x-api-key", "x-goog-api-key"):
            if header in request.headers:
                return request.headers[header]
        return request.headers.get("authorization", "").removeprefix("Bearer ")

    def answer(self, request: httpx.Request) -> httpx.Response:
        self.calls += 1
        key = self._key(request)
        anthropic = request.url.host == "api.anthropic.com"
        if key in self.refused:
            if anthropic:
                return httpx.Response(
                    401,
                    json={
                        "type": "error",
                        "error": {"type": "authentication_error", "message": "invalid x-api-key"},
                    },
                )
            return httpx.Response(
                401,
                json={
                    "error": {
                        "message": f"Incorrect API key provided: {key[:8]}****{key[-4:]}. You can find your API key at https://platform.openai.com/account/api-keys.",
                        "type": "invalid_request_error",
                        "param": None,
                        "code": "invalid_api_key",
                    }
                },
            )
        if key in self.no_credit:
            if anthropic:
                return httpx.Response(
                    400,
                    json={
                        "type": "error",
                        "error": {
                            "type": "invalid_request_error",
                            "message": "Your credit balance is too low to access the Anthropic API. Please go to Plans & Billing to upgrade or purchase credits.",
                        },
                    },
                )
            return httpx.Response(
                429,
                json={
                    "error": {
                        "message": "You exceeded your current quota, please check your plan and billing details.",
                        "type": "insufficient_quota",
                        "param": None,
                        "code": "insufficient_quota",
                    }
                },
            )
        if key in self.overloaded:
            if anthropic:
                return httpx.Response(
                    529,
                    json={"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}},
                )
            return httpx.Response(
                503, json={"error": {"message": "The server is overloaded.", "type": "server_error"}}
            )
        return httpx.Response(
            200, json={"object": "list", "data": [{"id": "model-1", "type": "model"}], "has_more": False}
        )

    def validator(self, settings: Settings) -> KeyValidator:
        async def no_sleep(_seconds: float) -> None:
            return None

        return KeyValidator(settings, transport=httpx.MockTransport(self.answer), sleep=no_sleep)


def own_auth_paths() -> frozenset[str]:
    """Paths answering without a service token: the open routes, and other areas' routers (the
    Stripe webhook), which authenticate by their own means and are tested by their owners."""
    from controlplane.api.app import OPEN_PATHS, mounted_routers

    mounted = {str(getattr(route, "path", "")) for router in mounted_routers() for route in router.routes}
    return OPEN_PATHS | frozenset(mounted)


def api_settings(database_url: str, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "vault_keys": TEST_VAULT_KEYS,
        "api_tokens": f"{SERVICE_TOKEN},{SECOND_TOKEN}",
    }
    values.update(overrides)
    return load_settings(**values)


@dataclass
class ApiHarness:
    db: Database
    app: FastAPI
    client: httpx.AsyncClient  # with a valid service token
    anonymous: httpx.AsyncClient  # without one
    providers: FakeProviders
    vault: Vault
    catalog: PlanCatalog
    logs: io.StringIO
    clock: Callable[[], datetime]
    secrets: list[str] = field(default_factory=list)
    bodies: list[str] = field(default_factory=list)

    def secret(self, value: str) -> str:
        """Note ``value`` as a secret a test sends; it must never come back anywhere."""
        self.secrets.append(value)
        return value

    def key(self, provider: str, seed: int = 7) -> str:
        return self.secret(valid_key(provider, seed))

    async def tenant(self, external_id: str | None = None, **fields: Any) -> Tenant:
        values: dict[str, Any] = {
            "external_id": external_id or f"user-{uuid.uuid4().hex[:10]}",
            "plan": "pro",
            "region": "iad",
        }
        values.update(fields)
        async with self.db.transaction() as session:
            tenant = Tenant(**values)
            session.add(tenant)
        return tenant

    async def fly(self, tenant: Tenant, **fields: Any) -> None:
        async with self.db.transaction() as session:
            session.add(FlyResources(tenant_id=tenant.id, **fields))

    async def audit(self, tenant_id: str | None = None) -> list[AuditLog]:
        async with self.db.transaction() as session:  # objects stay loaded after a commit
            stmt = select(AuditLog).order_by(AuditLog.id)
            if tenant_id is not None:
                stmt = stmt.where(AuditLog.tenant_id == tenant_id)
            return list(await session.scalars(stmt))

    def _record(self, response: httpx.Response) -> httpx.Response:
        self.bodies.append(response.text)
        self.bodies.append(json.dumps(dict(response.headers)))
        return response

    async def assert_nothing_leaked(self) -> None:
        async with self.db.read() as session:
            audit = [
                [r.actor, r.action, r.reason, r.before, r.after]
                for r in await session.scalars(select(AuditLog))
            ]
            channels = [r.settings for r in await session.scalars(select(Channel))]
            keys = [
                [r.last4, r.fingerprint, r.message, r.flags]
                for r in await session.scalars(select(ProviderKey))
            ]
            stored = [r.value for r in await session.scalars(select(Secret))]
        places = {
            "responses": "\n".join(self.bodies),
            "logs": self.logs.getvalue(),
            "audit log": json.dumps(audit, default=str),
            "channel settings": json.dumps(channels),
            "provider key rows": json.dumps(keys, default=str),
            "secrets table": "\n".join(stored),
        }
        for value in self.secrets:
            for where, text in places.items():
                assert value not in text, f"a secret a test sent appears in the {where}"
        assert all(v.startswith("v1:") for v in stored), "the secrets table holds something not encrypted"


class RecordingClient(httpx.AsyncClient):
    """An httpx client that hands every response to ``on_response`` (the leak check reads them)."""

    def __init__(self, on_response: Callable[[httpx.Response], httpx.Response], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._on_response = on_response

    async def send(self, request: httpx.Request, **kwargs: Any) -> httpx.Response:  # type: ignore[override]
        response = await super().send(request, **kwargs)
        await response.aread()
        return self._on_response(response)


@asynccontextmanager
async def api_harness(
    db: Database,
    *,
    settings: Settings | None = None,
    clock: Callable[[], datetime] = utcnow,
    catalog: PlanCatalog | None = None,
) -> AsyncIterator[ApiHarness]:
    """The app on ``db`` with logs captured as JSON lines; restores logging afterwards."""
    settings = settings or api_settings(str(db.engine.url.render_as_string(hide_password=False)))
    providers = FakeProviders()
    vault = Vault(TEST_RING)
    catalog = catalog or load_catalog()
    logs = io.StringIO()
    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    configure_logging(level="DEBUG", fmt="json", stream=logs)
    for noisy in ("sqlalchemy", "aiosqlite", "asyncio"):  # driver chatter is not what we look for
        logging.getLogger(noisy).setLevel(logging.WARNING)
    app = create_app(
        settings, db=db, validator=providers.validator(settings), catalog=catalog, vault=vault, clock=clock
    )
    transport = httpx.ASGITransport(app=app)
    harness: ApiHarness | None = None

    def record(response: httpx.Response) -> httpx.Response:
        assert harness is not None
        return harness._record(response)

    async with (
        RecordingClient(
            record,
            transport=transport,
            base_url="http://api.test",
            headers={"authorization": f"Bearer {SERVICE_TOKEN}"},
        ) as client,
        RecordingClient(record, transport=transport, base_url="http://api.test") as anonymous,
    ):
        harness = ApiHarness(db, app, client, anonymous, providers, vault, catalog, logs, clock)
        try:
            yield harness
        finally:
            root.handlers, _ = saved
            root.setLevel(saved[1])
            structlog.reset_defaults()


__all__ = [
    "BASE",
    "SECOND_TOKEN",
    "SERVICE_TOKEN",
    "ApiHarness",
    "FakeProviders",
    "RecordingClient",
    "api_harness",
    "api_settings",
    "own_auth_paths",
    "discord_token",
    "slack_tokens",
    "telegram_token",
]
