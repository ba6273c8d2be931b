"""An event's time as a webhook's `starts_at` / `ends_at` template renders it from the body.

Sources write times every way there is: CloudMonitor's `timestamp` is epoch seconds, SkyWalking's
`startTime` epoch milliseconds, Grafana and GitLab ISO 8601 strings. A template's output is text,
so this reads text:

- **a number** (digits, optionally a fraction): Unix epoch time, its unit told by its size, as
  no alert source dates anything before 1973 or after 5138: below 10^11 seconds, below 10^14
  milliseconds, below 10^17 microseconds, else nanoseconds;
- **anything else**: an ISO 8601 / RFC 3339 time, read as Alertmanager times are (a time
  without a zone is UTC; write the offset in the template, `{{ body.time }}+08:00`, for a
  source that sends local time);
- **empty**: no time (the event's time is when the post arrived).

Anything unreadable is a 400 naming the template and showing the value.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime

from bridge.errors import InputError, bad_request
from bridge.inputs.alertmanager import rfc3339_time

_EPOCH = re.compile(r"[0-9]+(\.[0-9]+)?")
# The epoch value below which each unit is taken (seconds up to year 5138, and so on).
_UNITS = ((1e11, 1.0), (1e14, 1e3), (1e17, 1e6))
_NANOSECONDS = 1e9


def body_time(text: str, where: str) -> datetime | None:
    """The time `text` (a rendered template) names, timezone-aware; None when it is empty."""
    value = text.strip()
    if not value:
        return None
    if _EPOCH.fullmatch(value):
        number = float(value)
        divisor = next((d for bound, d in _UNITS if number < bound), _NANOSECONDS)
        try:
            return datetime.fromtimestamp(number / divisor, UTC)
        except (OverflowError, OSError, ValueError):
            raise bad_request(f"{where}: epoch time out of range: {value[:40]!r}") from None
    try:
        when = rfc3339_time(value, where)
    except InputError:
        when = None
    if when is None:
        raise bad_request(
            f"{where}: {value[:40]!r} is not a time: expected epoch seconds or milliseconds"
            " (1508136760, 1560524171000) or an ISO 8601 time within years 1-9999"
            " (2024-05-01T10:00:00+08:00)"
        )
    return when
