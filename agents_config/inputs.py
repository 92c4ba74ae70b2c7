"""Hostile input, refused before it is parsed: the pure core of :mod:`controlplane.limits`.

Every file, stdin or HTTP body the project parses (tenant specs, plan catalogs, plan maps, API and
emulator bodies) goes through here first:

* size: at most ``max_bytes`` are ever read (``--spec /dev/zero`` reads ``max_bytes + 1`` bytes and
  stops);
* text: strict UTF-8 (a leading BOM is dropped);
* nesting: arrays/objects (JSON) or arrays/inline tables (TOML) deeper than ``max_depth`` are refused
  by a linear scan, before the parser recurses; TOML's dotted keys are checked on the parsed value
  (their parsing does not recurse);
* numbers: a run of digits longer than ``max_number_digits`` is refused before ``int()`` sees it
  (Python refuses 4,300 digits with a ``ValueError`` from deep inside the parser); JSON's
  ``NaN``/``Infinity`` are refused.

A refusal is :class:`InputRefused` (a ``ValueError``) naming the input and the reason, never quoting
the input. :func:`describe_given` is the one way to mention a value the user supplied where a name
was expected (an unknown provider, an unknown field): a length and a two-character head, never more.

Stdlib only (``agents_config`` is the bottom layer); :mod:`controlplane.limits` re-exports it.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from dataclasses import dataclass
from functools import lru_cache
from itertools import accumulate
from pathlib import Path
from typing import IO, Any

#: Defaults for files an operator hands us (specs, catalogs, plan maps).
MAX_FILE_BYTES = 1 << 20
MAX_DEPTH = 32
MAX_NUMBER_DIGITS = 40


class InputRefused(ValueError):
    """Input refused before (or instead of) parsing. ``subject`` names the input (a path, an option,
    ``body``), ``reason`` says why; the input itself is never quoted."""

    def __init__(self, subject: str, reason: str) -> None:
        self.subject = subject
        self.reason = reason
        super().__init__(f"{subject}: {reason}" if subject else reason)


class TooLarge(InputRefused):
    """Refused for its size: too many bytes, too deep, or a number too long (HTTP 413)."""


@dataclass(frozen=True)
class Limits:
    """The bounds one kind of input is held to."""

    max_bytes: int = MAX_FILE_BYTES
    max_depth: int = MAX_DEPTH
    max_number_digits: int = MAX_NUMBER_DIGITS


DEFAULT_LIMITS = Limits()


# --- reading --------------------------------------------------------------------------------------


def read_stream(stream: IO[bytes], subject: str, limits: Limits = DEFAULT_LIMITS) -> bytes:
    """At most ``limits.max_bytes`` bytes of ``stream``; more (or an endless stream) is refused after
    reading one byte over the limit."""
    chunks: list[bytes] = []
    size = 0
    while size <= limits.max_bytes:
        chunk = stream.read(min(1 << 16, limits.max_bytes + 1 - size))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        size += len(chunk)
    raise TooLarge(subject, f"larger than the limit of {limits.max_bytes:,} bytes")


def read_file(path: Path | str, limits: Limits = DEFAULT_LIMITS, *, subject: str | None = None) -> bytes:
    """The bytes of the file at ``path`` (bounded as :func:`read_stream`). OS errors become
    :class:`InputRefused` naming the path and the reason (never a traceback)."""
    name = subject or str(path)
    try:
        with open(path, "rb") as stream:
            if os.fstat(stream.fileno()).st_size > limits.max_bytes:
                raise TooLarge(name, f"larger than the limit of {limits.max_bytes:,} bytes")
            return read_stream(stream, name, limits)
    except InputRefused:
        raise
    except IsADirectoryError:
        raise InputRefused(name, "is a directory, not a file") from None
    except OSError as exc:
        raise InputRefused(name, f"cannot read: {exc.strerror or type(exc).__name__}") from None
    except ValueError:  # a NUL byte in the path (possible in process, never from argv)
        raise InputRefused(name, "not a usable path") from None


def decode_text(data: bytes, subject: str) -> str:
    """Strict UTF-8 (one leading BOM dropped); refused with the offset of the first bad byte."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputRefused(subject, f"not UTF-8 text (invalid byte at offset {exc.start})") from None
    return text.removeprefix("\ufeff")


# --- scanning -------------------------------------------------------------------------------------


def _deep(subject: str, limits: Limits) -> TooLarge:
    return TooLarge(subject, f"nested deeper than {limits.max_depth} levels")


def _long_number(subject: str, limits: Limits) -> TooLarge:
    return TooLarge(subject, f"holds a number longer than {limits.max_number_digits} digits")


#: A JSON string as the parser reads it, left to right (possessive: linear, never backtracks).
_JSON_STRING = re.compile(r'"[^"\\]*+(?:\\.[^"\\]*+)*+"', re.DOTALL)
_NOT_BRACKET = re.compile(r"[^\[\]{}]++")
_BRACKET_STEP = {"[": 1, "{": 1, "]": -1, "}": -1}
_CHUNK = 4096


@lru_cache(maxsize=16)
def _digit_run(longer_than: int) -> re.Pattern[str]:
    return re.compile(f"[0-9]{{{longer_than + 1}}}")


def scan_json(text: str, subject: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse JSON nested deeper than ``max_depth`` or holding a digit run longer than
    ``max_number_digits`` (outside strings). Linear and at C speed (regular expressions, no
    recursion): strings are blanked the way the parser reads them, then digits and brackets are
    counted. Malformed JSON is left to the parser (which stops at the first error, so nothing after
    a stray quote can reach it)."""
    bare = _JSON_STRING.sub('""', text)
    if _digit_run(limits.max_number_digits).search(bare):
        raise _long_number(subject, limits)
    brackets = _NOT_BRACKET.sub("", bare)
    if len(brackets) <= limits.max_depth:
        return
    depth = 0
    for start in range(0, len(brackets), _CHUNK):  # C-speed per chunk, an early exit between chunks
        levels = list(
            accumulate(map(_BRACKET_STEP.__getitem__, brackets[start : start + _CHUNK]), initial=depth)
        )
        if max(levels) > limits.max_depth:
            raise _deep(subject, limits)
        depth = levels[-1]


def scan_toml(text: str, subject: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """The same bounds for TOML: brackets of arrays and inline tables outside strings and comments,
    digit runs (``_`` separators included) outside strings. Linear, no recursion."""
    depth = 0
    digits = 0
    i = 0
    n = len(text)
    while i < n:
        char = text[i]
        if "0" <= char <= "9" or (char == "_" and digits):
            digits += 1
            if digits > limits.max_number_digits:
                raise _long_number(subject, limits)
            i += 1
            continue
        digits = 0
        if char == "#":
            end = text.find("\n", i)
            i = n if end < 0 else end
            continue
        if char in "\"'":
            i = _skip_toml_string(text, i)
            continue
        if char in "[{":
            depth += 1
            if depth > limits.max_depth:
                raise _deep(subject, limits)
        elif char in "]}":
            depth -= 1
        i += 1


def _skip_toml_string(text: str, i: int) -> int:
    """Index just past the TOML string starting at ``i`` (basic, literal, multi-line of either);
    an unterminated string runs to the end (the parser reports it)."""
    quote = text[i]
    n = len(text)
    if text.startswith(quote * 3, i):
        closing = quote * 3
        j = i + 3
        while j < n:
            if quote == '"' and text[j] == "\\":
                j += 2
                continue
            if text.startswith(closing, j):
                j += 3
                while j < n and text[j] == quote:  # up to two quotes may end the content
                    j += 1
                return j
            j += 1
        return n
    j = i + 1
    while j < n:
        if quote == '"' and text[j] == "\\":
            j += 2
            continue
        if text[j] == quote or text[j] == "\n":
            return j + 1
        j += 1
    return n


def check_depth(value: Any, subject: str, limits: Limits = DEFAULT_LIMITS) -> None:
    """Refuse a parsed value nested deeper than ``max_depth`` (iterative: safe on any depth)."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > limits.max_depth:
            raise _deep(subject, limits)
        if isinstance(item, dict):
            stack.extend((v, depth + 1) for v in item.values())
        elif isinstance(item, list):
            stack.extend((v, depth + 1) for v in item)


# --- parsing --------------------------------------------------------------------------------------


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a number JSON allows")


def parse_json_bytes(data: bytes, subject: str, limits: Limits = DEFAULT_LIMITS) -> Any:
    """Bounded, strict JSON: size, UTF-8, depth and number size checked before ``json.loads``;
    syntax errors as :class:`InputRefused` with line and column (never the text)."""
    if len(data) > limits.max_bytes:
        raise TooLarge(subject, f"larger than the limit of {limits.max_bytes:,} bytes")
    text = decode_text(data, subject)
    scan_json(text, subject, limits)
    try:
        return json.loads(text, parse_constant=_no_constant)
    except json.JSONDecodeError as exc:
        raise InputRefused(
            subject, f"invalid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}"
        ) from None
    except (ValueError, RecursionError) as exc:  # NaN/Infinity; anything the scan let through
        raise InputRefused(subject, f"invalid JSON: {type(exc).__name__}") from None


def parse_toml_bytes(data: bytes, subject: str, limits: Limits = DEFAULT_LIMITS) -> dict[str, Any]:
    """Bounded TOML, as :func:`parse_json_bytes`; dotted keys' depth checked on the parsed value."""
    if len(data) > limits.max_bytes:
        raise TooLarge(subject, f"larger than the limit of {limits.max_bytes:,} bytes")
    text = decode_text(data, subject)
    scan_toml(text, subject, limits)
    try:
        value = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise InputRefused(subject, f"invalid TOML: {exc}") from None
    except (ValueError, RecursionError) as exc:
        raise InputRefused(subject, f"invalid TOML: {type(exc).__name__}") from None
    check_depth(value, subject, limits)
    return value


def load_json_file(path: Path | str, limits: Limits = DEFAULT_LIMITS, *, subject: str | None = None) -> Any:
    return parse_json_bytes(read_file(path, limits, subject=subject), subject or str(path), limits)


def load_toml_file(
    path: Path | str, limits: Limits = DEFAULT_LIMITS, *, subject: str | None = None
) -> dict[str, Any]:
    return parse_toml_bytes(read_file(path, limits, subject=subject), subject or str(path), limits)


# --- echo -----------------------------------------------------------------------------------------


def describe_given(value: object) -> str:
    """What to say about a value the user gave where a name was expected: its length and, for longer
    values, a two-character head (``"a 51-character value starting 'sk'"``). Never the value."""
    if not isinstance(value, str):
        return f"a {type(value).__name__} value"
    if not value:
        return "an empty value"
    head = value[:2]
    if len(value) < 8 or not (head.isascii() and head.isalnum()):
        return f"a {len(value)}-character value"
    return f"a {len(value)}-character value starting {head!r}"


#: What an echoable name looks like: lower case, digits and ``_.:/-`` separators (plan ids, provider
#: ids, model refs such as ``anthropic/claude-sonnet-4-6``, field names). Keys and tokens are mixed
#: case or long runs of letters and digits, so :func:`is_plain_name` also refuses a piece between
#: separators longer than 24 characters or mixing letters and digits over 6 characters (a hex or
#: UUID-like token), and the prefixes keys start with.
_PLAIN_NAME = re.compile(r"[a-z0-9][a-z0-9_.:/\-]{0,63}")
_NAME_PIECE = re.compile(r"[a-z0-9]+")
_KEY_PREFIXES = (
    "sk-",
    "sk_",
    "rk_",
    "pk_",
    "whsec_",
    "gsk_",
    "xai-",
    "xox",
    "xapp-",
    "fm1",
    "fm2",
    "aiza",
    "eyj",
)


def is_plain_name(value: object) -> bool:
    """Whether ``value`` is a plain lower-case name, safe to print back (see :data:`_PLAIN_NAME`)."""
    if not isinstance(value, str) or not _PLAIN_NAME.fullmatch(value) or value.startswith(_KEY_PREFIXES):
        return False
    for piece in _NAME_PIECE.findall(value):
        mixed = not piece.isdigit() and not piece.isalpha()
        if len(piece) > 24 or (mixed and len(piece) > 6):
            return False
    return True


def name_or_given(value: object) -> str:
    """A value given where a name was expected, fit to print: quoted when it is a plain lower-case
    name (``'antropic'``), else only :func:`describe_given`."""
    return repr(value) if is_plain_name(value) else describe_given(value)


def path_or_given(value: object) -> str:
    """A path from a setting or a file fit to print: itself when every part is a plain name
    (``/etc/cp/plans.toml``), else only :func:`describe_given` (it may be a pasted secret)."""
    text = str(value)
    parts = [p for p in text.split("/") if p not in ("", ".", "..")]
    return text if parts and all(is_plain_name(p) for p in parts) else describe_given(text)


def path_part(value: object) -> str:
    """One part of a field path (``plans.<id>.<field>``) fit to print: the name itself when plain,
    else ``<`` :func:`describe_given` ``>``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return str(value) if is_plain_name(value) else f"<{describe_given(value)}>"


__all__ = [
    "DEFAULT_LIMITS",
    "MAX_DEPTH",
    "MAX_FILE_BYTES",
    "MAX_NUMBER_DIGITS",
    "InputRefused",
    "Limits",
    "TooLarge",
    "check_depth",
    "decode_text",
    "describe_given",
    "load_json_file",
    "load_toml_file",
    "is_plain_name",
    "name_or_given",
    "path_or_given",
    "path_part",
    "parse_json_bytes",
    "parse_toml_bytes",
    "read_file",
    "read_stream",
    "scan_json",
    "scan_toml",
]
