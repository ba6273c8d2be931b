"""Silences at the source: Alertmanager's API v2 (POST /api/v2/silences, DELETE
/api/v2/silence/{id}). The session is passed in; errors come back as text for the chat."""

from __future__ import annotations

from datetime import UTC, datetime

import requests

from bridge.alerting.silences import Silence
from bridge.config.model import AlertmanagerApi


class AlertmanagerError(Exception):
    """Alertmanager did not take the request (the text says why, without credentials)."""


def _time(stamp: float) -> str:
    return datetime.fromtimestamp(stamp, UTC).isoformat().replace("+00:00", "Z")


def create_silence(session: requests.Session, api: AlertmanagerApi, silence: Silence) -> str:
    """Create `silence` in Alertmanager; its id there."""
    body = {
        "matchers": [
            {
                "name": m.name,
                "value": m.value,
                "isRegex": m.op in ("=~", "!~"),
                "isEqual": m.op in ("=", "=~"),
            }
            for m in silence.matchers
        ],
        "startsAt": _time(silence.starts_at),
        "endsAt": _time(silence.ends_at),
        "createdBy": silence.author or "dingtalk-bridge",
        # Alertmanager refuses a silence without a comment.
        "comment": silence.comment or f"silenced from DingTalk (bridge silence {silence.id})",
    }
    try:
        response = session.post(f"{api.url}/api/v2/silences", json=body, timeout=api.timeout)
    except requests.RequestException as exc:
        raise AlertmanagerError(f"cannot reach Alertmanager ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise AlertmanagerError(
            f"Alertmanager answered {response.status_code}: {response.text[:200]}"
        )
    try:
        return str(response.json()["silenceID"])
    except (ValueError, KeyError, TypeError):
        raise AlertmanagerError("Alertmanager's answer has no silenceID") from None


def expire_silence(session: requests.Session, api: AlertmanagerApi, am_id: str) -> None:
    try:
        response = session.delete(f"{api.url}/api/v2/silence/{am_id}", timeout=api.timeout)
    except requests.RequestException as exc:
        raise AlertmanagerError(f"cannot reach Alertmanager ({type(exc).__name__})") from None
    if response.status_code != 200:
        raise AlertmanagerError(
            f"Alertmanager answered {response.status_code}: {response.text[:200]}"
        )
