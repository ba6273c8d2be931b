"""Copies made by logrotate's copytruncate, when the input's globs also match them.

The copy's start was read already, in the original: it is recognised by its head (the hash of
its first FP_BYTES bytes) matching the original's now (`live`: the original may still be read
further) or as it was before a recent truncation (then how far it was read is final). A copy
whose start is not known yet waits until it keeps its size for COPY_SETTLE seconds: logrotate
copies in chunks, then truncates at once.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable
from dataclasses import dataclass

from bridge.inputs.filetail.reader import FileReader
from bridge.model import FileKey

COPY_WINDOW = 300.0  # seconds after a truncation in which a copy of the old content is known
COPY_SETTLE = 1.0  # seconds a copy whose start is not known yet must keep its size


@dataclass(frozen=True)
class CopyOf:
    """A new file is a copy of a followed one: the original's `path` label, how far it was read
    (`offset`), and whether that may still grow (`live`: the original was not seen truncated)."""

    source: str
    offset: int
    live: bool


def original_of(readers: Iterable[FileReader], head: str, now: float) -> CopyOf | None:
    """The followed file whose content (now or before a recent truncation) starts as a new file
    whose first FP_BYTES bytes hash to `head`."""
    for reader in readers:
        found = reader.copied_up_to(head, now, COPY_WINDOW)
        if found is not None:
            return CopyOf(reader.label_path, *found)
    return None


class CopySettling:
    """Copies not opened yet because their start is not known: each one's size and since when
    it kept it."""

    def __init__(self) -> None:
        self._unsettled: dict[FileKey, tuple[int, float]] = {}

    def settled(self, key: FileKey, size: int, now: float) -> bool:
        """Has this copy kept its size for COPY_SETTLE seconds? (A copy whose original is not
        truncated meanwhile is a plain copy; one shorter than what was read of its original was
        made before the original was read that far, so it holds nothing new.)"""
        seen = self._unsettled.get(key)
        if seen is None or seen[0] != size:
            self._unsettled[key] = (size, now)
            return False
        if now - seen[1] < COPY_SETTLE:
            return False
        del self._unsettled[key]
        return True

    def keep_only(self, found: Collection[FileKey]) -> None:
        """Forget the copies the globs no longer find (removed before they settled)."""
        for key in self._unsettled.keys() - found:
            del self._unsettled[key]
