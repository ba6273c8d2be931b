"""One file, followed through its descriptor like `tail -F` does.

The reader owns the descriptor, the offset (every byte before it belongs to complete lines that
were handed on), the bytes of a line still waiting for its newline, and the multiline record in
progress. It notices truncation (the file is now shorter than what was read, or its first bytes
changed: copytruncate followed by quick writes) and starts over at 0. It keeps reading a file
that was renamed or deleted (the descriptor still works) until the tailer closes it.
"""

from __future__ import annotations

import hashlib
import os
from collections import deque
from collections.abc import Sequence

from bridge.config.model import FileInput
from bridge.inputs.filetail.multiline import Joiner, Record
from bridge.inputs.filetail.scan import Searcher, candidate_lines, line_at
from bridge.model import FileKey, Position

CHUNK = 1 << 20  # bytes per read(): large enough to keep Python's per-call costs negligible
FP_BYTES = 1024  # the head fingerprint covers this much of the file (less while it is smaller)
MARK_BYTES = 64  # the bytes just before the read position, checked for a rewrite
TRUNCATIONS_KEPT = 16  # recent truncations whose copies are still recognised
LAG_COUNT_BYTES = 8 << 20  # lines behind a file's offset are counted in this much at most,
LAG_SCRAPE_BYTES = 64 << 20  # and in this much over all files of an input per status call;
LAG_SAMPLE_BYTES = 64 << 10  # past that each file gets a sample this big; the rest is estimated


def head_hash(fd: int, length: int) -> tuple[str, int]:
    """A hash of the file's first `length` bytes, and how many bytes it covers."""
    data = os.pread(fd, length, 0)
    return hashlib.blake2b(data, digest_size=8).hexdigest(), len(data)


def cut(line: str, max_bytes: int) -> tuple[str, bool]:
    """`line` (as _decode gives it) cut to at most `max_bytes` bytes, never inside a character."""
    if len(line) * 4 <= max_bytes:
        return line, False
    raw = line.encode("utf-8", "surrogateescape")
    if len(raw) <= max_bytes:
        return line, False
    end = max_bytes
    while end > 0 and raw[end] & 0xC0 == 0x80:  # a continuation byte: back to the char's start
        end -= 1
    return raw[:end].decode("utf-8", "surrogateescape"), True


def _decode(data: bytes) -> str:
    """Bytes to text, invalid bytes kept as lone surrogates: re-encoding gives the same bytes
    back, so lengths in the text still measure the file. `repair` makes them U+FFFD."""
    return data.decode("utf-8", "surrogateescape")


def repair(text: str) -> str:
    """Invalid bytes (kept by _decode) shown as U+FFFD, as they are handed on."""
    if text.isascii():
        return text
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _nbytes(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8", "surrogateescape"))


def start_at_end(fd: int, size: int) -> int:
    """Where `read_from: end` starts: after the last complete line, so a line being written
    when the bridge starts is read whole once its newline comes."""
    position = size
    while position > 0:
        start = max(0, position - 65_536)
        newline = os.pread(fd, position - start, start).rfind(b"\n")
        if newline != -1:
            return start + newline + 1
        position = start
    return 0


def lines_between(fd: int, start: int, end: int, limit: int = LAG_COUNT_BYTES) -> int:
    """Complete lines in bytes [start, end) of the file: counted exactly in the first `limit`
    bytes, and past that estimated from the density of those (a scrape must not read a whole
    backlog, and a backlog that large is an alarm whatever its exact size)."""
    count, done, span = 0, 0, max(0, end - start)
    while done < min(span, limit):
        data = os.pread(fd, min(CHUNK, span - done, limit - done), start + done)
        if not data:
            return count  # the file shrank meanwhile
        count += data.count(b"\n")
        done += len(data)
    if done < span and done:
        count = round(count * span / done)
    return count


def lines_behind(
    spans: Sequence[tuple[int | None, int, int]],
    total: int = LAG_SCRAPE_BYTES,
    each: int = LAG_COUNT_BYTES,
    sample: int = LAG_SAMPLE_BYTES,
) -> list[int]:
    """Complete lines not read yet for each (descriptor, offset, size) of an input's files (0
    for a file closed while idle): counted in up to `each` bytes of a file and `total` bytes over
    all (hundreds of files far behind must not make a scrape read gigabytes); past that,
    estimated from a `sample`."""
    out = []
    for fd, offset, size in spans:
        if fd is None:
            out.append(0)
            continue
        limit = max(sample, min(each, total))
        out.append(lines_between(fd, offset, size, limit))
        total -= min(limit, max(0, size - offset))
    return out


class FileReader:
    def __init__(
        self,
        spec: FileInput,
        key: FileKey,
        path: str,
        fd: int,
        offset: int,
        searchers: Sequence[Searcher],
        now: float,
    ) -> None:
        self.spec = spec
        self.key = key
        self.path = path  # where the glob last found it
        self.label_path = path  # where it was first found: the `path` label, stable over renames
        self.fd: int | None = fd
        self.offset = offset
        self.pos = offset  # the next byte to read; [offset, pos) is the partial line
        self.partial = bytearray()
        self.partial_cut = False
        self.searchers = searchers
        self.joiner = (
            Joiner(spec.multiline, spec.max_line_bytes) if spec.multiline is not None else None
        )
        self.fp, self.fp_len = head_hash(fd, FP_BYTES)
        self.size_seen = -1
        self.mark = b""  # the last MARK_BYTES bytes before pos, as read
        # (fp, pos, when) of each recent truncation, newest last: rotations can come faster than
        # their copies are found (each copy is renamed .1 -> .2 by the next one meanwhile).
        self.before_truncation: deque[tuple[str, int, float]] = deque(maxlen=TRUNCATIONS_KEPT)
        self.last_change = now
        self.rotated_at: float | None = None  # no longer found by the globs since then
        self.deleted = False
        self.at_eof = False
        self.truncations = 0
        self.lines_cut = 0

    # -- reading -------------------------------------------------------------------------------

    def read(self, budget: int, now: float) -> list[Record]:
        """Read what the file has (up to `budget` bytes); the records of its complete lines."""
        if self.fd is None:
            return []
        records: list[Record] = []
        info = os.fstat(self.fd)
        self.deleted = info.st_nlink == 0
        if info.st_size != self.size_seen:
            if info.st_size < self.pos or not self._unchanged(info.st_size):
                records += self._restart(now)
            self.size_seen = info.st_size
        done = 0
        while done < budget:
            data = os.pread(self.fd, CHUNK, self.pos)
            if not data:
                break
            done += len(data)
            records += self._consume(data, now)
        self.at_eof = done < budget
        if done:
            self.last_change = now
            self._grow_fingerprint()
            start = max(0, self.pos - MARK_BYTES)
            self.mark = os.pread(self.fd, self.pos - start, start)
        return records

    def _consume(self, data: bytes, now: float) -> list[Record]:
        records: list[Record] = []
        base = self.pos
        self.pos += len(data)
        if self.partial or self.partial_cut:
            newline = data.find(b"\n")
            if newline == -1:
                self._hold(data)
                return records
            self._hold(data[:newline])
            records += self._whole_line(self.offset, now)
            base += newline + 1
            self.offset = base
            data = data[newline + 1 :]
        last = data.rfind(b"\n")
        if last == -1:
            self._hold(data)
            return records
        records += self._block(data[: last + 1], base, now)
        self.offset = base + last + 1
        self._hold(data[last + 1 :])
        return records

    def _hold(self, piece: bytes) -> None:
        """Keep the start of a line until its newline; past max_line_bytes, drop the rest."""
        room = self.spec.max_line_bytes - len(self.partial)
        if len(piece) > room:
            self.partial += piece[: max(room, 0)]
            self.partial_cut = True
        else:
            self.partial += piece

    def _whole_line(self, offset: int, now: float) -> list[Record]:
        """The held line, now complete (or flushed at the end of a file)."""
        text = repair(_decode(bytes(self.partial)))
        if text.endswith("\r"):
            text = text[:-1]
        was_cut = self.partial_cut
        self.partial.clear()
        self.partial_cut = False
        if was_cut:
            self.lines_cut += 1
        if self.joiner is not None:
            done = self.joiner.feed(text, offset, was_cut, now)
            return [done] if done is not None else []
        return [Record(text, offset, truncated=was_cut)]

    def _block(self, block: bytes, base: int, now: float) -> list[Record]:
        """Complete lines starting at file offset `base`."""
        text = _decode(block)
        limit = self.spec.max_line_bytes
        records = []
        if self.joiner is None:
            # Byte offsets of the candidates, measured piece by piece (linear in the block).
            ascii_only = block.isascii()  # then character positions are byte positions
            char_at, byte_at = 0, base
            for start in candidate_lines(text, self.searchers):
                if ascii_only:
                    byte_at = base + start
                else:
                    byte_at += _nbytes(text[char_at:start])
                    char_at = start
                line, was_cut = cut(line_at(text, start), limit)
                self.lines_cut += was_cut
                records.append(Record(repair(line), byte_at, truncated=was_cut))
            return records
        # Multiline needs every line, in order.
        offset = base
        for raw in text.split("\n")[:-1]:
            line, was_cut = cut(raw[:-1] if raw.endswith("\r") else raw, limit)
            self.lines_cut += was_cut
            done = self.joiner.feed(repair(line), offset, was_cut, now)
            if done is not None:
                records.append(done)
            offset += _nbytes(raw) + 1
        return records

    # -- identity and truncation ---------------------------------------------------------------

    def _unchanged(self, size: int) -> bool:
        """Are the first bytes still those we fingerprinted, and the bytes just before where we
        read up to still those we read? No: it was truncated and written again (faster than
        we looked, so it is not shorter than what we read)."""
        if self.fd is None:
            return True
        if self.fp_len and (size < self.fp_len or head_hash(self.fd, self.fp_len)[0] != self.fp):
            return False
        if self.mark and self.pos >= len(self.mark):
            return os.pread(self.fd, len(self.mark), self.pos - len(self.mark)) == self.mark
        return True

    def _grow_fingerprint(self) -> None:
        if self.fd is not None and self.fp_len < FP_BYTES:
            self.fp, self.fp_len = head_hash(self.fd, FP_BYTES)

    def _restart(self, now: float) -> list[Record]:
        """The file was truncated: hand on what was held, then read it again from 0."""
        records = self.finish()
        # Remembered for a while: a copy of the old content (logrotate's copytruncate) that the
        # globs also match is recognised by this head, and read only past this position.
        if self.fp_len == FP_BYTES:
            self.before_truncation.append((self.fp, self.pos, now))
        self.offset = self.pos = 0
        self.mark = b""
        self.truncations += 1
        if self.fd is not None:
            self.fp, self.fp_len = head_hash(self.fd, FP_BYTES)
        return records

    def copied_up_to(self, head: str, now: float, within: float) -> tuple[int, bool] | None:
        """If a file whose first FP_BYTES bytes hash to `head` is a copy of this one, how far
        this one was read, and whether the copy matches this file as it is now (`live`: not
        seen truncated, so the copied content may still be read here) or as it was before its
        truncation less than `within` seconds ago (then the position is final)."""
        if self.fp_len == FP_BYTES and head == self.fp:
            return self.offset, True
        for fp, pos, when in reversed(self.before_truncation):
            if head == fp and now - when <= within:
                return pos, False
        return None

    def finish(self) -> list[Record]:
        """Hand on everything held: the line without a newline at the end of a rotated or
        deleted file, and the open multiline record."""
        records: list[Record] = []
        now = self.last_change
        if self.partial or self.partial_cut:
            records += self._whole_line(self.offset, now)
            self.offset = self.pos
        if self.joiner is not None and (done := self.joiner.flush()) is not None:
            records.append(done)
        return records

    def timed_out(self, now: float) -> list[Record]:
        """The open multiline record, if it waited long enough for more lines."""
        if self.joiner is not None and self.joiner.due(now):
            done = self.joiner.flush()
            return [done] if done is not None else []
        return []

    # -- state ---------------------------------------------------------------------------------

    def position(self) -> Position:
        """What to persist: where a restart resumes (the open record's start, if any)."""
        resume = self.joiner.resume_offset() if self.joiner is not None else None
        return Position(self.path, self.offset if resume is None else resume, self.fp, self.fp_len)

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def reopen(self, fd: int) -> bool:
        """Take a new descriptor for the same file after an idle close; False if the path now
        names another file. (A truncation meanwhile is noticed by the next read.)"""
        info = os.fstat(fd)
        if (info.st_dev, info.st_ino) != self.key:
            return False
        self.fd = fd
        self.size_seen = -1  # check the head again
        return True
