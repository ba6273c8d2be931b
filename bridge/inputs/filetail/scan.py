"""Finding matching lines in a block of complete lines, without a Python loop over every line.

Log files are mostly lines no pattern matches, so the block is searched as a whole and only the
lines where a search stops are checked on their own, with the pattern exactly as written. Two
ways to search a block, fastest first:

- Required literals. Most patterns cannot match without some fixed text (`ERROR|FATAL`,
  `status=`): every line a match can be on contains one of those strings, and `str.find`
  finds them far faster than the regex engine scans (Python's `re` tries an alternation at
  every position). Found by reading the pattern (literals.py).
- The pattern itself, compiled with MULTILINE, over the block. A block search can report a
  false candidate (a match across a newline) but never misses a line: every match inside one
  line is also a match in the block, found because the next search starts at the following
  line, not after the previous match's end. A pattern that can behave differently inside a
  block (`\\A`, `\\Z`, or a negative lookbehind, which sees the previous line's newline at the
  start of a line) is checked line by line instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from bridge.alerting.matchers import compile_pattern
from bridge.inputs.filetail.literals import required

_BLOCK_UNSAFE = re.compile(r"\\[AZz]|\(\?<!")
_MIN_LITERAL = 3  # shorter required text is too common to be worth finding first


@dataclass(frozen=True)
class Searcher:
    """How to find a pattern's candidate lines in a block: `literals` (any line that can match
    contains one of them) while they are rare, else `block` (the pattern over the block), else
    every line."""

    literals: tuple[str, ...] | None
    block: re.Pattern[str] | None


def searcher(regex: re.Pattern[str]) -> Searcher:
    return Searcher(required_literals(regex), block_pattern(regex))


def required_literals(regex: re.Pattern[str]) -> tuple[str, ...] | None:
    """Strings one of which every match of `regex` contains, or None when there are none long
    enough to help. Conservative: when unsure (case-insensitive parts, lookarounds, classes)
    a part requires nothing."""
    found = required(regex.pattern, regex.flags)
    if found is None or min(len(s) for s in found) < _MIN_LITERAL:
        return None
    return tuple(sorted(found))


def block_pattern(regex: re.Pattern[str]) -> re.Pattern[str] | None:
    """`regex` made fit to search a block of lines (^ and $ at every line), or None if it
    cannot be (see the module comment)."""
    if _BLOCK_UNSAFE.search(regex.pattern):
        return None
    return compile_pattern(regex.pattern, regex.flags | re.MULTILINE)


def candidate_lines(text: str, searchers: Sequence[Searcher]) -> list[int]:
    """Start positions, in order, of the lines in `text` that may match one of the patterns.

    `text` holds complete lines, each ending in a newline.
    """
    if any(s.literals is None and s.block is None for s in searchers):
        return _every_line(text)
    found: set[int] = set()
    # A literal on most lines ("status=" in an access log) makes a poor filter: past one
    # candidate per ~20 lines of 100 bytes, the regex engine's own scan of the block is cheaper.
    dense = max(64, len(text) // 2_000)
    for each in searchers:
        if each.literals is not None:
            lines = _literal_candidates(text, each.literals, dense if each.block else None)
            if lines is not None:
                found |= lines
                continue
        if each.block is not None:
            _block_candidates(text, each.block, found)
    return sorted(found)


def _literal_candidates(text: str, literals: tuple[str, ...], limit: int | None) -> set[int] | None:
    """Starts of the lines holding one of `literals`; None once there are more than `limit`."""
    lines: set[int] = set()
    for needle in literals:
        position = text.find(needle)
        while position != -1:
            lines.add(text.rfind("\n", 0, position) + 1)
            if limit is not None and len(lines) > limit:
                return None
            line_end = text.find("\n", position)
            if line_end == -1:
                break
            position = text.find(needle, line_end + 1)
    return lines


def _block_candidates(text: str, block: re.Pattern[str], found: set[int]) -> None:
    position = 0
    while (match := block.search(text, position)) is not None and match.start() < len(text):
        found.add(text.rfind("\n", 0, match.start()) + 1)
        line_end = text.find("\n", match.start())
        if line_end == -1:
            break
        position = line_end + 1


def _every_line(text: str) -> list[int]:
    starts = [0] if text else []
    position = text.find("\n")
    while position != -1 and position + 1 < len(text):
        starts.append(position + 1)
        position = text.find("\n", position + 1)
    return starts


def line_at(text: str, start: int) -> str:
    """The line starting at `start`, without its newline (or its CR LF)."""
    end = text.find("\n", start)
    line = text[start:] if end == -1 else text[start:end]
    return line[:-1] if line.endswith("\r") else line
