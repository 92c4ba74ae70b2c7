"""Property: whatever a provider answers (bodies echoing the key fully or in part, odd headers,
transport exceptions carrying the key), the key never appears in logs, exceptions or anything
returned (verdict message, detail, preview, JSON)."""

from __future__ import annotations

import io
import json
import logging
from typing import Any

import httpx
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agents_config.providers import PROVIDER_IDS
from controlplane.byok.keyvalue import ProviderKeyValue
from controlplane.byok.redaction import FRAGMENT_LEN, preview, redact_key
from controlplane.byok.validate import KeyValidator
from controlplane.redaction import MASK
from tests.support.byok_fakes import valid_key

STATUSES = [
    200,
    201,
    301,
    302,
    400,
    401,
    402,
    403,
    404,
    408,
    413,
    422,
    429,
    498,
    499,
    500,
    502,
    503,
    504,
    529,
]
EXCEPTIONS = [
    httpx.ConnectError,
    httpx.ReadTimeout,
    httpx.ConnectTimeout,
    httpx.RemoteProtocolError,
    ValueError,
    RuntimeError,
    OSError,
    KeyError,
]


@st.composite
def echoes(draw: st.DrawFn, key: str) -> str:
    """The key, a slice of it, or a masked echo of it, wrapped in some text."""
    start = draw(st.integers(0, len(key) - FRAGMENT_LEN))
    end = draw(st.integers(start + FRAGMENT_LEN, len(key)))
    piece = draw(
        st.sampled_from(
            [
                key,
                key[start:end],
                key[:start] + "*" * 20 + key[-4:],
                key[:2] + "***" + key[-2:],
                key[:7] + "..." + key[-4:],  # keys without a prefix (Mistral, Cohere)
                key[:start] + draw(st.sampled_from(["...", "…", "****"])) + key[-4:],
                "****" + key[-4:],
                key.upper(),
                "Bearer " + key,
            ]
        )
    )
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
        headers["retry-after"] = draw(
            st.sampled_from(["5", "-3", "nan", "Wed, 21 Oct 2015 07:28:00 GMT", "junk"])
        )
    if kind == "raw":
        return {"status": status, "text": draw(echo), "headers": headers}
    body = draw(st.sampled_from(["anthropic", "openai", "google", "minimax", "xai", "cohere", "deep"]))
    msg = draw(text_value)
    shapes: dict[str, Any] = {
        "anthropic": {
            "type": "error",
            "error": {
                "type": draw(st.sampled_from(["authentication_error", "invalid_request_error", "weird"])),
                "message": msg,
            },
        },
        "openai": {"error": {"message": msg, "type": draw(text_value), "code": draw(text_value)}},
        "google": {
            "error": {
                "code": status,
                "message": msg,
                "status": "INVALID_ARGUMENT",
                "details": [
                    {"@type": "x.ErrorInfo", "reason": draw(text_value)},
                    {"@type": "x.RetryInfo", "retryDelay": draw(text_value)},
                ],
            }
        },
        "minimax": {
            "base_resp": {
                "status_code": draw(st.sampled_from([0, 1004, 1008, 2056, 9999])),
                "status_msg": msg,
            }
        },
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
                verdict = await KeyValidator(
                    transport=_transport(answer), max_attempts=2, sleep=_no_sleep
                ).validate(provider, ProviderKeyValue(key))
            except Exception as exc:
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


# ---------------------------------------------------------------------------------------------
# Masked echoes: the visible head and tail next to the mask are key pieces too (too short to be
# caught as fragments), so the whole echo goes.

ECHO_SHAPES = [
    ("prefix, dots, last 4", lambda k: k[:8] + "..." + k[-4:]),
    ("no prefix: 7 + ... + 4 (Mistral, Cohere)", lambda k: k[:7] + "..." + k[-4:]),
    ("unicode ellipsis, last 6", lambda k: k[:12] + "…" + k[-6:]),
    ("stars", lambda k: k[:8] + "*" * 20 + k[-4:]),
    ("xAI style", lambda k: k[:2] + "***" + k[-2:]),
    ("stars then last 4", lambda k: "****" + k[-4:]),
    ("dots then last 4", lambda k: "..." + k[-4:]),
    ("3 + ... + 3", lambda k: k[:3] + "..." + k[-3:]),
]
SENTENCES = [
    ("Incorrect API key provided: ", ". You can find your API key at https://example.com/keys."),
    ("Invalid key ", ""),
    ("Authentication Fails, Your api key: ", " is invalid"),
    ('{"message": "bad key ', '"}'),
]


@pytest.mark.parametrize("provider", PROVIDER_IDS)
@pytest.mark.parametrize(("shape", "make"), ECHO_SHAPES, ids=[s for s, _ in ECHO_SHAPES])
@pytest.mark.parametrize(("before", "after"), SENTENCES)
def test_masked_echoes_are_removed_whole(provider: str, shape: str, make, before: str, after: str) -> None:  # type: ignore[no-untyped-def]
    key = valid_key(provider)
    text = before + make(key) + after
    assert redact_key(text, ProviderKeyValue(key)) == before + MASK + after
    assert redact_key(text) == before + MASK + after  # even without knowing the key


@settings(max_examples=300, deadline=None)
@given(
    data=st.data(),
    provider=st.sampled_from(PROVIDER_IDS),
    head=st.integers(0, 14),
    tail=st.integers(2, 6),
    mask=st.sampled_from(["...", "…", "**", "***", "*" * 8, "*" * 20]),
    sentence=st.sampled_from(SENTENCES),
)
def test_every_masked_echo_shape_is_removed_whole(
    data: st.DataObject, provider: str, head: int, tail: int, mask: str, sentence: tuple[str, str]
) -> None:
    key = valid_key(provider, seed=data.draw(st.integers(0, 10_000)))
    before, after = sentence
    text = before + key[:head] + mask + key[-tail:] + after
    for known in (ProviderKeyValue(key), None):
        assert redact_key(text, known) == before + MASK + after


@pytest.mark.parametrize("provider", PROVIDER_IDS)
def test_an_upper_or_lower_cased_echo_leaves_no_fragment(provider: str) -> None:
    key = valid_key(provider)
    for echo in (key.upper(), key.lower(), key.swapcase()[3:]):
        out = redact_key(f"Your key {echo} is invalid", ProviderKeyValue(key)).lower()
        assert not any(f.lower() in out for f in _fragments(key)), out


def test_ordinary_prose_with_ellipses_and_stars_is_kept() -> None:
    text = "Please wait... then retry. Not found the model or Permission denied"
    assert redact_key(text) == text


def test_preview_reads_a_bounded_head_and_cuts_no_token_in_half() -> None:
    key = valid_key("openai")
    body = "x " * 1000 + "a1" * 100_000 + " " + key
    out = preview(body, ProviderKeyValue(key))
    assert len(out) <= 300 and key not in out and "a1a1" not in out
