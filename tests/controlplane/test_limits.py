"""Input limits (controlplane/limits.py, agents_config/inputs.py): refused before parsing, one
message naming the input, never quoting it."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from controlplane import limits
from controlplane.limits import InputRefused, Limits, TooLarge

SMALL = Limits(max_bytes=4096, max_depth=8, max_number_digits=20)


def test_an_endless_stream_is_read_only_to_the_limit() -> None:
    class Endless(io.RawIOBase):
        read_bytes = 0

        def readable(self) -> bool:
            return True

        def read(self, size: int = -1) -> bytes:
            n = 1 << 16 if size < 0 else size
            self.read_bytes += n
            return b"\0" * n

    stream = Endless()
    with pytest.raises(TooLarge, match="larger than the limit of 4,096 bytes"):
        limits.read_stream(stream, "--spec", SMALL)  # type: ignore[arg-type]
    assert stream.read_bytes == SMALL.max_bytes + 1


def test_dev_zero_is_refused_without_eating_memory() -> None:
    with pytest.raises(TooLarge, match=r"^/dev/zero: larger than"):
        limits.load_json_file("/dev/zero", SMALL)


def test_files_that_cannot_be_read_name_the_path(tmp_path: Path) -> None:
    with pytest.raises(InputRefused, match="is a directory"):
        limits.read_file(tmp_path)
    with pytest.raises(InputRefused, match="cannot read: No such file"):
        limits.read_file(tmp_path / "missing.json")
    big = tmp_path / "big.toml"
    big.write_bytes(b"#" * 5000)
    with pytest.raises(TooLarge):
        limits.load_toml_file(big, SMALL)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\xff\xfe{}", "not UTF-8 text (invalid byte at offset 0)"),
        (b"[" * 100_000 + b"]" * 100_000, "nested deeper than 8 levels"),
        (b'{"a": ' + b"9" * 5000 + b"}", "holds a number longer than 20 digits"),
        (b'{"a": NaN}', "invalid JSON"),
        (b'{"a": 1,}', "invalid JSON at line 1, column 9"),
    ],
)
def test_json_refusals(data: bytes, reason: str) -> None:
    with pytest.raises(InputRefused) as caught:
        limits.parse_json_bytes(
            data, "spec.json", Limits(max_bytes=1 << 20, max_depth=8, max_number_digits=20)
        )
    assert str(caught.value).startswith(f"spec.json: {reason}")


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("a = " + "[" * 100_000 + "]" * 100_000, "nested deeper than 8 levels"),
        ("a = " + "{b = " * 50 + "1" + "}" * 50, "nested deeper than 8 levels"),
        ("a = " + "9" * 5000, "holds a number longer than 20 digits"),
        ("a = 1_" + "0" * 30, "holds a number longer than 20 digits"),
        ("[" + ".".join(["x"] * 50) + "]", "nested deeper than 8 levels"),
        ("a = [", "invalid TOML"),
    ],
)
def test_toml_refusals(text: str, reason: str) -> None:
    with pytest.raises(InputRefused) as caught:
        limits.parse_toml_bytes(
            text.encode(), "plans.toml", Limits(max_bytes=1 << 20, max_depth=8, max_number_digits=20)
        )
    assert str(caught.value).startswith(f"plans.toml: {reason}")


def test_strings_and_comments_do_not_count() -> None:
    deep = "[" * 50
    digits = "9" * 50
    toml = f'a = "{deep}{digits}\\""\nb = \'{deep}\'\nc = \'\'\'{deep}\'\'\'\nd = """{deep}""" # {deep}{digits}\n'
    assert limits.parse_toml_bytes(toml.encode(), "t", SMALL)["b"] == deep
    assert limits.parse_json_bytes(f'{{"a": "{deep}\\"{digits}"}}'.encode(), "j", SMALL) == {
        "a": f'{deep}"{digits}'
    }


def test_content_length_and_body_reads() -> None:
    assert limits.check_content_length(None, 10) is None
    assert limits.check_content_length(b"10", 10) == 10
    with pytest.raises(TooLarge):
        limits.check_content_length(b"11", 10)
    for bad in (b"2x", b"-1", "٣", b"9" * 40):
        with pytest.raises(InputRefused, match="content-length: must be a number"):
            limits.check_content_length(bad, 10)

    def chunks(*parts: bytes) -> Any:
        messages = [{"type": "http.request", "body": p, "more_body": True} for p in parts]
        messages.append({"type": "http.request", "body": b"", "more_body": False})
        it = iter(messages)

        async def receive() -> dict[str, Any]:
            return next(it)

        return receive

    assert asyncio.run(limits.read_body(chunks(b"ab", b"cd"), 4)) == b"abcd"
    with pytest.raises(TooLarge):
        asyncio.run(limits.read_body(chunks(b"ab", b"cde", b"never read"), 4))
    assert limits.parse_json_body(b"  ", SMALL) is None
    assert limits.parse_json_body(b'{"a": [1, 2.5]}', SMALL) == {"a": [1, 2.5]}


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("sk-ant-api03-" + "x" * 40, "a 53-character value starting 'sk'"),
        ("anthrpic", "a 8-character value starting 'an'"),
        ("short", "a 5-character value"),
        ("", "an empty value"),
        (12, "a int value"),
        ("--\u200bsecret-looking", "a 17-character value"),
    ],
)
def test_describe_given_says_length_and_a_short_head_only(value: object, said: str) -> None:
    assert limits.describe_given(value) == said


@settings(max_examples=150, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=300).map(str.encode))
def test_any_bytes_parse_or_refuse_cleanly(data: bytes) -> None:
    for parse in (limits.parse_json_bytes, limits.parse_toml_bytes):
        try:
            parse(data, "input", SMALL)
        except InputRefused as exc:
            assert str(exc).startswith("input: ") and "\n" not in exc.reason


@pytest.mark.parametrize(
    ("value", "said"),
    [
        ("antropic", "'antropic'"),
        ("max_tokens_per_month", "'max_tokens_per_month'"),
        ("tier2", "'tier2'"),
        ("sk-abcdefghijklmnopqrstu", "a 24-character value starting 'sk'"),
        ("Anthropic", "a 9-character value starting 'An'"),
        ("a1b2c3d4e5f6a7b8c9d0", "a 20-character value starting 'a1'"),
        ("x" * 40, "a 40-character value starting 'xx'"),
        ("openai/gpt-4.1-mini", "'openai/gpt-4.1-mini'"),
        ("anthropic/claude-sonnet-4-20250514", "'anthropic/claude-sonnet-4-20250514'"),
        ("3f2a9c1e-0b4d-4e5f-9a8b-7c6d5e4f3a2b", "a 36-character value starting '3f'"),
        ("gsk_abcdefghijklmnopqrstuvwxyz", "a 30-character value starting 'gs'"),
    ],
)
def test_plain_names_are_quoted_anything_else_described(value: str, said: str) -> None:
    assert limits.name_or_given(value) == said


def test_the_api_middleware_uses_the_same_limits() -> None:
    import httpx

    from controlplane.api.limits import BodyLimit

    seen: list[bytes] = []

    async def echo(scope: Any, receive: Any, send: Any) -> None:
        message = await receive()
        seen.append(message["body"])
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    async def go() -> list[tuple[int, str]]:
        transport = httpx.ASGITransport(app=BodyLimit(echo, max_bytes=2048))
        json_type = {"content-type": "application/json"}
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            answers = [
                await client.post("/", content=b'{"a": ' + b"9" * 60 + b"}", headers=json_type),
                await client.post("/", content=b"[" * 40 + b"]" * 40, headers=json_type),
                await client.post("/", content=b"x" * 3000),
                await client.post("/", content=b"{}", headers={**json_type, "content-length": "2x"}),
                await client.post("/", content=b'{"a": [1, 2]}', headers=json_type),
            ]
        return [(r.status_code, r.text) for r in answers]

    answers = asyncio.run(go())
    assert [status for status, _ in answers] == [413, 413, 413, 422, 200]
    assert "holds a number longer than 40 digits" in answers[0][1]
    assert "nested deeper than 32 levels" in answers[1][1]
    assert seen == [b'{"a": [1, 2]}']


def _reference_scan(text: str, limits: Limits) -> str | None:
    """The plain character-by-character scan the fast one must agree with."""
    depth = digits = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
            continue
        if "0" <= char <= "9":
            digits += 1
            if digits > limits.max_number_digits:
                return "number"
            continue
        digits = 0
        if char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            if depth > limits.max_depth:
                return "depth"
        elif char in "]}":
            depth -= 1
    return None


_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.text(alphabet='ab"\\[]{}09 ', max_size=8),
    lambda children: (
        st.lists(children, max_size=3)
        | st.dictionaries(st.text(alphabet='k"\\[{9', max_size=4), children, max_size=3)
    ),
    max_leaves=30,
)


@settings(max_examples=300, deadline=None)
@given(
    value=_json_values,
    depth=st.integers(min_value=1, max_value=6),
    digits=st.integers(min_value=1, max_value=25),
)
def test_the_fast_json_scan_agrees_with_a_plain_scan(value: object, depth: int, digits: int) -> None:
    import json

    text = json.dumps(value)
    bounds = Limits(max_bytes=1 << 20, max_depth=depth, max_number_digits=digits)
    expected = _reference_scan(text, bounds)
    try:
        limits.scan_json(text, "b", bounds)
        got = None
    except TooLarge as exc:
        got = "number" if "number" in exc.reason else "depth"
    assert (got is None) == (expected is None)


def test_paths_from_settings_are_shown_only_when_plain() -> None:
    assert limits.path_or_given("/etc/cp/plans.toml") == "/etc/cp/plans.toml"
    assert limits.path_or_given("./plans/v2.toml") == "./plans/v2.toml"
    assert limits.path_or_given("/tmp/Zr4kQ9wLm2Xv8TbN5cHy3JpD6fGs1aEu") == "a 37-character value"


@settings(max_examples=100, deadline=None)
@given(
    body=st.binary(max_size=600) | st.text(alphabet='[]{}"\\0123456789:,ab ', max_size=600).map(str.encode),
    length=st.none()
    | st.sampled_from(["", "-1", "12x", "99999999999999999999", "٣"])
    | st.integers(0, 5000).map(str),
    content_type=st.sampled_from(["application/json", "text/plain", "application/merge-patch+json"]),
)
def test_the_api_middleware_answers_any_body_with_200_413_or_422(
    body: bytes, length: str | None, content_type: str
) -> None:
    from controlplane.api.limits import BodyLimit

    sent: list[dict[str, Any]] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        await receive()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    headers = [(b"content-type", content_type.encode())]
    if length is not None:
        headers.append((b"content-length", length.encode()))
    scope = {"type": "http", "method": "POST", "path": "/", "query_string": b"", "headers": headers}
    chunks = [body[i : i + 128] for i in range(0, len(body), 128)] or [b""]
    messages = [
        {"type": "http.request", "body": c, "more_body": i < len(chunks) - 1} for i, c in enumerate(chunks)
    ]

    async def receive() -> dict[str, Any]:
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    asyncio.run(BodyLimit(app, max_bytes=512, max_depth=8)(scope, receive, send))
    status = sent[0]["status"]
    assert status in (200, 413, 422)
    if len(body) > 512 or (length and length.isdigit() and int(length) > 512):
        assert status in (413, 422)
