"""Live reload with a file input (T30, T31 of the log-tailing reference, and the reload rules of
the file input): an unchanged input keeps running through a reload, with its partial line; a
changed one restarts and resumes from its offsets; SIGHUP under a writer loses and repeats
nothing; a broken config keeps the input running; a removed input stops and, re-added, resumes.

Every line carries a unique `seq` that the rule puts in the message title, and the rule's
repeat_interval is 0, so a line read twice is sent twice: the titles the simulator received tell
exactly what was lost and what was repeated.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.harness import Daemon, Simulator, wait_until

ERROR_ONLY = r"ERROR seq=(?P<seq>\d+)"
ERROR_OR_WARN = r"(?:ERROR|WARN) seq=(?P<seq>[\w-]+)"


def target(sim: Simulator, token: str) -> dict[str, Any]:
    return {
        "type": "robot",
        "webhook": sim.robot_url(token),
        "rate_limit": {"messages": 0},
        "digest": {"enabled": False},
    }


def file_input(paths: str | list[str], regex: str = ERROR_ONLY, **options: Any) -> dict[str, Any]:
    return {
        "type": "file",
        "paths": [paths] if isinstance(paths, str) else paths,
        "poll_interval": "200ms",
        "rotate_wait": "1s",
        "patterns": [{"regex": regex}],
        **options,
    }


def config(
    sim: Simulator,
    inputs: dict[str, dict[str, Any]],
    title: str = "{{ labels.seq }}",
    to: str = "a",
) -> dict[str, Any]:
    return {
        "targets": {"a": target(sim, "tok-a"), "b": target(sim, "tok-b")},
        "inputs": inputs,
        # repeat_interval 0: a line read twice is sent twice, and counted.
        "rules": [{"name": "lines", "targets": [to], "title": title, "repeat_interval": 0}],
    }


def start(tmp_path: Path, cfg: dict[str, Any]) -> Daemon:
    (tmp_path / "logs").mkdir(exist_ok=True)
    for name in ("app.log", "other.log"):
        (tmp_path / "logs" / name).touch()
    daemon = Daemon(cfg, directory=tmp_path)  # the config's relative paths: under tmp_path
    wait_until(lambda: all(t["files"] for t in files(daemon).values()), timeout=10)
    return daemon


def ready(daemon: Daemon) -> dict[str, Any]:
    body: dict[str, Any] = requests.get(f"{daemon.url}/-/ready", timeout=5).json()
    return body


def files(daemon: Daemon) -> dict[str, Any]:
    tailers: dict[str, Any] = ready(daemon)["files"]
    return tailers


def started_at(daemon: Daemon, name: str = "app-log") -> str:
    stamp: str = files(daemon)[name]["started_at"]
    return stamp


def save(daemon: Daemon, cfg: dict[str, Any] | str, in_place: bool = False) -> None:
    """Save a new config: by default the way an editor does (a new file renamed over the old
    one); `in_place` rewrites the file itself."""
    if isinstance(cfg, dict):
        cfg = {
            "state_dir": str(daemon.dir / "state"),
            **cfg,
            "server": {"listen": f"127.0.0.1:{daemon.port}"},
        }
        cfg = yaml.safe_dump(cfg, allow_unicode=True, sort_keys=False)
    if in_place:
        daemon.config_path.write_text(cfg, "utf-8")
        return
    tmp = daemon.config_path.with_suffix(".tmp")
    tmp.write_text(cfg, "utf-8")
    os.replace(tmp, daemon.config_path)


def reloaded(daemon: Daemon) -> int:
    return daemon.log().count("config reloaded")


def failed(daemon: Daemon) -> int:
    return daemon.log().count("reload failed, old config kept")


def append(path: Path, text: str) -> None:
    with open(path, "a", encoding="utf-8") as f:
        f.write(text)


def lines(first: int, last: int, level: str = "ERROR") -> str:
    return "".join(
        f"2026-11-28 10:00:00 {level} seq={n} something happened\n" for n in range(first, last)
    )


class Titles:
    """The titles of the messages the simulator received, fetched incrementally."""

    def __init__(self, sim: Simulator) -> None:
        self.sim = sim
        self.messages: list[dict[str, Any]] = []

    def fetch(self) -> list[str]:
        self.messages += self.sim.messages(since=str(len(self.messages)))
        return [m["title"] for m in self.messages]

    def by_token(self, token: str) -> list[str]:
        self.fetch()
        return [m["title"] for m in self.messages if m["token"] == token]

    def wait(self, *titles: str, timeout: float = 15.0) -> list[str]:
        """Wait until every one of `titles` arrived; all titles so far."""
        wanted = set(titles)
        return list(
            wait_until(lambda: wanted <= set(t := self.fetch()) and t, timeout, interval=0.1)
        )


def caught_up(daemon: Daemon) -> bool:
    """The input has read every file it follows to its end (past complete lines)."""
    return all(
        entry["offset"] == os.stat(entry["path"]).st_size
        for entry in files(daemon)["app-log"]["files"]
    )


def queues_empty(daemon: Daemon) -> bool:
    return all(q["pending"] == 0 for q in ready(daemon)["queues"].values())


END = 999_999  # the seq of the last line each test writes


def settle(daemon: Daemon, titles: Titles, log: Path, prefix: str = "") -> list[str]:
    """Append a last line and wait for its message: lines are read in file order, committed in
    that order and each target sends its queue in order, so once it arrived every line before it
    was read and sent (or is still queued, hence the wait for empty queues). All titles but the
    last line's."""
    append(log, lines(END, END + 1))
    titles.wait(f"{prefix}{END}", timeout=30)
    wait_until(lambda: queues_empty(daemon), timeout=30)
    got = titles.fetch()
    assert got.count(f"{prefix}{END}") == 1, "the last line was sent more than once"
    return [t for t in got if t != f"{prefix}{END}"]


def exactly_once(titles: list[str], expected: list[str]) -> None:
    counts = Counter(titles)
    lost = [t for t in expected if counts[t] == 0]
    repeated = sorted(t for t, c in counts.items() if c > 1)
    unexpected = sorted(set(counts) - set(expected))
    print(f"\n{len(expected)} lines expected: lost={len(lost)} repeated={len(repeated)}")
    assert (lost, repeated, unexpected) == ([], [], [])


class Writer(threading.Thread):
    """Appends ERROR lines seq=first.. to `path` at `rate` lines/s until stopped."""

    def __init__(self, path: Path, first: int, rate: float = 200.0) -> None:
        super().__init__(name="log-writer", daemon=True)
        self.path = path
        self.next = first
        self.first = first
        self.rate = rate
        self.written_at: dict[int, float] = {}
        self._halt = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            with open(self.path, "a", encoding="utf-8") as out:
                began = time.monotonic()
                while not self._halt.is_set():
                    out.write(lines(self.next, self.next + 1))
                    out.flush()
                    self.written_at[self.next] = time.monotonic()
                    self.next += 1
                    self._halt.wait(
                        max(0.0, began + (self.next - self.first) / self.rate - time.monotonic())
                    )
        except BaseException as exc:  # reported by the test
            self.error = exc

    def wait_written(self, count: int) -> None:
        """Wait until `count` lines were written since it started."""
        wait_until(lambda: self.next - self.first >= count or self.error, timeout=20)

    def wait_more(self, count: int) -> None:
        """Wait until `count` more lines were written from now."""
        self.wait_written(self.next - self.first + count)

    def finish(self) -> range:
        self._halt.set()
        self.join(10)
        assert self.error is None, self.error
        return range(self.first, self.next)


# -- an unchanged input keeps running ----------------------------------------------------------


def test_an_unchanged_file_input_keeps_running_with_its_partial_line(
    sim: Simulator, tmp_path: Path
) -> None:
    inputs = {"app-log": file_input("logs/app.log")}
    daemon = start(tmp_path, config(sim, inputs))
    try:
        log = tmp_path / "logs" / "app.log"
        titles = Titles(sim)
        append(log, lines(1, 4))
        titles.wait("1", "2", "3")
        # A complete line and the start of the next one in one write: once the complete line
        # arrived, the tailer has read the partial one too (and holds it).
        append(log, lines(4, 5) + "2026-11-28 10:00:01 ERROR seq=5")
        titles.wait("4")
        before = started_at(daemon)

        save(daemon, config(sim, inputs, title="v2 {{ labels.seq }}"))  # a rule edit only
        wait_until(lambda: reloaded(daemon) == 1, timeout=10)
        assert "restarted_inputs" not in daemon.log()
        assert started_at(daemon) == before
        assert ready(daemon)["config"]["last_reload"]["file_inputs_restarted"] == []

        append(log, "00 after the reload\n")  # completes seq=500
        append(log, lines(6, 7))
        got = settle(daemon, titles, log, prefix="v2 ")
        assert got == ["1", "2", "3", "4", "v2 500", "v2 6"]  # the partial line once, whole
        whole = next(m for m in titles.messages if m["title"] == "v2 500")
        assert "ERROR seq=500 after the reload" in whole["text"]
        assert started_at(daemon) == before
    finally:
        daemon.stop()


# -- a changed input restarts and resumes ------------------------------------------------------


def test_a_changed_file_input_restarts_and_resumes_from_its_offset(
    sim: Simulator, tmp_path: Path
) -> None:
    paths = ["logs/app.log", "logs/other.log"]
    inputs = {"app-log": file_input(paths)}
    daemon = start(tmp_path, config(sim, inputs))
    try:
        log, other = tmp_path / "logs" / "app.log", tmp_path / "logs" / "other.log"
        titles = Titles(sim)
        # WARN lines before the change: the old pattern ignores them, and the restarted input
        # must not read them again (it resumes after them).
        append(log, lines(0, 50) + lines(0, 5, "WARN").replace("seq=", "seq=before-"))
        titles.wait(*[str(n) for n in range(50)])
        wait_until(lambda: caught_up(daemon), timeout=10)
        # A partial line in the other file, held by the input when it restarts.
        append(other, lines(6999, 7000) + "2026-11-28 10:00:01 ERROR seq=7000")
        titles.wait("6999")
        before = started_at(daemon)

        writer = Writer(log, 50)  # ERROR lines all through the reload
        writer.start()
        writer.wait_written(100)
        changed = {"app-log": file_input(paths, regex=ERROR_OR_WARN)}
        save(daemon, config(sim, changed))
        wait_until(lambda: reloaded(daemon) == 1, timeout=10)
        assert started_at(daemon) != before  # restarted
        assert "restarted_inputs=app-log" in daemon.log()
        writer.wait_more(100)  # lines after the reload too
        written = writer.finish()
        append(log, lines(0, 5, "WARN").replace("seq=", "seq=after-"))  # the new pattern's
        append(other, "01 completed after the restart\n")

        expected = [str(n) for n in range(written.stop)] + [f"after-{n}" for n in range(5)]
        expected += ["6999", "700001"]
        exactly_once(settle(daemon, titles, log), expected)
        whole = next(m for m in titles.messages if m["title"] == "700001")
        assert "ERROR seq=700001 completed after the restart" in whole["text"]
        # Both files resumed at their offsets (not from the start, not from the end).
        resumed = [line for line in daemon.log().splitlines() if " following " in line][2:]
        assert len(resumed) == 2 and all("how=resumed" in r for r in resumed), resumed
    finally:
        daemon.stop()


# -- SIGHUP under a writer (T31) ---------------------------------------------------------------


def test_sighup_while_a_writer_appends_loses_and_repeats_nothing(
    sim: Simulator, tmp_path: Path
) -> None:
    inputs = {"app-log": file_input("logs/app.log")}
    daemon = start(tmp_path, config(sim, inputs, to="a"))
    try:
        log = tmp_path / "logs" / "app.log"
        titles = Titles(sim)
        writer = Writer(log, 0)
        writer.start()
        writer.wait_written(80)
        first = started_at(daemon)

        # 1. The rule now sends to robot b; the input is unchanged and keeps running.
        # (Written in place and signalled at once: the reload is SIGHUP's, before the watcher's
        # debounce; the watcher's own reload later finds nothing changed.)
        save(daemon, config(sim, inputs, to="b"), in_place=True)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: "config reloaded trigger=SIGHUP" in daemon.log(), timeout=10)
        switched = time.monotonic()
        assert started_at(daemon) == first
        # The watcher saw the write too: its debounced reload finds nothing new. Let it pass,
        # so the next reload is SIGHUP's again.
        wait_until(lambda: "reload skipped, nothing changed" in daemon.log(), timeout=10)
        writer.wait_more(100)

        # 2. The input itself changes (its poll interval): it restarts and resumes.
        changed = {"app-log": file_input("logs/app.log", poll_interval="300ms")}
        save(daemon, config(sim, changed, to="b"), in_place=True)
        daemon.signal(signal.SIGHUP)
        wait_until(lambda: daemon.log().count("config reloaded trigger=SIGHUP") == 2, timeout=10)
        assert started_at(daemon) != first
        writer.wait_more(100)
        written = writer.finish()

        exactly_once(settle(daemon, titles, log), [str(n) for n in written])
        # Lines written once the first reload was done went to the new destination.
        later = {str(n) for n, at in writer.written_at.items() if at > switched}
        assert later and not later & set(titles.by_token("tok-a"))
        assert "restarted_inputs=app-log" in daemon.log()
    finally:
        daemon.stop()


# -- a broken config changes nothing (T30) -----------------------------------------------------


def test_a_broken_config_keeps_the_file_input_running(sim: Simulator, tmp_path: Path) -> None:
    inputs = {"app-log": file_input("logs/app.log")}
    good = config(sim, inputs)
    daemon = start(tmp_path, good)
    try:
        log = tmp_path / "logs" / "app.log"
        titles = Titles(sim)
        append(log, lines(0, 10))
        titles.wait(*[str(n) for n in range(10)])
        before = started_at(daemon)

        save(daemon, daemon.config_path.read_text("utf-8") + "rules: [oops\n")  # bad YAML
        wait_until(lambda: failed(daemon) == 1, timeout=10)
        append(log, lines(10, 20))
        titles.wait(*[str(n) for n in range(10, 20)])
        assert started_at(daemon) == before

        bad_regex = {"app-log": file_input("logs/app.log", regex=r"ERROR seq=(?P<seq>\d+")}
        save(daemon, config(sim, bad_regex))
        wait_until(lambda: failed(daemon) == 2, timeout=10)
        assert "bad regular expression" in daemon.log()
        append(log, lines(20, 30))
        titles.wait(*[str(n) for n in range(20, 30)])
        state = ready(daemon)
        assert state["config"]["last_reload"]["result"] == "failed"
        assert state["files"]["app-log"]["state"] == "running" and started_at(daemon) == before
        assert reloaded(daemon) == 0

        # A valid edit then applies (a rule edit: the input keeps running).
        save(daemon, config(sim, inputs, title="fixed {{ labels.seq }}"))
        wait_until(lambda: reloaded(daemon) == 1, timeout=10)
        append(log, lines(30, 40))
        expected = [str(n) for n in range(30)] + [f"fixed {n}" for n in range(30, 40)]
        exactly_once(settle(daemon, titles, log, prefix="fixed "), expected)
        assert started_at(daemon) == before
    finally:
        daemon.stop()


# -- a removed input stops; re-added, it resumes -----------------------------------------------


def open_paths(pid: int) -> set[str]:
    """The files process `pid` has open."""
    paths = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            paths.add(os.readlink(f"/proc/{pid}/fd/{fd}"))
        except OSError:
            continue  # closed meanwhile
    return paths


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_a_removed_file_input_stops_and_resumes_when_added_again(
    sim: Simulator, tmp_path: Path
) -> None:
    app = file_input("logs/app.log")
    other = file_input("logs/other.log", regex=r"INFO other=(?P<seq>\S+)")
    daemon = start(tmp_path, config(sim, {"app-log": app, "other-log": other}))
    try:
        log = tmp_path / "logs" / "app.log"
        titles = Titles(sim)
        append(log, lines(0, 10))
        titles.wait(*[str(n) for n in range(10)])
        real = os.path.realpath(log)
        assert real in open_paths(daemon.proc.pid)

        save(daemon, config(sim, {"other-log": other}))
        wait_until(lambda: reloaded(daemon) == 1, timeout=10)
        assert "app-log" not in files(daemon)
        wait_until(lambda: real not in open_paths(daemon.proc.pid), timeout=5)
        append(log, lines(10, 20))  # while nothing follows app.log
        # The other input still runs; nothing of app.log arrives meanwhile.
        append(tmp_path / "logs" / "other.log", "INFO other=o1\n")
        titles.wait("o1")
        wait_until(lambda: queues_empty(daemon), timeout=10)
        assert not {str(n) for n in range(10, 20)} & set(titles.fetch())

        save(daemon, config(sim, {"app-log": app, "other-log": other}))
        wait_until(lambda: reloaded(daemon) == 2, timeout=10)
        append(log, lines(20, 30))
        expected = [str(n) for n in range(30)] + ["o1"]
        exactly_once(settle(daemon, titles, log), expected)
        follows = [
            line for line in daemon.log().splitlines() if " following input=app-log " in line
        ]
        assert len(follows) == 2 and "how=resumed" in follows[1], follows
    finally:
        daemon.stop()
