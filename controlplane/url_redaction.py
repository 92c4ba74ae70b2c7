"""The one URL redactor: every URL the control plane prints or logs goes through :func:`redact_url`.

A URL can carry credentials in three places besides ``user:password@``: query values
(``?password=``, ``?authToken=``, ``?key=``), the fragment, and the user name itself (a token used as
the user, ``https://<token>@host``). So the whole userinfo becomes ``***``, every query value
becomes ``***`` (names stay, unless a name itself looks like anything but a plain name), and the
fragment becomes ``***``. Scheme, host, port and path stay: they say where, not how to get in.

:func:`redact_urls_in_text` applies the same to every URL found in free text (error messages of
HTTP and database libraries quote URLs); :func:`controlplane.redaction.redact_text` calls it, so
every log line and every error the CLI prints is covered.
"""

from __future__ import annotations

import re

MASK = "***"

#: ``scheme://rest-of-url`` in free text: up to whitespace, a quote or ``<>``, without the sentence's
#: trailing punctuation or closing bracket.
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.\-]{1,30}://[^\s'\"<>]+(?<![.,:;!?)\]}`])")
_PLAIN_QUERY_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.\-]{0,39}")
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")


def redact_url(url: str) -> str:
    """``url`` with its userinfo, every query value and its fragment masked. Text that is not a
    ``scheme://`` URL is returned with any query and fragment masked the same way."""
    text = str(url)
    head, hash_sign, _fragment = text.partition("#")
    head, question, query = head.partition("?")
    scheme, sep, rest = head.partition("://")
    if sep and _SCHEME.fullmatch(scheme):
        # The last "@" ends the userinfo even when a careless password holds "/" (over-masking a
        # path that holds "@" is the safe side).
        _userinfo, at, after = rest.rpartition("@")
        head = f"{scheme}://{MASK}@{after}" if at else head
    out = head
    if question:
        out += "?" + _redact_query(query)
    if hash_sign:
        out += "#" + MASK
    return out


def _redact_query(query: str) -> str:
    parts = []
    for item in query.split("&"):
        if not item:
            continue
        name, eq, _value = item.partition("=")
        if not eq:
            parts.append(MASK)  # a bare value (?<token>)
        elif _PLAIN_QUERY_NAME.fullmatch(name):
            parts.append(f"{name}={MASK}")
        else:
            parts.append(f"{MASK}={MASK}")
    return "&".join(parts)


def redact_urls_in_text(text: str) -> str:
    """Every ``scheme://...`` URL inside ``text`` passed through :func:`redact_url`."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


__all__ = ["MASK", "redact_url", "redact_urls_in_text"]
