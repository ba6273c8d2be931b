"""A PostgreSQL URL as a secret-bearing value: its password, and the URL fit to be shown.

`state: {url: postgresql://user:password@host/db}` carries a credential, so the password is a
secret (Config.secrets(): the log redactor cuts it) and anything that names the database
(`check`, errors, the start line) shows `redacted(url)` instead of the URL itself.
"""

from __future__ import annotations

from urllib.parse import parse_qs, unquote, urlsplit

HIDDEN = "***"


def passwords(url: str) -> tuple[str, ...]:
    """The password in `url` (in its user part or as `?password=`), as written and decoded."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        if parts.password:
            found += [parts.password, unquote(parts.password)]
        for value in parse_qs(parts.query).get("password", []):
            found.append(value)
    except ValueError:  # not a URL the parser takes (a bad port): nothing can be shown of it
        return (url,)
    return tuple(sorted({p for p in found if p}, key=len, reverse=True))


def redacted(url: str) -> str:
    """`url` with its password replaced by *** (every place it is written)."""
    for password in passwords(url):
        url = url.replace(password, HIDDEN)
    return url
