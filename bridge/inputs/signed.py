"""What DingTalk's signed requests (event callbacks, chat commands) share: the time window and
the single use of each request.

**The window.** A request carries the time DingTalk signed it. It is taken up to the input's
`max_age` (DingTalk's own rule is one hour) after that time, since a request may wait in
DingTalk's queue or be sent again, but at most `FUTURE_SKEW` before it: a time in the future can
only come from a clock that is off, and NTP keeps two honest clocks within well under a second.
One minute forgives a host whose clock drifted a little; a wider allowance would only lengthen
the life of a captured request (one dated 58 minutes ahead stayed valid for almost two hours).

**Single use.** Each authentic request is remembered (in the state store) by a key and a digest
of what it carried, until its time leaves the window. See `bridge/store/replays.py`.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from bridge.errors import InputError, Reason, bad_request

FUTURE_SKEW = 60.0  # seconds a signed timestamp may lie ahead of our clock
_MILLIS = re.compile(r"[0-9]{1,16}")  # ASCII only: str.isdigit() also takes "²" and "١"


@dataclass(frozen=True)
class SignedOnce:
    """A verified request to remember: `key` must not be used again with another `digest`
    until `expires` (Unix seconds)."""

    input: str
    key: str
    digest: str
    expires: float


def digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode("utf-8", "surrogatepass")).hexdigest()


def sent_at(timestamp: str, what: str, seconds_too: bool = False) -> float:
    """The Unix time of a signed timestamp in milliseconds (or, with `seconds_too`, seconds,
    told apart by size as the official callback demos need)."""
    if not _MILLIS.fullmatch(timestamp):
        raise bad_request(f"{what} is not a time in milliseconds")
    value = int(timestamp)
    return value / 1000 if not seconds_too or value > 10**11 else float(value)


def check_window(sent: float, now: float, max_age: float, what: str) -> None:
    if now - sent > max_age:
        raise InputError(400, Reason.STALE, f"{what} is more than {max_age:g}s old")
    if sent - now > FUTURE_SKEW:
        raise InputError(
            400,
            Reason.STALE,
            f"{what} is {sent - now:.0f}s in the future (at most {FUTURE_SKEW:g}s of clock skew "
            "is allowed: is this host's clock set?)",
        )


def expires(sent: float, max_age: float) -> float:
    """When a request sent at `sent` leaves the window (and its memory may go)."""
    return sent + max_age + 1.0
