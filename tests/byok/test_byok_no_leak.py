"""Property: whatever a provider answers (bodies echoing the key fully or in part, odd headers,
transport exceptions carrying the key), the key never appears in logs, exceptions or anything
returned (verdict message, detail, preview, JSON)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents_config.providers import PROVIDER_IDS
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.redaction import FRAGMENT_LEN, preview, redact_key
from controlplane.byok.validate import KeyValidator
from tests.byok.byok_fakes import valid_key

STATUSES = [200, 201, 301, 302, 400, 401, 402, 403, 404, 408, 413, 422, 429, 498, 499, 500, 502, 503, 504, 529]
EXCEPTIONS = [httpx.ConnectError, httpx.ReadTimeout, httpx.ConnectTimeout, httpx.RemoteProtocolError,
              ValueError, RuntimeError, OSError, KeyError]


@st.composite
def echoes(draw: st.DrawFn, key: str) -> str:
    """The key, a slice of it, or a masked echo of it, wrapped in some text."""
    start = draw(st.integers(0, len(key) - FRAGMENT_LEN))
    end = draw(st.integers(start + FRAGMENT_LEN, len(key)))
    piece = draw(st.sampled_from([
        key,
        key[start:end],
        key[:start] + "*" * 20 + key[-4:],
        key[:2] + "***" + key[-2:],
        key.upper(),
        "Bearer " + key,
    ]))
    before = draw(st.text(max_size=20))
    after = draw(st.text(max_size=20))
    return before + piece + after


@st.composite
def answers(draw: st.DrawFn, key: str) -> dict[str, Any]:
    echo = echoes(key)
    text_value = st.one_of(echo, st.text(max_size=40))
    kind = draw(st.sampled_from(["json", "raw", "exception"]))
    if kind == "exception":
        return {"exception": draw(st.sampled_from(EXCEPTIONS)), "message": draw(echo)}
    status = draw(st.sampled_from(STATUSES))
    headers = {"x-echo": draw(echo).encode("ascii", "ignore").decode() or "x"}
    if draw(st.booleans()):
        headers["retry-after"] = draw(st.sampled_from(["5", "-3", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "junk"]))
    if kind == "raw":
        return {"status": status, "text": draw(echo), "headers": headers}
    body = draw(st.sampled_from(["anthropic", "openai", "google", "minimax", "xai", "cohere", "deep"]))
    msg = draw(text_value)
    shapes: dict[str, Any] = {
        "anthropic": {"type": "error", "error": {"type": draw(st.sampled_from(["authentication_error", "invalid_request_error", "weird"])), "message": msg}},
        "openai": {"error": {"message": msg, "type": draw(text_value), "code": draw(text_value)}},
        "google": {"error": {"code": status, "message": msg, "status": "INVALID_ARGUMENT", "details": [{"@type": "x.ErrorInfo", "reason": draw(text_value)}, {"@type": "x.RetryInfo", "retryDelay": draw(text_value)}]}},
        "minimax": {"base_resp": {"status_code": draw(st.sampled_from([0, 1004, 1008, 2056, 9999])), "status_msg": msg}},
        "xai": {"code": draw(text_value), "error": msg},
        "cohere": {"message": msg, "valid": draw(st.booleans())},
        "deep": {"data": {"message": msg, "nested": [msg, {"k": msg}]}, "redacted_api_key": msg},
    }
    return {"status": status, "text": json.dumps(shapes[body]), "headers": headers}


def _transport(answer: dict[str, Any]) -> httpx.MockTransport:
    def handler(request: httpx.Request) -> httpx.Response:
        if "exception" in answer:
            raise answer["exception"](answer["message"])
        return httpx.Response(answer["status"], text=answer["text"], headers=answer["headers"])

    return httpx.MockTransport(handler)


async def _no_sleep(_s: float) -> None:
    return None


@st.composite
def cases(draw: st.DrawFn) -> tuple[str, str, dict[str, Any]]:
    provider = draw(st.sampled_from(PROVIDER_IDS))
    key = valid_key(provider, seed=draw(st.integers(0, 10_000)))
    return provider, key, draw(answers(key))


def _fragments(key: str) -> list[str]:
    return [key[i : i + FRAGMENT_LEN] for i in range(len(key) - FRAGMENT_LEN + 1)]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=cases())
async def test_the_key_never_leaks_from_validation(case: tuple[str, str, dict[str, Any]]) -> None:
    provider, key, answer = case
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    root = logging.getLogger()
    root.addHandler(handler)
    old_level = root.level
    root.setLevel(logging.DEBUG)
    try:
        with structlog.testing.capture_logs() as logs:
            try:
                verdict = await KeyValidator(transport=_transport(answer), max_attempts=2, sleep=_no_sleep).validate(
                    provider, ProviderKeyValue(key)
                )
            except Exception as exc:  # noqa: BLE001 - the property is about its text
                raise AssertionError(f"validate raised {type(exc).__name__}") from None
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)

    returned = json.dumps(verdict.to_dict(), ensure_ascii=False) + repr(verdict) + str(verdict)
    logged = stream.getvalue() + repr(logs)
    for where in (returned, logged):
        assert key not in where
        assert not any(f in where for f in _fragments(key)), where


@settings(max_examples=300, deadline=None)
@given(data=st.data(), provider=st.sampled_from(PROVIDER_IDS))
def test_redaction_removes_every_echo(data: st.DataObject, provider: str) -> None:
    key = valid_key(provider, seed=data.draw(st.integers(0, 10_000)))
    text = data.draw(echoes(key))
    for out in (redact_key(text, ProviderKeyValue(key)), preview(text, ProviderKeyValue(key))):
        assert key not in out
        assert not any(f in out for f in _fragments(key))


def test_provider_key_value_never_shows_itself() -> None:
    key = valid_key("anthropic")
    value = ProviderKeyValue(key)
    for shown in (repr(value), str(value), f"{value}", f"{value!r}", repr([value]), repr({"k": value})):
        assert key not in shown and "*" in shown
    assert value.reveal() == key and value.last4 == key[-4:]
    try:
        import pickle

        pickle.dumps(value)
    except TypeError as exc:
        assert key not in str(exc)
    else:
        raise AssertionError("ProviderKeyValue must not be picklable")
