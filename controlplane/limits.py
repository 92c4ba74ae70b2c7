"""Input limits at every edge, checked before anything is parsed.

The pure core lives in :mod:`agents_config.inputs` (the bottom layer reads catalogs too) and is
re-exported here; this module adds the HTTP side, shared by the dashboard API
(:mod:`controlplane.api.limits`) and the Fly emulator:

* :func:`check_content_length`: a declared ``Content-Length`` over the limit (or not a number) is
  refused before one byte of the body is read;
* :func:`read_body`: an ASGI body read up to the limit, then refused (a chunked body never read whole);
* :func:`check_json_body` / :func:`parse_json_body`: depth and number size scanned before
  ``json.loads`` recurses or ``int()`` chokes; syntax errors without quoting the body.

Refusals are :class:`InputRefused` (bad input: 400/422, exit 2) or its subclass :class:`TooLarge`
(size, depth, number length: 413). Neither ever quotes the input. Values given where a name is
expected are mentioned only through :func:`describe_given`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from agents_config.inputs import (
    DEFAULT_LIMITS,
    MAX_DEPTH,
    MAX_FILE_BYTES,
    MAX_NUMBER_DIGITS,
    InputRefused,
    Limits,
    TooLarge,
    check_depth,
    decode_text,
    describe_given,
    is_plain_name,
    load_json_file,
    load_toml_file,
    name_or_given,
    parse_json_bytes,
    parse_toml_bytes,
    path_or_given,
    path_part,
    read_file,
    read_stream,
    scan_json,
    scan_toml,
)

Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]

#: Longest ``Content-Length`` value we read as a number (19 digits fit a signed 64-bit length).
_MAX_LENGTH_DIGITS = 19


def body_limits(
    max_bytes: int, *, max_depth: int = MAX_DEPTH, max_number_digits: int = MAX_NUMBER_DIGITS
) -> Limits:
    """The limits of an HTTP body of at most ``max_bytes``."""
    return Limits(max_bytes=max_bytes, max_depth=max_depth, max_number_digits=max_number_digits)


def check_content_length(value: bytes | str | None, max_bytes: int, subject: str = "body") -> int | None:
    """The declared length (None when absent). Refused: not a number (:class:`InputRefused`, subject
    ``content-length``), over ``max_bytes`` (:class:`TooLarge`)."""
    if value is None:
        return None
    text = (value.decode("latin-1") if isinstance(value, bytes) else value).strip()
    if not text.isascii() or not text.isdigit() or len(text) > _MAX_LENGTH_DIGITS:
        raise InputRefused("content-length", "must be a number of bytes")
    length = int(text)
    if length > max_bytes:
        raise TooLarge(subject, f"larger than the limit of {max_bytes:,} bytes")
    return length


async def read_body(receive: Receive, max_bytes: int, subject: str = "body") -> bytes:
    """An ASGI request body, read until it passes ``max_bytes`` (then :class:`TooLarge`; the rest is
    never read). A disconnect ends the body."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        kind = message.get("type")
        if kind == "http.disconnect":
            break
        if kind != "http.request":
            continue
        chunk = bytes(message.get("body", b"") or b"")
        size += len(chunk)
        if size > max_bytes:
            raise TooLarge(subject, f"larger than the limit of {max_bytes:,} bytes")
        chunks.append(chunk)
        if not message.get("more_body"):
            break
    return b"".join(chunks)


def check_json_body(body: bytes, limits: Limits, subject: str = "body") -> None:
    """Scan a JSON body for the limits without parsing it (the caller's framework parses). Bytes that
    are not UTF-8 are left to the parser's own error."""
    if len(body) > limits.max_bytes:
        raise TooLarge(subject, f"larger than the limit of {limits.max_bytes:,} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return
    scan_json(text, subject, limits)


def parse_json_body(body: bytes, limits: Limits, subject: str = "body") -> Any:
    """A JSON body parsed within ``limits`` (None for an empty body). The emulator's and any other
    hand-written endpoint's one way to read JSON."""
    if not body.strip():
        return None
    return parse_json_bytes(body, subject, limits)


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NUMBER_DIGITS",
    "InputRefused",
    "Limits",
    "TooLarge",
    "body_limits",
    "check_content_length",
    "check_depth",
    "check_json_body",
    "decode_text",
    "describe_given",
    "load_json_file",
    "load_toml_file",
    "is_plain_name",
    "name_or_given",
    "path_or_given",
    "path_part",
    "parse_json_body",
    "parse_json_bytes",
    "parse_toml_bytes",
    "read_body",
    "read_file",
    "read_stream",
    "scan_json",
    "scan_toml",
]
