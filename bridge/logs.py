"""Logging: one line per occurrence, `event key=value ...`, with secrets scrubbed at the boundary.

Every record passes through `Redactor` before it is written, so a secret that slips into a message
(an exception text quoting a URL, a config value) is replaced by "***". Besides the configured
secret values it masks the query parameters that carry credentials in DingTalk URLs.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import re
import sys
import threading
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
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
        # Every message, whoever logged it and however: one line. (fmt_fields escapes its values
        # already; this covers f-strings and other libraries' messages.) The traceback appended
        # below is ours and keeps its lines.
        message = escape_control(record.getMessage())
        if record.exc_info:
            message += "\n" + logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
        record.msg, record.args = self.scrub(message), None
        return True


REDACTOR = Redactor()


_FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')
# sd-daemon(3) priority prefixes: journald stores the level of each line written to it.
_PRIORITY = {"CRITICAL": 2, "ERROR": 3, "WARNING": 4, "INFO": 6, "DEBUG": 7}
# Characters that would start a new line (or rewrite one) in a terminal, a file or a log viewer:
# C0 and C1 controls, DEL, and Unicode's own line/paragraph separators (str.splitlines() and
# many viewers break lines there). An attacker who puts one in a label name must not be able to
# forge a log line, so every value is written with these escaped.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}
_ESCAPE = re.compile(r"\\(?:x[0-9a-fA-F]{2}|u[0-9a-fA-F]{4}|.)")
_UNESCAPE = {"n": "\n", "r": "\r", "t": "\t", '"': '"', "\\": "\\"}


def _escape_char(match: re.Match[str]) -> str:
    char = match.group(0)
    named = _NAMED.get(char)
    if named:
        return named
    code = ord(char)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def escape_control(text: str) -> str:
    """`text` with every control character written as a visible escape (\\n, \\x1b, \\u2028)."""
    return _CONTROL.sub(_escape_char, text)


def _unescape(match: re.Match[str]) -> str:
    seq = match.group(0)[1:]
    if seq[0] in "xu" and len(seq) > 1:
        return chr(int(seq[1:], 16))
    return _UNESCAPE.get(seq, seq)


def split_fields(message: str) -> tuple[str, dict[str, str]]:
    """A `fmt_fields` line back into its event and fields (the inverse, for JSON output)."""
    first = _FIELD.search(message)
    if first is None or "\n" in message:
        return message, {}
    fields = {}
    for match in _FIELD.finditer(message, first.start()):
        value = match.group(2)
        if value.startswith('"'):
            value = _ESCAPE.sub(_unescape, value[1:-1])
        fields[match.group(1)] = value
    return message[: first.start()].strip(), fields


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, the event, and its fields as keys."""

    def format(self, record: logging.LogRecord) -> str:
        event, fields = split_fields(record.getMessage())
        line = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": event,
            **{k: v for k, v in fields.items() if k not in ("time", "level", "logger", "msg")},
        }
        # json.dumps escapes C0 controls but writes U+2028/U+2029 and C1 controls raw, and
        # line-oriented readers split there: escape them too, so one record stays one line.
        return _CONTROL.sub(
            lambda m: f"\\u{ord(m.group(0)):04x}", json.dumps(line, ensure_ascii=False)
        )


class JournalFormatter(logging.Formatter):
    """Under systemd: no timestamp (journald adds its own), the level as a priority prefix."""

    def format(self, record: logging.LogRecord) -> str:
        priority = _PRIORITY.get(record.levelname, 6)
        return f"<{priority}>{record.levelname} {record.name}: {record.getMessage()}"


class LogRing:
    """The process's recent log lines, as written (after the redactor), in memory: what a page
    shows of one message id without reading the journal. Bounded by lines and by bytes (the
    oldest go first), and each line by LINE_MAX characters, so a burst of long lines costs at
    most `max_bytes`. Thread-safe: every thread logs."""

    LINE_MAX = 16 * 1024

    def __init__(self, max_lines: int = 5000, max_bytes: int = 2 * 1024 * 1024) -> None:
        self.max_lines = max_lines
        self.max_bytes = max_bytes
        self._lines: deque[str] = deque()
        self._bytes = 0
        self._added = 0  # lines ever added: a mark for `since`
        self._lock = threading.Lock()

    def add(self, line: str) -> None:
        if len(line) > self.LINE_MAX:
            line = line[: self.LINE_MAX] + f"…[cut: {len(line) - self.LINE_MAX} more characters]"
        size = len(line.encode())
        with self._lock:
            self._lines.append(line)
            self._bytes += size
            self._added += 1
            while self._lines and (
                len(self._lines) > self.max_lines or self._bytes > self.max_bytes
            ):
                self._bytes -= len(self._lines.popleft().encode())

    def lines(self, containing: str, limit: int = 200) -> list[str]:
        """The newest `limit` lines holding `containing` (literally, any case), oldest first."""
        with self._lock:
            every = list(self._lines)
        return matching(every, containing, limit)

    def since(self, mark: int) -> tuple[list[str], int]:
        """The lines added after `mark` (those still held), and the mark to ask from next."""
        with self._lock:
            first = self._added - len(self._lines)  # the mark of the oldest line held
            skip = max(0, mark - first)
            return list(itertools.islice(self._lines, skip, None)), self._added

    def clear(self) -> None:
        with self._lock:
            self._lines.clear()
            self._bytes = 0


def matching(lines: Sequence[str], containing: str, limit: int) -> list[str]:
    """The last `limit` of `lines` holding `containing` (literally, any case), in order (read
    from the end: a page wants the newest few of thousands)."""
    wanted = containing.casefold()
    found: list[str] = []
    for line in reversed(lines):
        if len(found) >= limit:
            break
        if wanted in line.casefold():
            found.append(line)
    found.reverse()
    return found


def interleaved(groups: Iterable[list[str]], limit: int) -> list[str]:
    """Several processes' log lines as one, oldest first, the last `limit`. Every line the ring
    keeps starts with its time (the text format's `2026-12-02 15:40:00,123`, the JSON
    format's `{"time": "2026-12-02T15:40:00.123"`), so the text orders them; lines of one
    millisecond keep their process's order."""
    merged = sorted((line for group in groups for line in group), key=lambda line: line[:40])
    return merged[-limit:] if limit > 0 else []


RECENT = LogRing()


class RingHandler(logging.Handler):
    """Keeps each record, formatted, in a LogRing. Installed after the stream handler, whose
    filter (the redactor) has made the record one scrubbed line by then; the line is scrubbed
    once more here, so the ring holds no secret whatever the handlers' order."""

    def __init__(self, ring: LogRing) -> None:
        super().__init__()
        self.ring = ring

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self.ring.add(REDACTOR.scrub(self.format(record)))
        except Exception:  # a log line must never break the code that logs
            self.handleError(record)


def _text() -> logging.Formatter:
    return logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")


def setup(
    level: str = "info",
    stream: Any = None,
    fmt: str = "text",
    environ: Mapping[str, str] | None = None,
) -> None:
    """Logging to stderr: `text` (with timestamps, or journald-style under systemd, where
    $JOURNAL_STREAM is set) or `json` (one object a line); and to RECENT, the ring of recent
    lines."""
    env = os.environ if environ is None else environ
    handler = logging.StreamHandler(stream or sys.stderr)
    formatter: logging.Formatter
    if fmt == "json":
        formatter = JsonFormatter()
    elif env.get("JOURNAL_STREAM"):
        formatter = JournalFormatter()
    else:
        formatter = _text()
    handler.setFormatter(formatter)
    handler.addFilter(REDACTOR)
    # The ring keeps the lines as written; journald's have no time (it adds its own): the
    # ring's get the text format's.
    ring = RingHandler(RECENT)
    ring.addFilter(REDACTOR)
    ring.setFormatter(formatter if not isinstance(formatter, JournalFormatter) else _text())
    root = logging.getLogger()
    root.handlers[:] = [handler, ring]
    root.setLevel(level.upper())
    # waitress (the simulator's server) warns "Task queue depth is N" under any burst.
    logging.getLogger("waitress.queue").setLevel(logging.ERROR)


def fmt_fields(event: str, **fields: Any) -> str:
    """ "delivered rule=critical target=ops id=3f2a…": stable words first, details after."""
    parts = [escape_control(event)]
    for key, value in fields.items():
        if value is None:
            continue
        text = str(value)
        if not text or _CONTROL.search(text) or any(c in text for c in ' ="\\'):
            # Quoted, with backslash, quote and control characters escaped: the value cannot end
            # the line or the field early, and split_fields() reads it back exactly.
            text = '"' + escape_control(text.replace("\\", "\\\\").replace('"', '\\"')) + '"'
        parts.append(f"{escape_control(str(key))}={text}")
    return " ".join(parts)
