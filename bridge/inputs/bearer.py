"""The one bearer-token check: inputs' `token` and the server's `reload_token` alike."""

from __future__ import annotations

import hmac


def bearer_refusal(authorization: str, token: str | None) -> str | None:
    """Why the Authorization header `authorization` does not carry `token` (None: it does, or
    no token is configured). Compared in constant time."""
    if token is None:
        return None
    scheme, _, given = authorization.partition(" ")
    if scheme.lower() != "bearer" or not given:
        return "missing bearer token (Authorization: Bearer …)"
    if not hmac.compare_digest(given.strip().encode(), token.encode()):
        return "wrong bearer token"
    return None
