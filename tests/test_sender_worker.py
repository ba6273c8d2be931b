"""The sender's thread (delivery/worker.py): it steps until stopped, survives an error in a step,
and hands over to `at_stop` once, after its last step."""

from __future__ import annotations

import threading

import pytest

from bridge.delivery import worker as worker_module
from bridge.delivery.worker import Worker


def test_steps_until_stopped_then_runs_at_stop_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(worker_module, "ERROR_PAUSE", 0.001)
    log: list[str] = []
    stopped = threading.Event()

    def step() -> float:
        log.append("step")
        if len(log) == 2:
            raise OSError("database is locked")  # not one message's fault: pause, go on
        if len(log) == 4:
            worker.request_stop()
        return 0.0

    def at_stop() -> None:
        log.append("at_stop")
        stopped.set()

    worker = Worker("t", step, at_stop, call_timeout=1.0)
    worker.start()
    assert stopped.wait(10)
    worker.stop(5)
    assert log == ["step"] * 4 + ["at_stop"]
    assert not worker.alive()


def test_a_wake_reaches_only_an_idle_worker() -> None:
    woken = threading.Event()
    steps: list[float] = []

    def step() -> float:
        steps.append(1)
        if len(steps) == 1:
            worker.idle = True  # no rows: wait long, unless woken
            return 3600.0
        woken.set()
        worker.request_stop()
        return 0.0

    worker = Worker("t", step, lambda: None, call_timeout=1.0)
    worker.start()
    while not worker.idle:
        threading.Event().wait(0.001)
    worker.wake()
    assert woken.wait(10)
    worker.stop(5)
    assert len(steps) == 2
