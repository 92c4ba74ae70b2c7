"""Checking a key against its provider with httpx (reference §1).

* The key travels only in a request header, built in :func:`auth_headers` — never in a URL.
* ``follow_redirects=False``: a redirect is never followed (the key never goes to another host).
* Short timeouts (``settings.provider_timeout_seconds``); a timeout gives ``overloaded`` and any
  other transport failure ``unknown`` — never ``invalid_key``.
* A few attempts on ``rate_limited``/``overloaded``, honouring retry-after when it is short.
* Nothing logged or returned carries the key: provider text is redacted
  (:mod:`controlplane.byok.redaction`) and transport exceptions are reduced to their type name.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

import httpx
import structlog

from controlplane.byok.catalog import Auth, Probe, ProbeKind, ProviderSpec, get_spec
from controlplane.byok.classifiers._engine import (
    Answer,
    Outcome,
    Rule,
    classify_answer,
    extract,
)
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.redaction import preview
from controlplane.byok.verdicts import Verdict, message_for
from controlplane.db.models import KeyVerdict

log = structlog.get_logger(__name__)

USER_AGENT = "openclaw-fleet-controlplane (key-check)"
ANTHROPIC_VERSION = "2023-06-01"
_HEADER_SAFE = re.compile(r"^[\x21-\x7e]+$")

Sleep = Callable[[float], Awaitable[None]]


def auth_headers(auth: Auth, key: ProviderKeyValue) -> dict[str, str]:
    """The only place the key is unwrapped for the network."""
    if auth is Auth.anthropic:
        return {"x-api-key": key.reveal(), "anthropic-version": ANTHROPIC_VERSION}
    if auth is Auth.google:
        return {"x-goog-api-key": key.reveal()}
    return {"authorization": f"Bearer {key.reveal()}"}


class KeyValidator:
    """Validates keys; one :class:`httpx.AsyncClient` per check, closed afterwards.

    ``transport`` lets tests (and the demo's fake providers) swap the network. ``paid_probes``
    enables the 1-token probes (costs the user a fraction of a cent), off by default.
    """

    def __init__(
        self,
        settings: Any | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | None = None,
        max_attempts: int = 2,
        max_wait: float = 5.0,
        sleep: Sleep = asyncio.sleep,
        paid_probes: bool = False,
    ) -> None:
        if timeout is None:
            timeout = settings.provider_timeout_seconds if settings is not None else 10.0
        self._settings = settings
        self._transport = transport
        self._timeout = float(timeout)
        self._max_attempts = max(1, max_attempts)
        self._max_wait = max_wait
        self._sleep = sleep
        self._paid_probes = paid_probes

    @classmethod
    def from_settings(cls, settings: Any, **kwargs: Any) -> KeyValidator:
        return cls(settings, **kwargs)

    async def validate(
        self, provider_id: str, key: ProviderKeyValue, *, region: str | None = None
    ) -> Verdict:
        """Check ``key`` with ``provider_id``'s free calls and return one :class:`Verdict`."""
        spec = get_spec(provider_id)
        if not _HEADER_SAFE.match(key.reveal()):
            return Verdict(
                provider=spec.id,
                verdict=KeyVerdict.invalid_key,
                message="The key contains spaces, line breaks or characters that are not plain "
                "ASCII, so it cannot be a valid key; copy it again.",
            )
        started = time.monotonic()
        async with httpx.AsyncClient(
            transport=self._transport,
            timeout=httpx.Timeout(self._timeout),
            follow_redirects=False,
            headers={"user-agent": USER_AGENT, "accept": "application/json"},
        ) as client:
            first: Verdict | None = None
            for region_name, base_url in spec.base_urls(self._settings, region):
                verdict = await self._check_region(client, spec, base_url, region_name, key)
                if verdict.verdict is not KeyVerdict.invalid_key:
                    break
                first = first or verdict  # a region-bound key fails on the other region
            else:
                verdict = first if first is not None else verdict
        log.info(
            "byok.validated",
            provider=spec.id,
            verdict=verdict.verdict.value,
            http_status=verdict.http_status,
            region=verdict.region,
            flags=list(verdict.flags),
            elapsed_ms=round((time.monotonic() - started) * 1000),
        )
        return verdict

    async def _check_region(
        self,
        client: httpx.AsyncClient,
        spec: ProviderSpec,
        base_url: str,
        region: str | None,
        key: ProviderKeyValue,
    ) -> Verdict:
        result: Verdict | None = None
        for probe in spec.probes:
            if probe.kind is ProbeKind.paid and not self._paid_probes:
                continue
            verdict = await self._call_with_retries(client, spec, base_url, probe, key)
            verdict = replace(verdict, region=region)
            if probe.kind is ProbeKind.auth:
                if verdict.verdict is not KeyVerdict.ok:
                    return verdict  # the key is not proven: stop here
                result = verdict if result is None else result.with_flags(*verdict.flags)
                continue
            # credit / paid probes refine an accepted key
            assert result is not None, "catalog: every provider starts with an auth probe"
            if verdict.verdict is KeyVerdict.ok:
                result = result.with_flags(*verdict.flags)
            elif verdict.transient:
                result = result.with_flags("credit_unchecked")
            else:
                return verdict.with_flags(*result.flags)
        assert result is not None, "catalog: every provider has an auth probe"
        return result

    async def _call_with_retries(
        self,
        client: httpx.AsyncClient,
        spec: ProviderSpec,
        base_url: str,
        probe: Probe,
        key: ProviderKeyValue,
    ) -> Verdict:
        attempt = 1
        while True:
            verdict = await self._call(client, spec, base_url, probe, key, attempt)
            retryable = verdict.verdict in (KeyVerdict.rate_limited, KeyVerdict.overloaded)
            if not retryable or attempt >= self._max_attempts:
                return verdict
            wait = verdict.retry_after if verdict.retry_after is not None else 0.5 * 2 ** (attempt - 1)
            if wait > self._max_wait:
                return verdict
            await self._sleep(wait)
            attempt += 1

    async def _call(
        self,
        client: httpx.AsyncClient,
        spec: ProviderSpec,
        base_url: str,
        probe: Probe,
        key: ProviderKeyValue,
        attempt: int,
    ) -> Verdict:
        name = spec.display_name
        try:
            response = await client.request(
                probe.method,
                base_url + probe.path,
                params=list(probe.params) or None,
                json=probe.json,
                headers=auth_headers(spec.auth, key),
            )
        except httpx.TimeoutException as exc:
            log.warning("byok.timeout", provider=spec.id, probe=probe.name, attempt=attempt,
                        error_type=type(exc).__name__)
            return Verdict(
                provider=spec.id,
                verdict=KeyVerdict.overloaded,
                message=f"{name} did not answer within {self._timeout:g} seconds, so the key "
                "could not be checked. It will be checked again shortly.",
            )
        except Exception as exc:  # noqa: BLE001 - any transport failure is "could not check"
            # The exception's text may contain the request (and so the key): keep only its type.
            log.warning("byok.unreachable", provider=spec.id, probe=probe.name, attempt=attempt,
                        error_type=type(exc).__name__)
            return Verdict(
                provider=spec.id,
                verdict=KeyVerdict.unknown,
                message=f"{name} could not be reached ({type(exc).__name__}), so the key could "
                "not be checked. It will be checked again later.",
            )
        verdict = classify_response(spec, probe, response.status_code, response.text, response.headers, key)
        log.info("byok.probe", provider=spec.id, probe=probe.name, attempt=attempt,
                 http_status=response.status_code, verdict=verdict.verdict.value)
        if verdict.verdict is KeyVerdict.unknown:
            log.warning("byok.unknown_answer", provider=spec.id, probe=probe.name,
                        http_status=response.status_code, preview=verdict.preview)
        return verdict


def classify_response(
    spec: ProviderSpec,
    probe: Probe,
    status: int,
    text: str,
    headers: Any,
    key: ProviderKeyValue | None = None,
) -> Verdict:
    """Turn one provider answer into a :class:`Verdict` (pure: no I/O). ``key`` is only used to
    redact it from the provider's text."""
    answer = extract(status, text, headers)
    classifier = spec.classifier
    if 200 <= status < 300:
        if classifier.errors_on_200 and answer.tokens:
            return _from_rule(spec, classify_answer(classifier.rules, answer), answer, key)
        outcome = classifier.on_success(probe.name, answer.body)
        return _from_outcome(spec, outcome, answer, key)
    if 300 <= status < 400:
        return Verdict(
            provider=spec.id,
            verdict=KeyVerdict.unknown,
            message=f"{spec.display_name} answered with a redirect, which is not followed (the key "
            "is never sent to another host). It will be checked again later.",
            http_status=status,
            preview=preview(text, key) or None,
        )
    return _from_rule(spec, classify_answer(classifier.rules, answer), answer, key)


def _from_outcome(
    spec: ProviderSpec, outcome: Outcome | None, answer: Answer, key: ProviderKeyValue | None
) -> Verdict:
    verdict = outcome.verdict if outcome is not None else KeyVerdict.ok
    says = outcome.says if outcome is not None else None
    return Verdict(
        provider=spec.id,
        verdict=verdict,
        message=says or message_for(verdict, spec.display_name),
        http_status=answer.status,
        preview=preview(answer.text, key) or None if verdict is KeyVerdict.unknown else None,
        flags=outcome.flags if outcome is not None else (),
    )


def _from_rule(
    spec: ProviderSpec, matched: Rule, answer: Answer, key: ProviderKeyValue | None
) -> Verdict:
    detail = preview(answer.message, key, limit=200) or None
    message = matched.says or message_for(matched.verdict, spec.display_name)
    if matched.quote and detail:
        message = f"{message} {spec.display_name} said: “{detail}”"
    return Verdict(
        provider=spec.id,
        verdict=matched.verdict,
        message=message,
        retry_after=answer.retry_after,
        http_status=answer.status,
        detail=detail,
        preview=preview(answer.text, key) or None if matched.verdict is KeyVerdict.unknown else None,
        flags=matched.flags,
    )


__all__ = ["ANTHROPIC_VERSION", "KeyValidator", "USER_AGENT", "auth_headers", "classify_response"]
