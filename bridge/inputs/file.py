"""The runtime half of the `file` kind: not on the HTTP listener (the app runs a Tailer per input,
bridge/inputs/filetail); `render` reads a sample of the log."""

from __future__ import annotations

from datetime import datetime

from bridge.config.model import FileInput
from bridge.inputs.filetail.records import events_from_text
from bridge.inputs.kind import InputRuntime
from bridge.model import Event


def sample(spec: FileInput, data: bytes, source: str, now: datetime) -> list[Event]:
    """`render`: the payload is lines of the log file `source`."""
    return events_from_text(spec, data.decode("utf-8", "replace"), source, now)


KIND = InputRuntime(type="file", sample=sample)
