"""The table-driven classifier shared by every provider.

A provider's answer is first reduced to an :class:`Answer`: HTTP status, the set of error
type/code/status/reason tokens found in its body (lower-cased), the provider's message and the
retry-after hint. A provider's table is a tuple of :class:`Rule`; the first rule that matches gives
the verdict. Tables list, in this order (llm-providers.md §4 "Classifier rules"): body type/code/reason
rules, then message-text rules (billing before rate-limit), then status rules; every table ends
with :data:`COMMON_TEXT` and :data:`COMMON_STATUS`, so every answer gets a verdict.

Top-level ``type``/``code`` members are error tokens only in an error answer (:attr:`Answer.is_error`):
a successful Anthropic-style reply ``{"type": "message", ...}`` or a ``{"code": 0, ...}`` success
body carries no error token, so a 2xx is only read as an error when its body says so.
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from controlplane.enums import KeyVerdict

V = KeyVerdict


@dataclass(frozen=True, slots=True)
class Answer:
    """What a provider said, reduced to what the rules look at. Holds raw provider text: internal
    to the classifier; only redacted text leaves :mod:`controlplane.byok`."""

    status: int
    tokens: frozenset[str]
    message: str
    body: Any
    text: str
    retry_after: float | None = None
    #: An error answer: HTTP status >= 400, or an error body on any status (``type``/``object``
    #: "error", an ``error`` member, a non-zero MiniMax ``base_resp.status_code``). Only then do
    #: the body's top-level ``type``/``code`` count as error tokens.
    is_error: bool = False


@dataclass(frozen=True, slots=True)
class Rule:
    """One row of a provider table. Every condition given must hold."""

    verdict: KeyVerdict
    status: frozenset[int] | None = None
    codes: frozenset[str] | None = None  # lower-case tokens (type, code, status, reason ...)
    message: re.Pattern[str] | None = None  # searched in the provider's message
    body: re.Pattern[str] | None = None  # searched in the raw body text
    says: str | None = None  # the person-readable sentence; default: verdicts.MESSAGES
    quote: bool = False  # append the provider's (redacted) message to the sentence
    flags: tuple[str, ...] = ()

    def matches(self, answer: Answer) -> bool:
        if self.status is not None and answer.status not in self.status:
            return False
        if self.codes is not None and not (self.codes & answer.tokens):
            return False
        if self.message is not None and not self.message.search(answer.message):
            return False
        if self.body is not None and not self.body.search(answer.text):
            return False
        return True


def rule(
    verdict: KeyVerdict,
    *,
    status: Iterable[int] | int | None = None,
    codes: Iterable[str] | str | None = None,
    message: str | None = None,
    body: str | None = None,
    says: str | None = None,
    quote: bool = False,
    flags: tuple[str, ...] = (),
) -> Rule:
    """Build a :class:`Rule` (codes lower-cased, patterns case-insensitive)."""
    if isinstance(status, int):
        status = (status,)
    if isinstance(codes, str):
        codes = (codes,)
    return Rule(
        verdict=verdict,
        status=frozenset(status) if status is not None else None,
        codes=frozenset(c.lower() for c in codes) if codes is not None else None,
        message=re.compile(message, re.I) if message else None,
        body=re.compile(body) if body else None,
        says=says,
        quote=quote,
        flags=flags,
    )


_SERVER = tuple(range(500, 600))

#: Text every provider uses for the same thing; tried after a provider's own rules.
COMMON_TEXT: tuple[Rule, ...] = (
    rule(V.revoked_or_blocked, message=r"\b(?:key|token) (?:has been|was|is) (?:revoked|disabled|blocked)"),
    rule(
        V.revoked_or_blocked, message=r"account (?:has been|was|is) (?:deactivated|suspended|disabled|banned)"
    ),
    rule(V.no_credit, message=r"insufficient (?:balance|credits?|funds)|credit balance|out of credits"),
    rule(V.spend_limit, message=r"spend(?:ing)? limit|usage limit"),
)

#: By HTTP status alone: the last resort of every table.
COMMON_STATUS: tuple[Rule, ...] = (
    rule(V.invalid_key, status=401),
    rule(V.no_credit, status=402),
    rule(V.permission, status=403),
    rule(V.overloaded, status=(408, *_SERVER)),
    rule(V.rate_limited, status=429),
)

FALLBACK = rule(V.unknown)


def classify_answer(rules: Iterable[Rule], answer: Answer) -> Rule:
    """The first matching rule of ``rules`` + COMMON_TEXT + COMMON_STATUS (else ``unknown``)."""
    for candidate in (*rules, *COMMON_TEXT, *COMMON_STATUS):
        if candidate.matches(answer):
            return candidate
    return FALLBACK


# --------------------------------------------------------------------------------------------
# Reading a provider's answer


def parse_json(text: str) -> Any:
    try:
        return json.loads(text)
    except (ValueError, RecursionError):
        return None


def as_number(value: Any) -> float | None:
    """A JSON number, or a string holding one (``"0.00"``); ``None`` for anything else."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip())
        except ValueError:
            return None
    else:
        return None
    return number if number == number and number not in (float("inf"), float("-inf")) else None


def _as_token(value: Any) -> str | None:
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (str, int)):
        token = str(value).strip().lower()
        return token or None
    return None


_PAREN_CODE = re.compile(r"\((\d{3,5})\)")


def extract(status: int, text: str, headers: Mapping[str, str]) -> Answer:
    """Reduce an HTTP answer to an :class:`Answer` (every provider's body shape, llm-providers.md §3)."""
    body = parse_json(text)
    tokens: set[str] = set()
    messages: list[str] = []

    def add(value: Any) -> None:
        token = _as_token(value)
        if token:
            tokens.add(token)

    def add_message(value: Any) -> None:
        if isinstance(value, str) and value.strip():
            messages.append(value.strip())

    is_error = False
    if isinstance(body, dict):
        error = body.get("error")
        base = body.get("base_resp")  # MiniMax: also on HTTP 200
        base_code = base.get("status_code") if isinstance(base, dict) else None
        base_failed = base_code not in (None, 0, "0")
        is_error = (
            status >= 400
            or body.get("type") == "error"
            or body.get("object") == "error"
            or isinstance(error, (dict, str))
            or base_failed
        )
        if isinstance(error, dict):
            for k in ("type", "code", "status", "reason"):
                add(error.get(k))
            add_message(error.get("message"))
            details = error.get("details")
            if isinstance(details, list):
                for d in details:
                    if isinstance(d, dict):
                        add(d.get("reason"))
            metadata = error.get("metadata")
            if isinstance(metadata, dict):
                add(metadata.get("limit_source"))
                add_message(metadata.get("reason"))
        elif isinstance(error, str):  # xAI {"code": "...", "error": "..."}
            add_message(error)
        if is_error:  # a success body's "type": "message" or "code": 0 is not an error code
            for k in ("type", "code"):
                add(body.get(k))
        add_message(body.get("message"))
        add_message(body.get("detail"))
        if base_failed and isinstance(base, dict):
            add(base_code)
            add_message(base.get("status_msg"))
    message = " | ".join(messages)
    tokens.update(_PAREN_CODE.findall(message))  # MiniMax "system error (1033)"
    return Answer(
        status=status,
        tokens=frozenset(tokens),
        message=message,
        body=body,
        text=text,
        retry_after=retry_after(headers, body),
        is_error=is_error,
    )


# --------------------------------------------------------------------------------------------
# Retry hints

_MAX_RETRY_AFTER = 24 * 3600.0


def _clamp(seconds: float) -> float | None:
    if seconds != seconds:  # NaN
        return None
    return min(max(seconds, 0.0), _MAX_RETRY_AFTER)


def _parse_header(value: str, now: Callable[[], float]) -> float | None:
    value = value.strip()
    try:
        return _clamp(float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return _clamp(when.timestamp() - now())


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)s\s*$")


def retry_after(headers: Mapping[str, str], body: Any, now: Callable[[], float] = time.time) -> float | None:
    """Seconds to wait, from ``retry-after-ms``/``retry-after`` or Gemini's ``RetryInfo``."""
    ms = headers.get("retry-after-ms")
    if ms:
        try:
            return _clamp(float(ms) / 1000.0)
        except ValueError:
            pass
    header = headers.get("retry-after")
    if header:
        parsed = _parse_header(header, now)
        if parsed is not None:
            return parsed
    if isinstance(body, dict) and isinstance(body.get("error"), dict):
        details = body["error"].get("details")
        if isinstance(details, list):
            for d in details:
                if isinstance(d, dict) and str(d.get("@type", "")).endswith("RetryInfo"):
                    m = _DURATION.match(str(d.get("retryDelay", "")))
                    if m:
                        return _clamp(float(m.group(1)))
    return None


# --------------------------------------------------------------------------------------------
# What a provider module provides


@dataclass(frozen=True, slots=True)
class Outcome:
    """A success inspector's finding on a 2xx answer (e.g. "balance is zero")."""

    verdict: KeyVerdict
    says: str | None = None
    flags: tuple[str, ...] = ()


SuccessInspector = Callable[[str, Any], Outcome | None]


def no_inspection(_probe: str, _body: Any) -> Outcome | None:
    return None


@dataclass(frozen=True, slots=True)
class ProviderClassifier:
    """One provider's table and, for 2xx answers, what its body says (credit, flags)."""

    rules: tuple[Rule, ...]
    on_success: SuccessInspector = no_inspection
    errors_on_200: bool = False  # MiniMax base_resp: a 200 may carry an error


__all__ = [
    "Answer",
    "COMMON_STATUS",
    "COMMON_TEXT",
    "FALLBACK",
    "Outcome",
    "ProviderClassifier",
    "Rule",
    "SuccessInspector",
    "V",
    "as_number",
    "classify_answer",
    "extract",
    "no_inspection",
    "parse_json",
    "retry_after",
    "rule",
]
