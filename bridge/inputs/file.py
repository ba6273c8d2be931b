"""The runtime half of the `file` kind: not on the HTTP listener (the app runs a Tailer per input,
bridge/inputs/filetail); `render` reads a sample of the log."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from bridge.config.model import FileInput
from bridge.inputs.filetail.records import events_from_text
from bridge.inputs.kind import InputRuntime
from bridge.model import Event


def sample(spec: FileInput, path: Path, now: datetime) -> list[Event]:
    """`render`: the payload is lines of the log file."""
    return events_from_text(spec, path.read_text("utf-8", "replace"), str(path.absolute()), now)


KIND = InputRuntime(type="file", sample=sample)
