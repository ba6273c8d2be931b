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


def header_token_refusal(value: str, token: str | None, header: str) -> str | None:
    """Why the header `header` (its value `value`) does not carry `token` itself, as GitLab
    sends its secret in X-Gitlab-Token (None: it does, or no token is configured)."""
    if token is None:
        return None
    if not value:
        return f"missing token ({header}: …)"
    if not hmac.compare_digest(value.strip().encode(), token.encode()):
        return f"wrong token in {header}"
    return None
