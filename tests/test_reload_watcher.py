"""The config watcher reacts to the config and the files it reads, and to nothing else.

With `--log-level debug` and the log written beside the config, the watcher once reported its
own log writes, each report another write: 150,000 lines in 12 s.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import yaml
from watchdog.events import FileModifiedEvent, FileMovedEvent

from bridge.app.watch import _Handler
from tests.harness import ROOT, free_port, wait_until


class Pokes:
    def __init__(self) -> None:
        self.count = 0

    def poke(self) -> None:
        self.count += 1


def handler(names: set[str]) -> tuple[_Handler, Pokes]:
    pokes = Pokes()
    return _Handler(pokes, frozenset(names)), pokes  # type: ignore[arg-type]


def test_changes_to_other_files_in_the_directory_are_ignored() -> None:
    watch, pokes = handler({"config.yaml", "alert.md.j2"})
    for path in ("/etc/b/bridge.log", "/etc/b/state.db-wal", "/etc/b/config.yaml.bak"):
        watch.on_any_event(FileModifiedEvent(path))
    assert pokes.count == 0


def test_the_config_its_templates_and_an_editor_rename_over_them_count() -> None:
    watch, pokes = handler({"config.yaml", "alert.md.j2"})
    watch.on_any_event(FileModifiedEvent("/etc/b/config.yaml"))
    watch.on_any_event(FileModifiedEvent("/etc/b/alert.md.j2"))
    watch.on_any_event(FileMovedEvent("/etc/b/.config.yaml.swp", "/etc/b/config.yaml"))
    watch.on_any_event(FileMovedEvent("/etc/b/..data_tmp", "/etc/b/..data"))  # Kubernetes
    assert pokes.count == 4


def test_debug_log_beside_the_config_does_not_feed_the_watcher(tmp_path: Path) -> None:
    """The real daemon at debug level, its log in the config's directory: the log stays quiet
    while nothing happens, and a change to the config is still seen."""
    port = free_port()
    config = tmp_path / "config.yaml"
    settings = {
        "state_dir": str(tmp_path / "state"),
        "server": {"listen": f"127.0.0.1:{port}"},
        "targets": {
            "ops": {"type": "robot", "webhook": "http://127.0.0.1:9/robot/send?access_token=x"}
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }
    config.write_text(yaml.safe_dump(settings), "utf-8")
    log_path = tmp_path / "bridge.log"
    with log_path.open("wb") as log_file:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", "run", "-c", str(config), "--log-level", "debug"],
            cwd=ROOT,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    try:

        def started() -> bool:
            assert proc.poll() is None, log_path.read_text("utf-8", "replace")
            return "started" in log_path.read_text("utf-8", "replace")

        wait_until(started, timeout=30)
        time.sleep(3)  # the loop wrote tens of thousands of lines in this time
        lines = log_path.read_text("utf-8", "replace").splitlines()
        assert len(lines) < 100, lines[-5:]
        assert not [line for line in lines if "watchdog" in line and "DEBUG" in line]

        settings["rules"] = [{"name": "renamed", "targets": ["ops"]}]
        config.write_text(yaml.safe_dump(settings), "utf-8")
        wait_until(lambda: "config reloaded" in log_path.read_text("utf-8", "replace"), 30)
        time.sleep(2)
        assert len(log_path.read_text("utf-8", "replace").splitlines()) < 150
    finally:
        proc.terminate()
        proc.wait(15)
