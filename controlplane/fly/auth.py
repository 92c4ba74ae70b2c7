"""Fly API token handling: the ``Authorization`` header form and redaction.

Macaroon tokens (``fm1r_``, ``fm1a_``, ``fm2_`` or already ``FlyV1 ...``) go as ``FlyV1 <token>``,
legacy tokens as ``Bearer <token>`` (fly-go's rule, fly-machines.md §2). The token lives only inside
:class:`FlyAuth`; its ``repr``/``str`` never show it and :func:`redact` scrubs it from any text.
"""

from __future__ import annotations

from collections.abc import Generator

import httpx
from pydantic import SecretStr

MACAROON_PREFIXES = ("fm1r_", "fm1a_", "fm2_")
REDACTED = "**********"


def authorization_value(token: str) -> str:
    """The ``Authorization`` header value for ``token``."""
    token = token.strip()
    if token.startswith("FlyV1 "):
        return token
    if token.startswith("Bearer "):
        return token
    if token.startswith(MACAROON_PREFIXES):
        return f"FlyV1 {token}"
    return f"Bearer {token}"


class FlyAuth(httpx.Auth):
    """httpx auth flow adding the Fly token; never reveals it in repr/str."""

    def __init__(self, token: str | SecretStr) -> None:
        raw = token.get_secret_value() if isinstance(token, SecretStr) else token
        raw = raw.strip()
        if not raw:
            raise ValueError("the Fly API token is empty")
        if any(ch in raw for ch in "\r\n"):
            raise ValueError("the Fly API token contains a line break")
        self._header = authorization_value(raw)
        # Secret fragments to scrub from any text that might leave the process.
        bare = raw.split(" ", 1)[1] if raw.startswith(("FlyV1 ", "Bearer ")) else raw
        self._fragments = tuple(sorted({bare, self._header}, key=len, reverse=True))  # longest first

    @property
    def scheme(self) -> str:
        """``FlyV1`` or ``Bearer`` (safe to log)."""
        return self._header.split(" ", 1)[0]

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        request.headers["Authorization"] = self._header
        yield request

    def redact(self, text: str) -> str:
        """``text`` with every occurrence of the token replaced by ``**********``."""
        for fragment in self._fragments:
            if fragment and fragment in text:
                text = text.replace(fragment, REDACTED)
        return text

    def __repr__(self) -> str:
        return f"FlyAuth(scheme={self.scheme!r}, token={REDACTED!r})"

    __str__ = __repr__

    def __reduce__(self) -> tuple[object, ...]:  # never pickle the token by accident
        raise TypeError("FlyAuth cannot be pickled")


__all__ = ["FlyAuth", "MACAROON_PREFIXES", "REDACTED", "authorization_value"]
