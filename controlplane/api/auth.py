"""Service-token authentication of the dashboard routes.

The operator's dashboard backend sends ``Authorization: Bearer <token>``; the tokens come from
``CP_API_TOKENS`` (several at once, so a token can be rotated without downtime). The presented
token is compared with EVERY configured token in constant time (``hmac.compare_digest``), so
neither a match's position nor a prefix leaks through timing. Open routes (``/healthz``,
``/readyz``, ``/metrics``, ``/openapi.json``) and the Stripe webhook (signed by Stripe) do not use
this dependency; every dashboard router does (``tests/controlplane/api`` checks that no other route
answers without a token).
"""

from __future__ import annotations

import hmac

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from controlplane.api.errors import Unauthorized

bearer = HTTPBearer(
    auto_error=False,
    scheme_name="ServiceToken",
    description="A service token from CP_API_TOKENS, as `Authorization: Bearer <token>`.",
)


def token_matches(presented: str, tokens: tuple[bytes, ...]) -> bool:
    """Whether ``presented`` is one of ``tokens``; every token is compared (constant time each)."""
    candidate = presented.encode("utf-8", "surrogateescape")
    found = False
    for token in tokens:
        found |= hmac.compare_digest(candidate, token)
    return found


async def require_service_token(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(bearer)
) -> None:
    tokens: tuple[bytes, ...] = request.app.state.api_tokens
    if credentials is None:
        raise Unauthorized("Authorization", "a service token is required (Authorization: Bearer <token>)")
    if not tokens or not token_matches(credentials.credentials, tokens):
        raise Unauthorized("Authorization", "the service token is not valid")


__all__ = ["bearer", "require_service_token", "token_matches"]
