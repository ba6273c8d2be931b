"""Logging: one line per occurrence, `event key=value ...`, with secrets scrubbed at the boundary.

Every record passes through `Redactor` before it is written, so a secret that slips into a message
(an exception text quoting a URL, a config value) is replaced by "***". Besides the configured
secret values it masks the query parameters that carry credentials in DingTalk URLs.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from collections.abc import Iterable
from typing import Any

_CREDENTIAL_PARAM = re.compile(r"(?i)\b(access_token|appsecret|sign|token|session)=([^&\s\"']+)")


class Redactor(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self._secrets: tuple[str, ...] = ()
        self._lock = threading.Lock()

    def set_secrets(self, secrets: Iterable[str]) -> None:
        # Longest first, so a webhook URL is masked whole before its token is found inside it.
        with self._lock:
            self._secrets = tuple(
                sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True)
            )

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, "***")
        return _CREDENTIAL_PARAM.sub(lambda m: f"{m.group(1)}=***", text)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = self.scrub(message), None
        return True


REDACTOR = Redactor()


def setup(level: str = "info", stream: Any = None) -> None:
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(REDACTOR)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # waitress warns "Task queue depth is N" under any burst: normal load for us, not news.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def fmt_fields(event: str, **fields: Any) -> str:
    """ "delivered rule=critical target=ops id=3f2a…": stable words first, details after."""
    parts = [event]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or any(c in text for c in ' ="'):
            text = '"' + text.replace('"', '\\"') + '"'
        parts.append(f"{key}={text}")
    return " ".join(parts)
