"""The BYOK provider catalog: for each provider in :mod:`agents_config.providers`, where and how
its keys are checked (llm-providers.md §2).

Base URLs are fixed here (never user-supplied: no SSRF or key exfiltration); an operator may
override one per provider with ``CP_<PROVIDER>_BASE_URL`` (emulator, proxy). Moonshot and MiniMax
keys are region-bound: the first region is tried first, the others after an ``invalid_key`` or an
answer that was not understood (``unknown``, e.g. a 404 from one region's host).

A probe ``proves`` the key when a 2xx from it shows the provider accepted the key. Auth and paid
probes do, except MiniMax's ``GET /anthropic/v1/models`` ([unverified] that it rejects bad keys):
a 200 there leaves the key ``unknown`` with the flag ``unproven`` until the paid 1-token probe
answers. Credit probes do not, except Moonshot's balance call, which is authenticated.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Protocol

from agents_config.inputs import name_or_given
from agents_config.providers import PROVIDER_IDS, get_provider
from controlplane.byok.classifiers import CLASSIFIERS, ProviderClassifier
from controlplane.byok.errors import UnknownProvider
from controlplane.byok.formats import RULES as FORMAT_RULES
from controlplane.byok.formats import FormatRule


class ProviderSettings(Protocol):
    """What key validation reads from :class:`controlplane.settings.Settings` (a Protocol, so the
    BYOK policy modules never import the settings, which reach the database layer)."""

    provider_timeout_seconds: float

    def provider_base_url(self, provider: str) -> str | None: ...


class Auth(str, enum.Enum):
    bearer = "bearer"  # Authorization: Bearer K
    anthropic = "anthropic"  # x-api-key: K + anthropic-version
    google = "google"  # x-goog-api-key: K (never ?key=: query strings end up in logs)


class ProbeKind(str, enum.Enum):
    auth = "auth"  # free authenticated call: proves the key is accepted
    credit = "credit"  # free credit / limit call
    paid = "paid"  # 1-token probe, costs the user a fraction of a cent: opt-in only


@dataclass(frozen=True, slots=True)
class Probe:
    name: str
    kind: ProbeKind
    method: str
    path: str  # appended to the base URL
    params: tuple[tuple[str, str], ...] = ()  # never the key
    json: dict[str, Any] | None = None
    proves: bool = True  # a 2xx from this probe proves the provider accepted the key


@dataclass(frozen=True, slots=True)
class ProviderSpec:
    id: str
    display_name: str
    env_var: str  # where OpenClaw reads the key (agents_config.providers)
    auth: Auth
    regions: tuple[tuple[str | None, str], ...]  # (region, default base URL), first tried first
    probes: tuple[Probe, ...]
    format: FormatRule
    classifier: ProviderClassifier

    def base_urls(
        self, settings: ProviderSettings | None = None, region: str | None = None
    ) -> list[tuple[str | None, str]]:
        """``(region, base URL)`` pairs to try, in order. An operator override replaces them all."""
        if settings is not None:
            override = settings.provider_base_url(self.id)
            if override:
                return [(region, override)]
        ordered = list(self.regions)
        if region is not None:
            ordered.sort(key=lambda pair: pair[0] != region)
        return ordered


def _probe(
    name: str, kind: ProbeKind, path: str, method: str = "GET", *, proves: bool | None = None, **kw: Any
) -> Probe:
    """A probe; by default auth and paid probes prove the key and credit probes do not."""
    if proves is None:
        proves = kind is not ProbeKind.credit
    return Probe(name=name, kind=kind, method=method, path=path, proves=proves, **kw)


_A, _C, _P = ProbeKind.auth, ProbeKind.credit, ProbeKind.paid

_DEFINITIONS: dict[str, tuple[Auth, tuple[tuple[str | None, str], ...], tuple[Probe, ...]]] = {
    "anthropic": (
        Auth.anthropic,
        ((None, "https://api.anthropic.com"),),
        (
            _probe("models", _A, "/v1/models", params=(("limit", "1"),)),
            _probe(
                "message",
                _P,
                "/v1/messages",
                "POST",
                json={
                    "model": "claude-3-5-haiku-latest",
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
        ),
    ),
    "openai": (
        Auth.bearer,
        ((None, "https://api.openai.com/v1"),),
        (
            _probe("models", _A, "/models"),
            _probe(
                "embedding",
                _P,
                "/embeddings",
                "POST",
                json={"model": "text-embedding-3-small", "input": "hi"},
            ),
        ),
    ),
    "google": (
        Auth.google,
        ((None, "https://generativelanguage.googleapis.com/v1beta"),),
        (_probe("models", _A, "/models", params=(("pageSize", "1"),)),),
    ),
    "groq": (
        Auth.bearer,
        ((None, "https://api.groq.com/openai/v1"),),
        (_probe("models", _A, "/models"),),
    ),
    "openrouter": (
        Auth.bearer,
        ((None, "https://openrouter.ai/api/v1"),),
        (_probe("key", _A, "/key"),),  # /models is public and proves nothing
    ),
    "mistral": (
        Auth.bearer,
        ((None, "https://api.mistral.ai/v1"),),
        (_probe("models", _A, "/models"),),
    ),
    "deepseek": (
        Auth.bearer,
        ((None, "https://api.deepseek.com"),),
        (_probe("models", _A, "/models"), _probe("balance", _C, "/user/balance")),
    ),
    "moonshot": (
        Auth.bearer,
        (("intl", "https://api.moonshot.ai/v1"), ("cn", "https://api.moonshot.cn/v1")),
        # the balance call is authenticated: a 200 proves the key even if /models answered 404
        (_probe("models", _A, "/models"), _probe("balance", _C, "/users/me/balance", proves=True)),
    ),
    "minimax": (
        Auth.bearer,  # the CN host reportedly rejects X-Api-Key
        (("global", "https://api.minimax.io"), ("cn", "https://api.minimaxi.com")),
        (
            # [unverified] that it rejects bad keys: a 200 here does not prove the key
            _probe("models", _A, "/anthropic/v1/models", proves=False),
            _probe("plan", _C, "/v1/token_plan/remains"),  # plan keys: quota left in the window
            _probe(
                "message",
                _P,
                "/anthropic/v1/messages",
                "POST",
                json={
                    "model": "MiniMax-M2",
                    "max_tokens": 1,
                    "messages": [{"role": "user", "content": "hi"}],
                },
            ),
        ),
    ),
    "cohere": (
        Auth.bearer,
        ((None, "https://api.cohere.com"),),
        (_probe("check", _A, "/v1/check-api-key", "POST"),),
    ),
    "xai": (
        Auth.bearer,
        ((None, "https://api.x.ai/v1"),),
        (_probe("api_key", _A, "/api-key"),),
    ),
}


def _build() -> dict[str, ProviderSpec]:
    catalog: dict[str, ProviderSpec] = {}
    for provider_id in PROVIDER_IDS:
        provider = get_provider(provider_id)
        auth, regions, probes = _DEFINITIONS[provider_id]
        catalog[provider_id] = ProviderSpec(
            id=provider.id,
            display_name=provider.display_name,
            env_var=provider.env_var,
            auth=auth,
            regions=regions,
            probes=probes,
            format=FORMAT_RULES[provider_id],
            classifier=CLASSIFIERS[provider_id],
        )
    return catalog


CATALOG: dict[str, ProviderSpec] = _build()


def get_spec(provider_id: str) -> ProviderSpec:
    try:
        return CATALOG[provider_id]
    except KeyError:
        raise UnknownProvider(
            f"unknown provider {name_or_given(provider_id)}; known: {', '.join(PROVIDER_IDS)}"
        ) from None


__all__ = ["Auth", "CATALOG", "Probe", "ProbeKind", "ProviderSpec", "UnknownProvider", "get_spec"]
