"""Real processes for end-to-end tests: the daemon and the DingTalk simulator, on real sockets.

Both are started as `python -m bridge ...` subprocesses, exactly as an operator would run them;
tests talk to them over HTTP and read the simulator's control API to see what DingTalk received.
"""

from __future__ import annotations

import itertools
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

import pytest
import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = ROOT.parent / "shared" / "fixtures"
if not FIXTURES.is_dir():  # CI lays shared/ beside the clone, as here
    FIXTURES = Path(os.environ.get("BRIDGE_SHARED", "/work/shared")) / "fixtures"


def required_tool(
    name: str, package: str, module_level: bool = False, *, installer: str = "apt-get install"
) -> str:
    """The path of an outside program a test runs (Alertmanager, promtool, logrotate, ...).

    Missing, the test is skipped, except under CI (`CI` set, as .ci/run does), which installs
    every such package: there a missing tool fails instead of passing by skipping. Programs
    that come in a wheel (hadolint, kubectl: the dev extras) are found in this interpreter's
    bin directory, first (the pinned version over another on PATH), as the suite runs as
    .venv/bin/python without activating the venv.
    """
    found = (
        shutil.which(name, path=str(Path(sys.executable).parent))
        or shutil.which(name)
        or shutil.which(name, path="/usr/sbin:/sbin")
    )
    if found is not None:
        return found
    message = f"{name} is not installed ({installer} {package})"
    if os.environ.get("CI"):
        pytest.fail(f"{message}, and CI must run the tests that need it", pytrace=False)
    pytest.skip(message, allow_module_level=module_level)


def example_variables() -> tuple[str, ...]:
    """The environment variables config.example.yaml reads (`${NAME}`): tests clear them so the
    example runs with its demo defaults whatever the machine has set."""
    text = (ROOT / "config.example.yaml").read_text("utf-8")
    return tuple(sorted(set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)", text))))


# Ports for the processes the tests start come from below the kernel's ephemeral range
# (ip_local_port_range, 32768-60999 on Linux). Asking the kernel for a free port (bind to 0)
# hands out an ephemeral one, and between our close and the daemon's bind any outgoing
# connection on the machine may take it as its local port: CI once lost a test to exactly that
# (EADDRINUSE with four xdist workers making thousands of connections). Each xdist worker takes
# its own slice, walked in order from a random start, so two workers never offer the same port.
_PORTS_LOW, _PORTS_HIGH = 20000, 32000


def _port_slice() -> range:
    """This xdist worker's ports (the whole range outside xdist: a benchmark, a script)."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "")
    count = max(int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1), 1)
    index = int(worker[2:]) if worker.startswith("gw") and worker[2:].isdigit() else 0
    width = (_PORTS_HIGH - _PORTS_LOW) // count
    start = _PORTS_LOW + (index % count) * width
    return range(start, start + width)


_PORTS = _port_slice()  # the worker's environment is set before it imports the tests
_next_port = itertools.count(random.randrange(len(_PORTS)))


def free_port() -> int:
    """A loopback TCP port no process holds now and no other test worker will be offered."""
    for _ in range(len(_PORTS)):
        port = _PORTS[next(_next_port) % len(_PORTS)]
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise AssertionError(f"no free port in {_PORTS.start}-{_PORTS.stop - 1}")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll `predicate` until it returns something truthy; fail the test after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def bridge_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 60
) -> subprocess.CompletedProcess[str]:
    """`python -m bridge <args>` run to its end, as an operator runs a command (`env`, when
    given, is the whole environment)."""
    return subprocess.run(
        [sys.executable, "-m", "bridge", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


STARTUP_BOUND = 30.0


class Process:
    """A subprocess whose stderr is collected to a file (read it with .log())."""

    def __init__(self, args: list[str], env: dict[str, str] | None = None) -> None:
        self._log = tempfile.NamedTemporaryFile(  # noqa: SIM115 - closed right after Popen
            prefix="bridge-test-", suffix=".log", delete=False
        )
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "bridge", *args],
            cwd=ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
        self._log.close()  # the child has its own descriptor; we read the file by name

    def log(self) -> str:
        return Path(self._log.name).read_text("utf-8", errors="replace")

    def _up(self) -> bool:
        raise NotImplementedError

    def _await_start(self, what: str) -> None:
        """Wait until `_up`; else stop the process (no child left running for the next test to
        find) and fail with its log. 30 s is a bound, not a measurement: on a loaded 2-core
        machine (CI's four xdist workers) a supervisor and its workers took over 15 s to start."""
        try:
            wait_until(self._up, timeout=STARTUP_BOUND)
        except AssertionError as exc:
            self.stop()
            raise AssertionError(
                f"{what} did not come up ({exc}); its log:\n{self.log()}"
            ) from None

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


class Simulator(Process):
    def __init__(self, spec: dict[str, Any] | None = None, extra: list[str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = ["simulator", "--listen", f"127.0.0.1:{self.port}", *(extra or [])]
        if spec is not None:
            fd, spec_path = tempfile.mkstemp(suffix=".json")
            with os.fdopen(fd, "w") as spec_file:
                json.dump(spec, spec_file)
            args += ["--spec", spec_path]
        super().__init__(args)
        self._await_start("the simulator")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"simulator exited: {self.log()}")
        try:
            return requests.get(f"{self.url}/_sim/stats", timeout=1).ok
        except requests.ConnectionError:
            return False

    def robot_url(self, token: str) -> str:
        return f"{self.url}/robot/send?access_token={token}"

    def messages(self, **filters: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.url}/_sim/messages", params=filters, timeout=5)
        response.raise_for_status()
        messages: list[dict[str, Any]] = response.json()["messages"]
        return messages

    def wait_messages(
        self, count: int, timeout: float = 10.0, **filters: str
    ) -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = wait_until(
            lambda: (m := self.messages(**filters)) and len(m) >= count and m, timeout
        )
        return found

    def stats(self) -> dict[str, Any]:
        stats: dict[str, Any] = requests.get(f"{self.url}/_sim/stats", timeout=5).json()
        return stats

    def requests_seen(self) -> list[dict[str, Any]]:
        seen: list[dict[str, Any]] = requests.get(f"{self.url}/_sim/requests", timeout=5).json()[
            "requests"
        ]
        return seen

    def control(self, path: str, body: Any = None) -> Any:
        response = requests.post(f"{self.url}/_sim/{path}", json=body, timeout=5)
        response.raise_for_status()
        return response.json()


class Daemon(Process):
    """`dingtalk-bridge run -c <config>` with the config written to a temporary directory."""

    def __init__(
        self,
        config: dict[str, Any] | str,
        env: dict[str, str] | None = None,
        directory: Path | None = None,
        args: list[str] | None = None,
    ) -> None:
        """`args` go after `run -c <config>` (say, `--log-format json`)."""
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = directory or Path(tempfile.mkdtemp(prefix="bridge-cfg-"))
        self.config_path = self.dir / "config.yaml"
        if isinstance(config, dict):
            config = {
                "state_dir": str(self.dir / "state"),
                **config,
                "server": {**config.get("server", {}), "listen": f"127.0.0.1:{self.port}"},
            }
            text = yaml.safe_dump(config, allow_unicode=True, sort_keys=False)
        else:
            text = config.replace("{port}", str(self.port))
        self.config_path.write_text(text, "utf-8")
        super().__init__(["run", "-c", str(self.config_path), *(args or [])], env)
        self._await_start("the daemon")

    def _up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"daemon exited with {self.proc.returncode}: {self.log()}")
        try:
            return requests.get(f"{self.url}/-/healthy", timeout=1).ok
        except requests.ConnectionError:
            return False

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        data: bytes | None = None,
        token: str | None = None,
        **kw: Any,
    ) -> requests.Response:
        headers = kw.pop("headers", {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if data is None:
            data = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        timeout = kw.pop("timeout", 10)
        return requests.post(f"{self.url}{path}", data=data, headers=headers, timeout=timeout, **kw)


def fixture_json(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((FIXTURES / "alertmanager" / name).read_text("utf-8"))
    return loaded


def compile_yaml(directory: Path, text: str, environ: dict[str, str] | None = None) -> Any:
    """Write `text` as directory/config.yaml and compile it (raises ConfigError)."""
    from bridge.config.compile import load_config

    path = directory / "config.yaml"
    path.write_text(text, "utf-8")
    return load_config(path, environ or {})


def am_alert_payload(alertname: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """The fixture notification for another alert, with the identities Alertmanager gives it:
    its fingerprint follows its labels and its group key its alertname."""
    from bridge.model import label_fingerprint

    payload = fixture_json("firing.json" if status == "firing" else "resolved.json")
    alert = payload["alerts"][0]
    alert["labels"].update(alertname=alertname, **labels)
    alert["fingerprint"] = label_fingerprint(alert["labels"])
    payload["commonLabels"] = dict(alert["labels"])
    payload["groupLabels"] = {"alertname": alertname}
    payload["groupKey"] = f'{{}}:{{alertname="{alertname}"}}'
    return payload


class PrometheusServer:
    """A server of the Prometheus project (prometheus, alertmanager) on 127.0.0.1, run from a
    YAML config written to `directory`, where its data and its log go too."""

    def __init__(
        self, binary: str, config: dict[str, Any], directory: Path, flags: list[str]
    ) -> None:
        self.name = Path(binary).name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config_path = directory / f"{self.name}.yml"
        config_path.write_text(yaml.safe_dump(config, sort_keys=False), "utf-8")
        self.log_path = directory / f"{self.name}.log"
        self._log: TextIO = self.log_path.open("w", encoding="utf-8")
        self.proc = subprocess.Popen(
            [
                binary,
                f"--config.file={config_path}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                *flags,
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text("utf-8", errors="replace")

    def ready(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"{self.name} exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def stop(self) -> None:
        try:
            if self.proc.poll() is None:
                self.proc.terminate()
                try:
                    self.proc.wait(10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(5)
        finally:
            self._log.close()


# -- /metrics ----------------------------------------------------------------------------------


def metrics_config(sim: Simulator, logs: Path) -> dict[str, Any]:
    """A daemon config that can make every kind of series: target `ops` (robot tok-a) delivers,
    target `bad` (robot tok-b: give it a fault) gets alerts named Broken, input `am` wants the
    token `t0ken` (a request without it is a rejection), and file input `app` follows
    logs/*.log for lines with `ERROR <what>`."""
    return {
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-a"),
                "rate_limit": {"messages": 0},
            },
            "bad": {
                "type": "robot",
                "webhook": sim.robot_url("tok-b"),
                "rate_limit": {"messages": 0},
            },
        },
        "inputs": {
            "am": {"type": "alertmanager", "path": "/am", "token": "t0ken"},
            "app": {
                "type": "file",
                "paths": [str(logs / "*.log")],
                "poll_interval": "200ms",
                "patterns": [{"regex": r"ERROR (?P<what>\w+)"}],
            },
        },
        "rules": [
            {"name": "to-bad", "match": {"alertname": "Broken"}, "targets": ["bad"]},
            {"name": "all", "targets": ["ops"]},
        ],
    }


def metrics_after_traffic(sim: Simulator, directory: Path) -> tuple[str, str, Path]:
    """Run a `metrics_config` daemon through every kind of series: two alerts (one to `bad`,
    which DingTalk refuses with 310000: a dead letter), a request without the token, and a log
    line that matches followed by 100 bytes without a newline. Returns /metrics once that has
    all happened, the config hash, and the log file's path."""
    logs = directory / "logs"
    logs.mkdir()
    log = logs / "app.log"
    log.write_text("")
    sim.control(
        "faults",
        {"path": "/robot/send", "token": "tok-b", "count": 1, "action": {"errcode": 310000}},
    )
    daemon = Daemon(metrics_config(sim, logs), directory=directory)
    try:
        wait_until(lambda: "file input started" in daemon.log())
        assert daemon.post("/am", am_alert_payload("DiskFull"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("Broken"), token="t0ken").status_code == 200
        assert daemon.post("/am", am_alert_payload("NoToken")).status_code == 401
        log.write_text("x ERROR disk\n" + "y" * 100)

        def done() -> bool:
            text = scrape_metrics(daemon)
            return (
                metric_value(text, "dead_letters_total", target="bad") == 1
                and metric_value(text, "messages_sent_total", target="ops") == 2
                and metric_value(text, "tail_lag_bytes", input="app", path=str(log)) == 100
            )

        wait_until(done)
        config_hash = requests.get(f"{daemon.url}/-/ready", timeout=5).json()["config"]["hash"]
        return scrape_metrics(daemon), config_hash, log
    finally:
        daemon.stop()


def scrape_metrics(daemon: Daemon) -> str:
    """GET /metrics, checked to be Prometheus's text format."""
    response = requests.get(f"{daemon.url}/metrics", timeout=5)
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    return response.text


def metric_value(text: str, name: str, **labels: str) -> float:
    """The value of series `dingtalk_bridge_<name>{labels}` in an exposition; -1 if absent."""
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == f"dingtalk_bridge_{name}" and sample.labels == labels:
                return float(sample.value)
    return -1.0


def quick_robot_config(sim: Simulator, **state: Any) -> dict[str, Any]:
    """One Alertmanager input, one rule, one robot without a rate limit that retries fast: the
    config of the tests about state (where it lives, what survives), `state` added as given."""
    return {
        **state,
        "targets": {
            "ops": {
                "type": "robot",
                "webhook": sim.robot_url("tok-a"),
                "rate_limit": {"messages": 0},
                "retry": {"initial": 0.2, "max": 1},
            }
        },
        "inputs": {"am": {"type": "alertmanager", "path": "/am"}},
        "rules": [{"name": "all", "targets": ["ops"]}],
    }


def console_session(daemon: Daemon, token: str, name: str = "") -> tuple[requests.Session, str]:
    """A session signed in through the console's form (server.console at its default path), and
    the CSRF token its pages carry."""
    session = requests.Session()
    answer = session.post(
        f"{daemon.url}/console/login",
        data={"token": token, "name": name},
        allow_redirects=False,
        timeout=10,
    )
    assert answer.status_code == 303, answer.text
    page = session.get(f"{daemon.url}/console/", timeout=10)
    found = re.search(r'<meta name="csrf-token" content="([^"]+)"', page.text)
    assert found is not None, page.text
    return session, found.group(1)
