"""Joining a stack trace's lines into one record: a line matching `start` begins a record, other
lines continue the one before them. Pure: the caller passes the time.

The joiner also says where a restart must resume: at the start of the record still open, so a
record cut by a restart is rebuilt whole rather than half lost.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bridge.config.model import Multiline


@dataclass
class Record:
    """One line, or lines joined, ready for the patterns."""

    text: str
    offset: int  # byte offset of its first line in the file
    lines: int = 1
    truncated: bool = False  # a line was cut at max_line_bytes, or lines beyond max_lines dropped


@dataclass
class _Open:
    parts: list[str]
    offset: int
    size: int
    truncated: bool
    last_line_at: float
    dropped: int = 0


@dataclass
class Joiner:
    spec: Multiline
    max_bytes: int
    _open: _Open | None = None
    dropped_lines: int = field(default=0)

    def feed(self, line: str, offset: int, truncated: bool, now: float) -> Record | None:
        """Add one line; returns the record this line completed, if any."""
        if self.spec.start.search(line) or self._open is None:
            done = self.flush()
            self._open = _Open([line], offset, len(line), truncated, now)
            return done
        current = self._open
        current.last_line_at = now
        if len(current.parts) >= self.spec.max_lines or current.size + len(line) > self.max_bytes:
            current.dropped += 1
            current.truncated = True
            self.dropped_lines += 1
            return None
        current.parts.append(line)
        current.size += len(line) + 1
        current.truncated |= truncated
        return None

    def flush(self) -> Record | None:
        """Close the open record (rotation, truncation, timeout, shutdown)."""
        current, self._open = self._open, None
        if current is None:
            return None
        return Record(
            "\n".join(current.parts),
            current.offset,
            len(current.parts) + current.dropped,
            current.truncated,
        )

    def due(self, now: float) -> bool:
        """Has the open record waited `timeout` for more lines?"""
        return self._open is not None and now - self._open.last_line_at >= self.spec.timeout

    def resume_offset(self) -> int | None:
        """Where a restart must start reading so the open record is rebuilt, if one is open."""
        return self._open.offset if self._open is not None else None
