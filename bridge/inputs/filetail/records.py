"""A record (a line, or lines joined) that matched a pattern, turned into an Event. Pure.

Labels: `path` (the file as its glob found it), then every named group that took part in the
match, then the input's `labels` templates, then the pattern's own. The event's identity is its
label set, as for every input: put what tells one problem from another in a named group.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import jinja2

from bridge.config.model import FileInput, LinePattern, Threshold
from bridge.inputs.filetail.multiline import Joiner, Record
from bridge.logs import fmt_fields
from bridge.model import Event, label_fingerprint

log = logging.getLogger("bridge.inputs.file")

MAX_LABEL_CHARS = 1_000  # a label is an identity, not a place for a whole line


def find_pattern(spec: FileInput, text: str) -> tuple[LinePattern, dict[str, str]] | None:
    """The first pattern that matches `text`, with its named groups (those that took part)."""
    for pattern in spec.patterns:
        match = pattern.regex.search(text)
        if match is not None:
            groups = {k: v for k, v in match.groupdict().items() if v is not None}
            return pattern, groups
    return None


def clean(text: str) -> str:
    """NULs (copytruncate leaves runs of them) shown as the replacement character."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _render(
    templates: Mapping[str, jinja2.Template], context: dict[str, Any], where: str
) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, template in templates.items():
        try:
            out[name] = template.render(context)
        except Exception as exc:  # an operator's template must not stop the input
            log.warning(fmt_fields("label template failed", where=where, label=name, error=exc))
    return out


def make_event(
    spec: FileInput,
    path: str,
    record: Record,
    pattern: LinePattern,
    groups: dict[str, str],
    now: datetime,
    extra: Mapping[str, Any] | None = None,
) -> Event:
    text = clean(record.text)
    context: dict[str, Any] = {
        "line": text,
        "path": path,
        "filename": os.path.basename(path),
        "groups": groups,
        **groups,
    }
    labels = {"path": path}
    labels.update({k: v[:MAX_LABEL_CHARS] for k, v in groups.items()})
    labels.update(_render(spec.labels, context, f"inputs.{spec.name}.labels"))
    labels.update(_render(pattern.labels, context, f"inputs.{spec.name}.patterns"))
    annotations = {"line": text, **_render(pattern.annotations, context, spec.name)}
    payload: dict[str, Any] = {
        "line": text,
        "path": path,
        "offset": record.offset,
        "lines": record.lines,
        "truncated": record.truncated,
        "max_line_bytes": spec.max_line_bytes,
        **(extra or {}),
    }
    return Event(
        input=spec.name,
        kind="file",
        status="firing",
        labels=labels,
        annotations=annotations,
        fingerprint=label_fingerprint(labels),
        received_at=now,
        payload=payload,
    )


@dataclass
class ThresholdWindow:
    """`count` matches within `within` seconds fire once; then the window starts over."""

    spec: Threshold
    _times: deque[float] = field(default_factory=deque)
    below: int = 0  # matches that did not (yet) fire

    def hit(self, now: float) -> int | None:
        """Record one match; returns the count when it fires."""
        self._times.append(now)
        while self._times and self._times[0] <= now - self.spec.within:
            self._times.popleft()
        if len(self._times) >= self.spec.count:
            count = len(self._times)
            self._times.clear()
            return count
        self.below += 1
        return None


def events_from_text(spec: FileInput, text: str, path: str, now: datetime) -> list[Event]:
    """The events a file holding `text` would give (for `dingtalk-bridge render`): the same
    joining and patterns as the tailer, without a threshold."""
    records: list[Record] = []
    joiner = Joiner(spec.multiline, spec.max_line_bytes) if spec.multiline is not None else None
    for line in text.splitlines():
        if joiner is None:
            records.append(Record(line, 0))
        elif (done := joiner.feed(line, 0, False, 0.0)) is not None:
            records.append(done)
    if joiner is not None and (done := joiner.flush()) is not None:
        records.append(done)
    events = []
    for record in records:
        found = find_pattern(spec, record.text)
        if found is not None:
            events.append(make_event(spec, path, record, found[0], found[1], now))
    return events
