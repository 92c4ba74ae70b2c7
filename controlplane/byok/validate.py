"""Checking a key against its provider with httpx (llm-providers.md §1).

* The key travels only in a request header, built in :func:`auth_headers` — never in a URL.
* ``follow_redirects=False``: a redirect is never followed (the key never goes to another host).
* Short timeouts (``settings.provider_timeout_seconds``); a timeout gives ``overloaded`` and any
  other transport failure ``unknown`` — never ``invalid_key``.
* A few attempts on ``rate_limited``/``overloaded``, honouring retry-after when it is short.

How a region's probes combine (:meth:`KeyValidator._check_region`):

* the auth probe decides whether the key is accepted; a non-ok answer ends the check, except an
  ``unknown`` one when a later probe can prove the key (Moonshot: ``/models`` 404, then the
  authenticated balance call decides);
* a 200 from a probe that does not prove the key (MiniMax's free endpoint) gives ``unknown`` with
  the flag ``unproven``: stored as "unverified" until the paid 1-token probe answers ok;
* credit and paid probes refine an accepted key: only ``no_credit``, ``spend_limit`` and
  ``revoked_or_blocked`` from them are final (:data:`FINAL_FROM_REFINEMENT`); a ``permission``
  from a paid probe adds ``model_restricted``, anything else ``credit_unchecked``, and the free
  check's ``ok`` stands. An ``invalid_key`` from the only probe that can prove the key is final.
* Moonshot and MiniMax keys are region-bound: the next region is tried after ``invalid_key`` or
  an ``unknown`` answer (a 404 from one region's host).
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

from controlplane.byok.catalog import Auth, Probe, ProbeKind, ProviderSettings, ProviderSpec, get_spec
from controlplane.byok.classifiers._engine import (
    Answer,
    Outcome,
    Rule,
    classify_answer,
    extract,
)
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.redaction import preview
from controlplane.byok.verdicts import UNPROVEN, UNPROVEN_MESSAGE, Verdict, message_for
from controlplane.enums import KeyVerdict

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
        settings: ProviderSettings | None = None,
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
    def from_settings(
        cls,
        settings: ProviderSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        paid_probes: bool = False,
    ) -> KeyValidator:
        return cls(settings, transport=transport, paid_probes=paid_probes)

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
            tried: list[Verdict] = []
            for region_name, base_url in spec.base_urls(self._settings, region):
                verdict = await self._check_region(client, spec, base_url, region_name, key)
                tried.append(verdict)
                if not _try_next_region(verdict):
                    break
            else:
                # Every region refused or did not understand: prefer an answer that does not
                # refuse (a region that said nothing useful may be the key's own region).
                verdict = next((v for v in tried if v.verdict is not KeyVerdict.invalid_key), tried[0])
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
        """Run the probes against one region (see the module docstring for how they combine)."""
        probes = [p for p in spec.probes if p.kind is not ProbeKind.paid or self._paid_probes]
        result: Verdict | None = None  # the answer so far
        proven = False  # a probe that proves the key answered ok
        for index, probe in enumerate(probes):
            verdict = replace(
                await self._call_with_retries(client, spec, base_url, probe, key), region=region
            )
            if probe.kind is ProbeKind.auth:
                if verdict.verdict is KeyVerdict.ok:
                    if probe.proves:
                        result, proven = _merged(verdict, result), True
                    elif proven and result is not None:
                        result = result.with_flags(*verdict.flags)
                    else:
                        result = _unproven(spec, verdict, result)
                    continue
                if (
                    verdict.verdict is KeyVerdict.unknown
                    and result is None
                    and any(later.proves for later in probes[index + 1 :])
                ):
                    result = verdict  # e.g. Moonshot 404 on /models: a later call can prove the key
                    continue
                return verdict  # the key is not accepted: stop here
            # credit / paid probes refine the answer
            assert result is not None, "catalog: every provider starts with an auth probe"
            if verdict.verdict is KeyVerdict.ok:
                if probe.proves and not proven:
                    result, proven = _merged(verdict, result), True
                else:
                    result = result.with_flags(*verdict.flags)
            elif verdict.verdict in FINAL_FROM_REFINEMENT:
                return _merged(verdict, result)
            elif verdict.verdict is KeyVerdict.invalid_key and probe.proves and not proven:
                return _merged(verdict, result)  # the only probe that can prove the key refuses it
            elif verdict.verdict is KeyVerdict.permission and probe.kind is ProbeKind.paid:
                result = result.with_flags("model_restricted")
            else:  # a refusal of this probe's own request, or no answer: not the key's verdict
                result = result.with_flags("credit_unchecked")
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
            log.warning(
                "byok.timeout",
                provider=spec.id,
                probe=probe.name,
                attempt=attempt,
                error_type=type(exc).__name__,
            )
            return Verdict(
                provider=spec.id,
                verdict=KeyVerdict.overloaded,
                message=f"{name} did not answer within {self._timeout:g} seconds, so the key "
                "could not be checked. It will be checked again shortly.",
            )
        except Exception as exc:
            # The exception's text may contain the request (and so the key): keep only its type.
            log.warning(
                "byok.unreachable",
                provider=spec.id,
                probe=probe.name,
                attempt=attempt,
                error_type=type(exc).__name__,
            )
            return Verdict(
                provider=spec.id,
                verdict=KeyVerdict.unknown,
                message=f"{name} could not be reached ({type(exc).__name__}), so the key could "
                "not be checked. It will be checked again later.",
            )
        verdict = classify_response(spec, probe, response.status_code, response.text, response.headers, key)
        log.info(
            "byok.probe",
            provider=spec.id,
            probe=probe.name,
            attempt=attempt,
            http_status=response.status_code,
            verdict=verdict.verdict.value,
        )
        if verdict.verdict is KeyVerdict.unknown:
            log.warning(
                "byok.unknown_answer",
                provider=spec.id,
                probe=probe.name,
                http_status=response.status_code,
                preview=verdict.preview,
            )
        return verdict


#: Verdicts a credit or paid probe gives as the key's final verdict even after the free check
#: accepted it: they are about the account or the key itself. Any other refusal from such a probe
#: (permission for its test model, a 401/404 from a plan endpoint the key has no plan for ...) is
#: about that probe's own request and only adds a flag (``model_restricted``, ``credit_unchecked``).
FINAL_FROM_REFINEMENT: frozenset[KeyVerdict] = frozenset(
    {KeyVerdict.no_credit, KeyVerdict.spend_limit, KeyVerdict.revoked_or_blocked}
)


def _try_next_region(verdict: Verdict) -> bool:
    """Region-bound keys: another region is tried after ``invalid_key`` or an answer that was not
    understood (a 404 from one host), never after an unproven 200 or a transient answer."""
    if verdict.verdict is KeyVerdict.invalid_key:
        return True
    return verdict.verdict is KeyVerdict.unknown and UNPROVEN not in verdict.flags


def _merged(verdict: Verdict, earlier: Verdict | None) -> Verdict:
    """``verdict`` with the flags gathered so far (minus ``unproven``: this answer decides)."""
    flags = tuple(f for f in (earlier.flags if earlier is not None else ()) if f != UNPROVEN)
    return replace(verdict, flags=tuple(dict.fromkeys((*flags, *verdict.flags))))


def _unproven(spec: ProviderSpec, verdict: Verdict, earlier: Verdict | None) -> Verdict:
    """A 200 from a probe that does not prove the key (MiniMax's free endpoint)."""
    flags = (*(earlier.flags if earlier is not None else ()), *verdict.flags, UNPROVEN)
    return Verdict(
        provider=spec.id,
        verdict=KeyVerdict.unknown,
        message=UNPROVEN_MESSAGE.format(name=spec.display_name),
        http_status=verdict.http_status,
        region=verdict.region,
        flags=tuple(dict.fromkeys(flags)),
    )


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
        if classifier.errors_on_200 and answer.is_error:
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


def _from_rule(spec: ProviderSpec, matched: Rule, answer: Answer, key: ProviderKeyValue | None) -> Verdict:
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


__all__ = [
    "ANTHROPIC_VERSION",
    "FINAL_FROM_REFINEMENT",
    "KeyValidator",
    "USER_AGENT",
    "auth_headers",
    "classify_response",
]
