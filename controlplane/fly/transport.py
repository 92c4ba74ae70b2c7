"""The HTTP layer under :class:`~controlplane.fly.client.FlyClient`.

One place does, for every call: client-side pacing (token bucket per action and scope), the global
concurrency cap (``asyncio.Semaphore``; long polls use a separate one so they cannot starve other
calls), the request, classification of non-2xx answers into :mod:`controlplane.fly.errors`, logging
with ``fly-request-id``, and retries with tenacity *only where a repeat is safe*:

* every call: 429 (the request was refused, nothing happened) — honouring ``Retry-After``;
* idempotent calls only (GET, wait, stop, metadata, lease refresh/release, deletes, secrets writes):
  the ambiguous answers (408, 5xx, transport errors: ``FlyError.ambiguous``), with the jittered
  exponential :class:`~controlplane.retry.Backoff` of the :class:`RetryPolicy`.

Creates, updates, start/restart/suspend and lease acquisition are never repeated after an ambiguous
outcome; :mod:`controlplane.fly.idempotency` resolves those by looking the result up first.

httpx's transport is injectable (``transport=``) so tests swap in ``httpx.MockTransport``, respx or
the emulator's in-process transport instead of patching.
"""

from __future__ import annotations

import asyncio
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
import structlog
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from controlplane.clock import Clock, SystemClock
from controlplane.fly.auth import FlyAuth
from controlplane.fly.errors import FlyConnectionError, FlyError, FlyRateLimited, classify
from controlplane.fly.ratelimit import RateLimiter
from controlplane.retry import Backoff, backoff_wait

log = structlog.get_logger(__name__)

REQUEST_ID_HEADER = "fly-request-id"
LEASE_NONCE_HEADER = "fly-machine-lease-nonce"
DEFAULT_TIMEOUT = httpx.Timeout(30.0, connect=10.0)

QueryParams = Sequence[tuple[str, str]]


@dataclass(frozen=True)
class RetryPolicy:
    """How many attempts and how long to back off (flyctl caps its delay at 10 s)."""

    max_attempts: int = 5
    initial_delay: float = 0.2
    max_delay: float = 10.0
    #: Longest Retry-After we honour before giving up waiting and raising.
    max_retry_after: float = 60.0
    #: Extra spread on top of a Retry-After, as a fraction of it (a herd must not return at once).
    jitter: float = 0.1

    @property
    def backoff(self) -> Backoff:
        return Backoff(initial=self.initial_delay, cap=self.max_delay)


_SAFE_SEGMENT = re.compile(r"^[A-Za-z0-9_~-][A-Za-z0-9._~-]*$")


def seg(value: str) -> str:
    """One URL path segment (app name, machine/volume id, secret name, metadata key).

    Fly's identifiers are plain ``[A-Za-z0-9._~-]``; anything else (``/``, ``..``, spaces) is refused
    rather than encoded, so a bad id can never address a different resource.
    """
    if not isinstance(value, str) or not _SAFE_SEGMENT.match(value) or value in (".", ".."):
        raise ValueError(f"unsafe Fly path segment {value!r}")
    return value


def query(params: Mapping[str, Any] | None = None, **more: Any) -> list[tuple[str, str]]:
    """Query params as a list of pairs: None dropped, bools lower-case, lists repeated."""
    out: list[tuple[str, str]] = []
    for key, value in {**(params or {}), **more}.items():
        if value is None:
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        for item in values:
            if isinstance(item, bool):
                out.append((key, "true" if item else "false"))
            else:
                out.append((key, str(item)))
    return out


class FlyHTTP:
    """Paced, capped, classified, retried HTTP calls to the Machines API."""

    def __init__(
        self,
        base_url: str,
        auth: FlyAuth,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        max_concurrency: int = 32,
        clock: Clock | None = None,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        rng: random.Random | None = None,
        user_agent: str = "openclaw-fleet-controlplane/0.1 (+fly-client)",
    ) -> None:
        self.clock = clock or SystemClock()
        self.limiter = limiter if limiter is not None else RateLimiter(clock=self.clock)
        self.retry = retry or RetryPolicy()
        self.auth = auth
        self._rng = rng or random.Random()
        self._backoff_wait = backoff_wait(self.retry.backoff, self._rng)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._long_poll_semaphore = asyncio.Semaphore(max_concurrency)
        self.max_concurrency = max_concurrency
        self._client = httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            auth=auth,
            transport=transport,
            timeout=timeout,
            limits=httpx.Limits(
                max_connections=2 * max_concurrency + 4,
                max_keepalive_connections=max_concurrency,
            ),
            headers={"User-Agent": user_agent, "Accept": "application/json"},
        )

    @property
    def base_url(self) -> str:
        return str(self._client.base_url).rstrip("/")

    async def aclose(self) -> None:
        await self._client.aclose()

    # -- retry rules -------------------------------------------------------------------------
    @staticmethod
    def _retryable(
        idempotent: bool, no_retry: tuple[type[BaseException], ...] = ()
    ) -> Callable[[BaseException], bool]:
        def predicate(exc: BaseException) -> bool:
            if no_retry and isinstance(exc, no_retry):
                return False
            if isinstance(exc, FlyRateLimited):
                return True
            # Repeating after an ambiguous answer is only safe when the call is idempotent.
            return idempotent and isinstance(exc, FlyError) and bool(exc.ambiguous)

        return predicate

    def _backoff(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, FlyRateLimited) and exc.retry_after is not None:
            # Honour Retry-After (plus a little jitter so a herd does not return in lockstep).
            return exc.retry_after + self._rng.uniform(0, self.retry.jitter * max(exc.retry_after, 1))
        return self._backoff_wait(state)

    def _give_up_on_long_retry_after(self, state: RetryCallState) -> bool:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, FlyRateLimited) and exc.retry_after is not None:
            return exc.retry_after > self.retry.max_retry_after
        return False

    # -- the call ----------------------------------------------------------------------------
    async def request(
        self,
        method: str,
        path: str,
        *,
        action: str,
        scope: str,
        idempotent: bool,
        params: QueryParams | None = None,
        json: Any = None,
        nonce: str | None = None,
        timeout: httpx.Timeout | float | None = None,
        long_poll: bool = False,
        max_attempts: int | None = None,
        no_retry: tuple[type[BaseException], ...] = (),
    ) -> httpx.Response:
        """Send one logical call; returns the 2xx response or raises a :class:`FlyError`."""
        headers = {LEASE_NONCE_HEADER: nonce} if nonce else None
        stop_after = stop_after_attempt(max_attempts or self.retry.max_attempts)

        def stop(state: RetryCallState) -> bool:
            return stop_after(state) or self._give_up_on_long_retry_after(state)

        retrying = AsyncRetrying(
            stop=stop,
            wait=self._backoff,
            retry=retry_if_exception(self._retryable(idempotent, no_retry)),
            sleep=self.clock.sleep,
            reraise=True,
            before_sleep=self._log_retry,
        )
        response: httpx.Response | None = None
        async for attempt in retrying:
            with attempt:
                response = await self._send_once(
                    method,
                    path,
                    action=action,
                    scope=scope,
                    params=params,
                    json=json,
                    headers=headers,
                    timeout=timeout,
                    long_poll=long_poll,
                )
        assert response is not None
        return response

    async def _send_once(
        self,
        method: str,
        path: str,
        *,
        action: str,
        scope: str,
        params: QueryParams | None,
        json: Any,
        headers: dict[str, str] | None,
        timeout: httpx.Timeout | float | None,
        long_poll: bool,
    ) -> httpx.Response:
        await self.limiter.acquire(action, scope)
        semaphore = self._long_poll_semaphore if long_poll else self._semaphore
        async with semaphore:
            kwargs: dict[str, Any] = {"params": params, "headers": headers}
            if json is not None:
                kwargs["json"] = json
            if timeout is not None:
                kwargs["timeout"] = timeout
            transport_error: FlyConnectionError | None = None
            try:
                response = await self._client.request(method, path, **kwargs)
            except httpx.TransportError as exc:
                detail = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
                transport_error = FlyConnectionError(self.auth.redact(detail), method=method, path=path)
            if transport_error is not None:
                # Raised outside the except block so the httpx exception is not even attached as
                # __context__ (its text is not ours to vouch for).
                log.warning("fly.transport_error", **transport_error.log_fields())
                raise transport_error
            if response.is_success:
                return response
            await response.aread()
            error = classify(
                response.status_code,
                response.content,
                request_id=response.headers.get(REQUEST_ID_HEADER),
                retry_after=response.headers.get("retry-after"),
                method=method,
                path=path,
            )
            error.message = self.auth.redact(error.message)
            error.args = (error.message,)
            self._log_error(error)
            raise error

    @staticmethod
    def _log_error(error: FlyError) -> None:
        # 404s and 408s are routine (deletes, waits): keep them at debug level.
        if error.status_code in (404, 408):
            log.debug("fly.request_failed", **error.log_fields())
        else:
            log.warning("fly.request_failed", **error.log_fields())

    @staticmethod
    def _log_retry(state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        fields = exc.log_fields() if isinstance(exc, FlyError) else {}
        log.info(
            "fly.retrying",
            attempt=state.attempt_number,
            next_sleep=round(state.next_action.sleep, 3) if state.next_action else None,
            **fields,
        )


__all__ = [
    "DEFAULT_TIMEOUT",
    "FlyHTTP",
    "LEASE_NONCE_HEADER",
    "REQUEST_ID_HEADER",
    "RetryPolicy",
    "query",
    "seg",
]
