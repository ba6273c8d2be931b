"""Where to start reading a file the scan has just found: a decision on what is known of it.

In this order:

- A position was committed for its identity (device, inode): resume there, unless the inode was
  reused for other content (its head is not the one fingerprinted) or the file was truncated
  while the bridge was stopped (it is shorter than the position): then from its start.
- The input's first run, and the file was there at start: `read_from` (its start, or after its
  last complete line, so a line being written is read whole once its newline comes).
- A copy of a followed file (copies.py): past what was read of the original. Until that is
  known (the original not yet seen truncated, or the copy shorter than what was read there) the
  copy waits until it settles, or lines read in the original would be read a second time.
- Otherwise a new file: from its start.

`where_to_start` reads the file only through `NewFile`, so the table tests give it facts;
`OpenedFile` gives it the facts of a descriptor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal, Protocol

from bridge.inputs.filetail.copies import CopyOf
from bridge.inputs.filetail.reader import FP_BYTES, head_hash, start_at_end
from bridge.model import Position


class NewFile(Protocol):
    """What the decision may ask of the file; each answer but the size reads it."""

    @property
    def size(self) -> int: ...

    def head(self, length: int) -> str:
        """The hash of the first `length` bytes (as Position.fp)."""
        ...

    def last_line_end(self) -> int:
        """The offset after the last complete line."""
        ...

    def copy_of(self) -> CopyOf | None:
        """The followed file this one is a copy of, if any."""
        ...


@dataclass(frozen=True)
class Start:
    offset: int
    how: str  # for the log line "following"


def where_to_start(
    file: NewFile,
    known: Position | None,
    first_run_file: bool,
    read_from: Literal["end", "beginning"],
    copy_settled: Callable[[], bool],
) -> Start | None:
    """Where to read `file` from; None while it is a copy whose start is not known yet and
    which has not settled (`copy_settled`, asked only then). `known` is its committed position;
    `first_run_file` says it was there when the input ran for the first time."""
    if known is not None:
        if known.fp_len and (file.size < known.fp_len or file.head(known.fp_len) != known.fp):
            return Start(0, "same inode but other content (reused), from its start")
        if file.size < known.offset:
            return Start(0, "truncated while stopped, from its start")
        return Start(known.offset, "resumed")
    if first_run_file:
        if read_from == "end":
            return Start(file.last_line_end(), "existing file, from its end")
        return Start(0, "existing file, from its start")
    copy = file.copy_of()
    if copy is None:
        return Start(0, "new file, from its start")
    # Known once the original was seen truncated (it was read up to `offset` before that) and
    # the copy holds that much. Until then the original may still be read past `offset`, and
    # logrotate may still be writing the copy.
    if (copy.live or copy.offset > file.size) and not copy_settled():
        return None
    offset = file.size if copy.live else copy.offset  # live: a plain copy, read there
    return Start(
        min(offset, file.last_line_end()),
        f"a copy of {copy.source} (copytruncate), past what was read there",
    )


@dataclass(frozen=True)
class OpenedFile:
    """The facts of a file through its open descriptor; copies are looked up by `find_copy`
    (given the head hash) only for a file long enough to tell a copy from a file that merely
    starts with the same lines."""

    fd: int
    size: int
    find_copy: Callable[[str], CopyOf | None]

    def head(self, length: int) -> str:
        return head_hash(self.fd, length)[0]

    def last_line_end(self) -> int:
        return start_at_end(self.fd, self.size)

    def copy_of(self) -> CopyOf | None:
        if self.size < FP_BYTES:
            return None
        return self.find_copy(self.head(FP_BYTES))
