"""The file input under real logrotate (T05, T06, T10 of the log-tailing reference).

A writer thread appends numbered lines (`... ERROR app - seq=<n> ...`) to app.log at about
1,500 lines/s while the test runs `logrotate -f` several times. Every line carries a unique
sequence number that becomes the message title, so the messages the simulator receives tell
exactly which lines were lost and which were read twice.

- `create`: logrotate renames app.log to app.log.1 and creates a new app.log. The writer behaves
  like an application that reopens its log on SIGHUP: it notices the new inode, writes a few more
  lines to its old descriptor (now app.log.1), then reopens the path. Nothing may be lost or
  duplicated, whether the glob names only app.log or app.log* (then the renamed files match too
  and must not be read again from their start), and with compress + delaycompress (the .gz files
  excluded).
- `copytruncate`: logrotate copies app.log to app.log.1, then truncates app.log; the writer keeps
  its descriptor (O_APPEND). Nothing may be read twice. With the glob app.log, the lines the
  tailer had not read when the truncate came are lost (inherent to copytruncate: they are only in
  app.log.1); the test reports how many, and checks they were written just before the truncate.
  With app.log*, the copy is recognised as one and read past what was read: nothing is lost.
"""

from __future__ import annotations

import functools
import os
import re
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.harness import Daemon, Simulator, required_tool, wait_until

LOGROTATE = required_tool("logrotate", "logrotate", module_level=True)
# Each scenario writes 1,500 lines/s and delivers 2,000 messages: under pytest-xdist they run one
# after another on one worker, not all at once on a 2-core machine.
pytestmark = pytest.mark.xdist_group("logrotate")

LINES = 2_000  # per scenario; delivery (~250 messages/s here) dominates the run time
RATE = 1_500.0  # lines per second
ROTATIONS = 4
OLD_FD_LINES = 15  # create mode: lines written to the renamed file before the writer reopens
POLL = 0.2  # the file input's poll_interval
MAX_LAG = POLL + 0.3  # how far the tailer may be behind the writer when it keeps up


@pytest.fixture
def sim() -> Iterator[Simulator]:
    sim = Simulator(spec={"robots": {"tok-rot": {"rate_per_minute": 0}}})
    yield sim
    sim.stop()


def bridge_config(sim: Simulator, paths: list[str], exclude: list[str]) -> dict[str, Any]:
    file_input: dict[str, Any] = {
        "type": "file",
        "paths": paths,
        "poll_interval": POLL,
        "rotate_wait": "1s",
        "patterns": [{"regex": r"ERROR (?P<logger>\S+) - seq=(?P<seq>\d+) "}],
    }
    if exclude:
        file_input["exclude"] = exclude
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-rot"),
                "rate_limit": {"messages": 0},
                "digest": {"enabled": False},
            }
        },
        "inputs": {"app-log": file_input},
        # repeat_interval 0: a line read twice is sent twice (and counted), not deduplicated.
        "rules": [
            {"name": "lines", "targets": ["ops"], "title": "{{ labels.seq }}", "repeat_interval": 0}
        ],
    }


class Writer(threading.Thread):
    """Appends `total` numbered lines to `path` at `rate` lines/s, flushing each line.

    With `reopen` (create mode) it checks after every line whether `path` is now another file;
    if so it writes OLD_FD_LINES more lines to its old descriptor, then reopens `path`, as an
    application does when logrotate's postrotate script signals it."""

    def __init__(self, path: Path, total: int, rate: float, reopen: bool) -> None:
        super().__init__(name="log-writer", daemon=True)
        self.path = path
        self.total = total
        self.rate = rate
        self.reopen = reopen
        self.written_at: list[float] = []  # when each line was flushed (monotonic clock)
        self.to_old_fd = 0
        self.reopens = 0
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._write()
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc

    def _write(self) -> None:
        out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 - reopened below
        countdown: int | None = None
        started = time.monotonic()
        try:
            for seq in range(self.total):
                out.write(f"2026-11-28T10:00:00.000 ERROR app - seq={seq} payload-{seq:06d}\n")
                out.flush()
                self.written_at.append(time.monotonic())
                if self.reopen:
                    if countdown is None and self._rotated(out.fileno()):
                        countdown = OLD_FD_LINES
                    elif countdown is not None:
                        self.to_old_fd += 1
                        countdown -= 1
                        if countdown == 0:
                            out.close()
                            out = open(self.path, "a", encoding="utf-8")  # noqa: SIM115
                            self.reopens += 1
                            countdown = None
                delay = started + (seq + 1) / self.rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
        finally:
            out.close()

    def _rotated(self, fd: int) -> bool:
        try:
            info = os.stat(self.path)
        except FileNotFoundError:
            return False  # between logrotate's rename and its create
        mine = os.fstat(fd)
        return (info.st_dev, info.st_ino) != (mine.st_dev, mine.st_ino)

    @property
    def count(self) -> int:
        return len(self.written_at)


def logrotate_conf(log: Path, mode: str, compress: bool) -> str:
    options = ["rotate 5", "missingok", mode]
    options += ["compress", "delaycompress"] if compress else ["nocompress"]
    body = "".join(f"    {o}\n" for o in options)
    return f"{log} {{\n{body}}}\n"


def run_logrotate(conf: Path, state: Path) -> tuple[float, float]:
    """Run one forced rotation; its start and end on the monotonic clock."""
    assert LOGROTATE is not None
    start = time.monotonic()
    done = subprocess.run(
        [LOGROTATE, "-s", str(state), "-f", str(conf)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    end = time.monotonic()
    assert done.returncode == 0, f"logrotate failed: {done.stdout}{done.stderr}"
    return start, end


def ready(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return body


class Titles:
    """Every message title the simulator received, fetched incrementally."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.titles: list[str] = []

    def fetch(self) -> list[str]:
        new = self.sim.messages(since=str(len(self.titles)))
        self.titles += [m["title"] for m in new]
        return self.titles


def drained(daemon: Daemon, sim: Simulator) -> bool:
    """The tailer has read every file it follows to its end, no file is still waiting out its
    rotate_wait, and every event it committed has been delivered."""
    body = ready(daemon)
    tail = body["files"]["app-log"]
    for entry in tail["files"]:
        if entry["rotated"]:
            return False
        try:
            size = os.stat(entry["path"]).st_size
        except FileNotFoundError:
            return False
        if entry["offset"] != size:
            return False
    if body["queues"]["ops"]["pending"] != 0:
        return False
    return bool(sim.stats()["messages"] == tail["events"])


@dataclass
class Outcome:
    lost: list[int]
    duplicated: list[int]
    rotations: list[tuple[float, float]]  # when each logrotate run started and ended
    writer: Writer
    followed: list[str]  # the paths the daemon logged "following" for, in order
    copies: int  # files followed as copies of a followed file (copytruncate), past what was read
    truncations: int  # as /-/ready counted them
    on_disk: set[int]  # the seqs some uncompressed app.log* file holds at the end


def run_scenario(
    sim: Simulator,
    tmp_path: Path,
    *,
    mode: str,
    glob: str,
    compress: bool = False,
    exclude: tuple[str, ...] = (),
) -> Outcome:
    logs = tmp_path / "logs"
    logs.mkdir()
    logs.chmod(0o755)  # logrotate skips logs in group- or world-writable directories
    log = logs / "app.log"
    log.touch()
    conf = tmp_path / "logrotate.conf"
    conf.write_text(logrotate_conf(log, mode, compress), "utf-8")
    conf.chmod(0o644)  # ... and ignores a config file others can write
    state = tmp_path / "logrotate.state"
    (tmp_path / "bridge").mkdir()
    daemon = Daemon(
        bridge_config(sim, [str(logs / glob)], list(exclude)), directory=tmp_path / "bridge"
    )
    try:
        wait_until(lambda: ready(daemon)["files"]["app-log"]["files"], timeout=10)
        writer = Writer(log, LINES, RATE, reopen=mode == "create")
        writer.start()
        rotations: list[tuple[float, float]] = []

        def written(count: int) -> bool:
            return writer.count >= count or writer.error is not None

        def reopened(count: int) -> bool:
            return writer.reopens >= count or writer.error is not None

        for i in range(1, ROTATIONS + 1):
            wait_until(functools.partial(written, LINES * i // (ROTATIONS + 1)), timeout=20)
            rotations.append(run_logrotate(conf, state))
            if mode == "create":  # the next rotation only after the writer reopened
                wait_until(functools.partial(reopened, i), timeout=10)
        writer.join(30)
        assert writer.error is None, writer.error
        assert not writer.is_alive()
        titles = Titles(sim)
        # The last line (written long after the last rotation, to the current app.log) arrives
        # once everything before it was read; then wait until nothing more is on its way.
        last = str(LINES - 1)
        wait_until(lambda: last in titles.fetch(), timeout=120, interval=0.3)
        wait_until(lambda: drained(daemon, sim), timeout=30, interval=0.2)
        seen = Counter(int(t) for t in titles.fetch())
        lost = sorted(set(range(LINES)) - set(seen))
        duplicated = sorted(n for n, c in seen.items() if c > 1)
        status = ready(daemon)["files"]["app-log"]
        print(
            f"\nlogrotate {mode} glob={glob} compress={compress}: {LINES} lines written,"
            f" {ROTATIONS} rotations, {writer.to_old_fd} lines to the old descriptor,"
            f" lost={len(lost)} duplicated={len(duplicated)}"
            f" (tailer rotations={status['rotations']} truncations={status['truncations']})"
        )
        if lost or duplicated:
            print(f"lost: {lost[:50]}\nduplicated: {duplicated[:50]}")
        assert not [n for n in seen if not 0 <= n < LINES]
        on_disk = {
            int(m.group(1))
            for path in logs.glob("app.log*")
            if not path.name.endswith(".gz")
            for m in re.finditer(r"seq=(\d+) ", path.read_text("utf-8"))
        }
        print(f"lost lines that a file on disk holds: {sorted(set(lost) & on_disk)}")
    finally:
        daemon.stop()
        lines = daemon.log().splitlines()
        print("\n".join(line for line in lines if "bridge.inputs.file" in line or "ERROR" in line))
    followed = [m.group(1) for line in lines if (m := re.search(r" following .* path=(\S+)", line))]
    copies = sum("(copytruncate), past what was read" in line for line in lines)
    return Outcome(
        lost, duplicated, rotations, writer, followed, copies, status["truncations"], on_disk
    )


@pytest.mark.parametrize(
    ("glob", "compress", "exclude"),
    [
        ("app.log", False, ()),
        ("app.log*", False, ()),
        ("app.log*", True, ("*.gz",)),
    ],
    ids=["glob-app.log", "glob-app.log*", "glob-app.log*-delaycompress"],
)
def test_create_mode_loses_and_duplicates_nothing(
    sim: Simulator, tmp_path: Path, glob: str, compress: bool, exclude: tuple[str, ...]
) -> None:
    outcome = run_scenario(
        sim, tmp_path, mode="create", glob=glob, compress=compress, exclude=exclude
    )
    # The writer really wrote to the renamed file after each rotation, then reopened.
    assert outcome.writer.reopens == ROTATIONS
    assert outcome.writer.to_old_fd == ROTATIONS * OLD_FD_LINES
    # One new app.log per rotation, each followed from its start, and each file once: with
    # app.log* the renamed files are the same files under new names, never followed again.
    assert len(outcome.followed) == 1 + ROTATIONS and outcome.copies == 0
    assert outcome.truncations == 0  # a rename is not mistaken for a truncation
    # Each is found as app.log, unless (a loaded host, a poll late by a rotation's interval)
    # logrotate renamed a new app.log before any poll saw it: then it is found, once, as
    # app.log.1, which only app.log* names.
    names = {os.path.basename(p) for p in outcome.followed}
    assert "app.log" in names and names <= (
        {"app.log"} if glob == "app.log" else {"app.log", "app.log.1"}
    )
    if compress:  # logrotate did compress (.gz files exist), and the bridge never read them
        assert sorted((tmp_path / "logs").glob("app.log.*.gz"))
    assert outcome.lost == []
    assert outcome.duplicated == []


def test_copytruncate_duplicates_nothing(sim: Simulator, tmp_path: Path) -> None:
    outcome = run_scenario(sim, tmp_path, mode="copytruncate", glob="app.log")
    assert outcome.duplicated == []
    assert outcome.truncations == ROTATIONS  # each truncate noticed once
    # Loss is inherent to copytruncate: the lines the tailer had not read when logrotate
    # truncated app.log are only in app.log.1, which the glob does not name. So every lost line
    # must belong to one contiguous run per rotation that ends at that rotation's truncate: the
    # run starts at most one poll interval (plus slack) before logrotate started, after the
    # previous rotation, and the line after it was written after logrotate started (it went to
    # the truncated file).
    written = outcome.writer.written_at
    unexplained = set(outcome.lost)
    previous_end = float("-inf")
    for number, (start, end) in enumerate(outcome.rotations, 1):
        since = max(start - MAX_LAG, previous_end)
        previous_end = end
        run = [n for n in outcome.lost if since < written[n] <= end]
        unexplained -= set(run)
        during = sum(start <= at <= end for at in written)
        print(
            f"rotation {number}: logrotate ran {1000 * (end - start):.1f} ms, {during} lines"
            f" written meanwhile; lost {len(run)}"
            + (
                f" (seq {run[0]}..{run[-1]}, the first written"
                f" {1000 * (written[run[0]] - start):+.1f} ms from logrotate's start)"
                if run
                else ""
            )
        )
        if run:
            assert run == list(range(run[0], run[-1] + 1)), f"lost lines not contiguous: {run}"
            assert written[run[-1] + 1] >= start, f"lost run {run} does not end at the truncate"
    assert not unexplained, f"lost lines written away from any rotation: {sorted(unexplained)}"
    # The lines no file holds (the copy was taken before they were written) were written
    # between logrotate's copy and its truncate.
    assert set(outcome.lost) - outcome.on_disk <= written_while_logrotate_ran(outcome)


def written_while_logrotate_ran(outcome: Outcome) -> set[int]:
    return {
        seq
        for seq, at in enumerate(outcome.writer.written_at)
        if any(start <= at <= end for start, end in outcome.rotations)
    }


def test_copytruncate_with_the_copies_in_the_glob_duplicates_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    """With app.log* the copies (app.log.1) match too: each is recognised as a copy of app.log
    by its first 1 KiB and read only past what was read in app.log before the truncate. So the
    lines the tailer had not read when the truncate came are read from the copy; only lines
    written between logrotate's copy and its truncate can be lost (they are in no file)."""
    outcome = run_scenario(sim, tmp_path, mode="copytruncate", glob="app.log*")
    assert outcome.truncations == ROTATIONS
    assert outcome.copies == ROTATIONS
    assert outcome.duplicated == []
    assert not set(outcome.lost) & outcome.on_disk, "lost lines that a copy holds"
    during = written_while_logrotate_ran(outcome)
    print(
        f"lost {len(outcome.lost)}, all written while logrotate ran: {set(outcome.lost) <= during}"
    )
    assert set(outcome.lost) <= during
