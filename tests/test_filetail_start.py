"""Where a file input starts reading a file it has just found (inputs/filetail/start.py), and
when a copytruncate copy has settled (copies.py): tables over facts, no files."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from bridge.inputs.filetail.copies import COPY_SETTLE, CopyOf, CopySettling
from bridge.inputs.filetail.start import Start, where_to_start
from bridge.model import Position


@dataclass
class FakeFile:
    """A file's facts: its size, the hash of its head at each length, where its last complete
    line ends, and what it is a copy of; records what was asked."""

    size: int
    heads: dict[int, str] = field(default_factory=dict)
    line_end: int = 0
    copy: CopyOf | None = None
    asked: list[str] = field(default_factory=list)

    def head(self, length: int) -> str:
        self.asked.append(f"head {length}")
        return self.heads.get(length, "other")

    def last_line_end(self) -> int:
        self.asked.append("last_line_end")
        return self.line_end

    def copy_of(self) -> CopyOf | None:
        self.asked.append("copy_of")
        return self.copy


KNOWN = Position("/logs/app.log", 500, "abc", 64)

# (name, file, known, first_run_file, read_from, settled, expected start)
CASES: list[
    tuple[str, FakeFile, Position | None, bool, Literal["end", "beginning"], bool, Start | None]
] = [
    ("resumed", FakeFile(900, {64: "abc"}), KNOWN, False, "end", False, Start(500, "resumed")),
    (
        "resumed at its end exactly",
        FakeFile(500, {64: "abc"}),
        KNOWN,
        False,
        "end",
        False,
        Start(500, "resumed"),
    ),
    (
        "reused inode: other head",
        FakeFile(900, {64: "xyz"}),
        KNOWN,
        False,
        "end",
        False,
        Start(0, "same inode but other content (reused), from its start"),
    ),
    (
        "reused inode: shorter than the fingerprint",
        FakeFile(10, {64: "abc"}),
        KNOWN,
        False,
        "end",
        False,
        Start(0, "same inode but other content (reused), from its start"),
    ),
    (
        "truncated while stopped",
        FakeFile(400, {64: "abc"}),
        KNOWN,
        False,
        "end",
        False,
        Start(0, "truncated while stopped, from its start"),
    ),
    (
        "no fingerprint: only the size counts",
        FakeFile(900),
        Position("/logs/app.log", 300, "", 0),
        False,
        "end",
        False,
        Start(300, "resumed"),
    ),
    (
        "a known position wins over the first run",
        FakeFile(900, {64: "abc"}),
        KNOWN,
        True,
        "beginning",
        False,
        Start(500, "resumed"),
    ),
    (
        "first run, read_from end",
        FakeFile(900, line_end=880),
        None,
        True,
        "end",
        False,
        Start(880, "existing file, from its end"),
    ),
    (
        "first run, read_from beginning",
        FakeFile(900, line_end=880),
        None,
        True,
        "beginning",
        False,
        Start(0, "existing file, from its start"),
    ),
    (
        "a new file",
        FakeFile(900, line_end=880),
        None,
        False,
        "end",
        False,
        Start(0, "new file, from its start"),
    ),
    (
        "a copy of a truncated original, holding what was read: at once, past it",
        FakeFile(3000, line_end=3000, copy=CopyOf("/logs/app.log", 2000, live=False)),
        None,
        False,
        "end",
        False,
        Start(2000, "a copy of /logs/app.log (copytruncate), past what was read there"),
    ),
    (
        "a copy still shorter than what was read, not settled: wait",
        FakeFile(1500, line_end=1500, copy=CopyOf("/logs/app.log", 2000, live=False)),
        None,
        False,
        "end",
        False,
        None,
    ),
    (
        "a copy shorter than what was read, settled: at its last line's end",
        FakeFile(1500, line_end=1480, copy=CopyOf("/logs/app.log", 2000, live=False)),
        None,
        False,
        "end",
        True,
        Start(1480, "a copy of /logs/app.log (copytruncate), past what was read there"),
    ),
    (
        "a copy of an original not truncated (yet), not settled: wait",
        FakeFile(3000, line_end=3000, copy=CopyOf("/logs/app.log", 2000, live=True)),
        None,
        False,
        "end",
        False,
        None,
    ),
    (
        "a plain copy, settled: its content is read in the original, so from its end",
        FakeFile(3000, line_end=2990, copy=CopyOf("/logs/app.log", 2000, live=True)),
        None,
        False,
        "end",
        True,
        Start(2990, "a copy of /logs/app.log (copytruncate), past what was read there"),
    ),
]


@pytest.mark.parametrize(
    ("file", "known", "first_run_file", "read_from", "settled", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_where_to_start(
    file: FakeFile,
    known: Position | None,
    first_run_file: bool,
    read_from: Literal["end", "beginning"],
    settled: bool,
    expected: Start | None,
) -> None:
    assert where_to_start(file, known, first_run_file, read_from, lambda: settled) == expected


def test_the_file_is_read_only_for_what_the_case_needs() -> None:
    """Copy detection reads the head of a new file and looks through every followed file: it
    must not run for a file with a known position or on the first run (thousands of files at
    start), and settling is asked only of a copy whose start is not known yet."""
    asked_settled: list[bool] = []

    def settled() -> bool:
        asked_settled.append(True)
        return True

    resumed = FakeFile(900, {64: "abc"})
    where_to_start(resumed, KNOWN, False, "end", settled)
    assert resumed.asked == ["head 64"]
    first = FakeFile(900, line_end=880)
    where_to_start(first, None, True, "beginning", settled)
    assert first.asked == []
    known_copy = FakeFile(3000, line_end=3000, copy=CopyOf("/logs/app.log", 2000, live=False))
    where_to_start(known_copy, None, False, "end", settled)
    assert known_copy.asked == ["copy_of", "last_line_end"]
    assert asked_settled == []


def test_a_copy_settles_once_it_kept_its_size_for_the_settle_time() -> None:
    copies = CopySettling()
    key = (1, 2)
    assert not copies.settled(key, 100, 10.0)  # first seen
    assert not copies.settled(key, 100, 10.0 + COPY_SETTLE / 2)
    assert not copies.settled(key, 200, 10.0 + COPY_SETTLE)  # it grew: the wait starts over
    assert not copies.settled(key, 200, 10.0 + COPY_SETTLE * 1.5)
    assert copies.settled(key, 200, 10.0 + COPY_SETTLE * 2)
    # Once settled it is forgotten: found again, it waits again.
    assert not copies.settled(key, 200, 10.0 + COPY_SETTLE * 2)


def test_a_copy_removed_before_it_settled_is_forgotten() -> None:
    copies = CopySettling()
    gone, kept = (1, 2), (1, 3)
    copies.settled(gone, 100, 0.0)
    copies.settled(kept, 100, 0.0)
    copies.keep_only({kept})
    assert copies.settled(kept, 100, COPY_SETTLE)  # still waiting since 0.0
    assert not copies.settled(gone, 100, COPY_SETTLE)  # starts over
