"""Finding matching lines in a block of complete lines, without a Python loop over every line.

Log files are mostly lines no pattern matches. Searching a whole block once per pattern runs in
the regex engine's C loop; only the lines where a search stops are then checked on their own,
with the pattern exactly as written. A block search can report a false candidate (a match that
runs across a newline) but, for the patterns it is used for, never misses a line: every match
inside one line is also a match in the block, found because the next search starts at the
following line, not after the previous match's end.

A pattern that can behave differently inside a block (`\\A`, `\\Z`, or a negative lookbehind,
which sees the previous line's newline at the start of a line) is checked line by line instead.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

_BLOCK_UNSAFE = re.compile(r"\\[AZz]|\(\?<!")


def block_pattern(regex: re.Pattern[str]) -> re.Pattern[str] | None:
    """`regex` made fit to search a block of lines (^ and $ at every line), or None if it
    cannot be (see the module comment)."""
    if _BLOCK_UNSAFE.search(regex.pattern):
        return None
    return re.compile(regex.pattern, regex.flags | re.MULTILINE)


def candidate_lines(text: str, searchers: Sequence[re.Pattern[str] | None]) -> list[int]:
    """Start positions, in order, of the lines in `text` that may match one of the patterns.

    `text` holds complete lines, each ending in a newline. A None searcher makes every line a
    candidate.
    """
    if any(s is None for s in searchers):
        starts = [0]
        position = text.find("\n")
        while position != -1 and position + 1 < len(text):
            starts.append(position + 1)
            position = text.find("\n", position + 1)
        return starts if text else []
    found: set[int] = set()
    for searcher in searchers:
        assert searcher is not None
        position = 0
        while True:
            match = searcher.search(text, position)
            if match is None:
                break
            line_start = text.rfind("\n", 0, match.start()) + 1
            found.add(line_start)
            line_end = text.find("\n", match.start())
            if line_end == -1:
                break
            position = line_end + 1
    return sorted(found)


def line_at(text: str, start: int) -> str:
    """The line starting at `start`, without its newline (or its CR LF)."""
    end = text.find("\n", start)
    line = text[start:] if end == -1 else text[start:end]
    return line[:-1] if line.endswith("\r") else line
