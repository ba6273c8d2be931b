"""The package as users get it: a wheel built from the checkout, installed with pip into a fresh
virtualenv and with pipx, run from outside the source tree.

The wheel is built once per module from a copy of the checkout's files (tracked, and untracked but
not ignored), so the build leaves nothing in the work tree. Installing it fetches the dependencies
from the package index: without one the module is skipped, with a reason.
"""

from __future__ import annotations

import configparser
import json
import os
import shutil
import signal
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from packaging.requirements import Requirement

from tests.harness import ROOT, example_variables, free_port, wait_until

# One xdist worker for the module, and its fixtures (a wheel built, a virtualenv installed from
# it) session-scoped: spread over workers each built its own (68 s of setup three times over),
# and module-scoped they were built again each time the worker ran another module's tests
# between this module's (three setups of 52-70 s in one run).
pytestmark = pytest.mark.xdist_group("packaging")

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
NAME: str = PYPROJECT["project"]["name"]
VERSION: str = PYPROJECT["project"]["version"]
EXAMPLE = ROOT / "config.example.yaml"
SCHEMA_FILES = sorted((ROOT / "schemas").glob("*.json"))

INSTALL_TIMEOUT = 600  # seconds; PyPI is slow at times, and CI's first run has no cache
COMMAND_TIMEOUT = 60

# Variables that change what the installed command does; removed so it sees the example's defaults
# and no systemd, wherever the tests run.
CLEARED_VARIABLES = (
    "PYTHONPATH",
    "PYTHONHOME",
    "PYTHONSTARTUP",
    "PYTHONSAFEPATH",
    "VIRTUAL_ENV",
    "STATE_DIRECTORY",
    "NOTIFY_SOCKET",
    "WATCHDOG_USEC",
    "WATCHDOG_PID",
    "JOURNAL_STREAM",
    "INVOCATION_ID",
    *example_variables(),
)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CLEARED_VARIABLES}
    return {**env, **extra}


def run(
    args: list[str | Path],
    *,
    cwd: Path,
    timeout: float = COMMAND_TIMEOUT,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run a command; on failure, fail the test with its output (not just its exit code)."""
    try:
        return subprocess.run(
            [str(a) for a in args],
            cwd=cwd,
            env=dict(env) if env is not None else clean_env(),
            check=True,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.CalledProcessError as exc:
        pytest.fail(
            f"{' '.join(map(str, args))} exited with {exc.returncode}\n"
            f"--- stdout\n{exc.stdout}\n--- stderr\n{exc.stderr}",
            pytrace=False,
        )


def source_files() -> list[str]:
    """The checkout's files as a fresh clone plus the work in progress would have them."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        timeout=COMMAND_TIMEOUT,
    ).stdout.decode()
    # A tracked file deleted in the work tree is listed too: it is not part of the build.
    return sorted(p for p in listed.split("\0") if p and (ROOT / p).is_file())


def is_inside(path: Path, directory: Path) -> bool:
    return path.resolve().is_relative_to(directory.resolve())


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def index_reachable() -> None:
    """Skip the module when the package index cannot be reached (the build needs setuptools from
    it, the installs the dependencies)."""
    probe_args = ["index", "versions", "pip", "--timeout", "15", "--retries", "1"]
    probe = subprocess.run(
        [sys.executable, "-m", "pip", *probe_args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if probe.returncode != 0:
        pytest.skip(f"the package index is unreachable: {probe.stderr.strip()[-500:]}")


@pytest.fixture(scope="session")
def sources(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the checkout to build in: setuptools writes build/ and *.egg-info beside it."""
    copy = tmp_path_factory.mktemp("source") / "dingtalk-bridge"
    for name in source_files():
        (copy / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, copy / name)
    return copy


@pytest.fixture(scope="session")
def wheel(index_reachable: None, sources: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", out, sources],
        cwd=out,
        timeout=INSTALL_TIMEOUT,
    )
    built = list(out.glob("*.whl"))
    assert len(built) == 1, built
    return built[0]


@dataclass(frozen=True)
class Installed:
    venv: Path
    python: Path
    command: Path
    workdir: Path  # outside the checkout, where the commands run


@pytest.fixture(scope="session")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Installed:
    base = tmp_path_factory.mktemp("pip-install")
    venv = base / "venv"
    workdir = base / "work"
    workdir.mkdir()
    run([sys.executable, "-m", "venv", venv], cwd=base)
    python = venv / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", wheel], cwd=workdir, timeout=INSTALL_TIMEOUT)
    return Installed(venv, python, venv / "bin" / NAME, workdir)


# -- the wheel ---------------------------------------------------------------------------------


def test_wheel_holds_every_module_and_data_file(wheel: Path, sources: Path) -> None:
    assert wheel.name == f"{NAME.replace('-', '_')}-{VERSION}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as zf:
        names = set(zf.namelist())
        modules = {p.relative_to(sources).as_posix() for p in (sources / "bridge").rglob("*.py")}
        assert "bridge/__main__.py" in modules
        missing = sorted(modules - names)
        assert not missing, (
            f"modules missing from the wheel (a package not in pyproject?): {missing}"
        )
        assert "bridge/py.typed" in names

        # The schema and templates sit at the repository's top; the wheel has them in the package.
        templates = sorted((ROOT / "templates").glob("*.j2"))
        assert SCHEMA_FILES and templates
        data = {f"bridge/schemas/{p.name}": p for p in SCHEMA_FILES}
        data |= {f"bridge/templates/{p.name}": p for p in templates}
        for member, source in data.items():
            assert zf.read(member) == source.read_bytes(), member

        dist_info = f"{NAME.replace('-', '_')}-{VERSION}.dist-info"
        # Only the package and its metadata: no tests/, bench/ or stray top-level data.
        assert {n.split("/")[0] for n in names} == {"bridge", dist_info}
        scripts = configparser.ConfigParser()
        scripts.read_string(zf.read(f"{dist_info}/entry_points.txt").decode())
        assert dict(scripts["console_scripts"]) == {NAME: "bridge.cli.main:main"}
        metadata = zf.read(f"{dist_info}/METADATA").decode()
    assert f"Name: {NAME}\n" in metadata and f"Version: {VERSION}\n" in metadata
    declared = {str(Requirement(r)) for r in PYPROJECT["project"]["dependencies"]}
    required = {
        str(Requirement(line.split(":", 1)[1]))
        for line in metadata.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    assert required == declared


# -- pip install ---------------------------------------------------------------------------------


def test_the_installed_package_is_the_wheels(installed: Installed) -> None:
    shown = run(
        [installed.python, "-c", "import bridge, sys; print(bridge.__file__); print(sys.prefix)"],
        cwd=installed.workdir,
    ).stdout.splitlines()
    module, prefix = Path(shown[0]), Path(shown[1])
    assert is_inside(module, installed.venv / "lib"), module
    assert not is_inside(module, ROOT), module
    assert prefix.resolve() == installed.venv.resolve()
    # The command runs that interpreter, so it imports the same package.
    shebang = installed.command.read_text("utf-8").splitlines()[0]
    assert shebang == f"#!{installed.python}", shebang


def test_version(installed: Installed) -> None:
    result = run([installed.command, "--version"], cwd=installed.workdir)
    assert result.stdout.strip() == f"{NAME} {VERSION}"


def test_schema_prints_the_bundled_schema(installed: Installed) -> None:
    result = run([installed.command, "schema"], cwd=installed.workdir)
    assert [p.name for p in SCHEMA_FILES] == ["config.schema.json"]
    assert json.loads(result.stdout) == json.loads(SCHEMA_FILES[0].read_text("utf-8"))


def test_check_accepts_the_example_config(installed: Installed, tmp_path: Path) -> None:
    config = tmp_path / "config.example.yaml"
    shutil.copy2(EXAMPLE, config)
    result = run([installed.command, "check", "-c", config], cwd=installed.workdir)
    assert result.stdout.startswith(f"{config}: OK: 6 inputs, 6 rules, 2 targets"), result.stdout


class RunningDaemon:
    """`dingtalk-bridge run -c config.example.yaml --simulator ...` as the README's demo runs it,
    on free ports."""

    def __init__(self, installed: Installed, directory: Path) -> None:
        self.port, self.sim_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.sim_url = f"http://127.0.0.1:{self.sim_port}"
        text = EXAMPLE.read_text("utf-8")
        assert 'listen: "127.0.0.1:8060"' in text and "http://127.0.0.1:8061" in text
        text = text.replace("127.0.0.1:8060", f"127.0.0.1:{self.port}")
        text = text.replace("127.0.0.1:8061", f"127.0.0.1:{self.sim_port}")
        self.dir = directory
        self.config = directory / "config.example.yaml"
        self.config.write_text(text, "utf-8")
        (directory / "logs").mkdir()
        self.log_path = directory / "daemon.log"
        args = [
            installed.command,
            "run",
            "-c",
            self.config,
            "--simulator",
            f"127.0.0.1:{self.sim_port}",
        ]
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(
                [str(a) for a in args],
                cwd=installed.workdir,
                env=clean_env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def log(self) -> str:
        return self.log_path.read_text("utf-8", errors="replace")

    def up(self) -> bool:
        if self.proc.poll() is not None:
            raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.log()}")
        try:
            return requests.get(f"{self.url}/-/healthy", timeout=1).ok
        except requests.ConnectionError:
            return False

    def messages(self, token: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.sim_url}/_sim/messages", params={"token": token}, timeout=5)
        response.raise_for_status()
        found: list[dict[str, Any]] = response.json()["messages"]
        return found

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def daemon(installed: Installed, tmp_path: Path) -> Iterator[RunningDaemon]:
    running = RunningDaemon(installed, tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_the_installed_daemon_delivers_with_the_example_config(daemon: RunningDaemon) -> None:
    wait_until(daemon.up, timeout=30)

    # The README's three ways in: an Alertmanager notification, a CI webhook, a log line.
    alert = json.loads((ROOT / "examples" / "alertmanager-firing.json").read_text("utf-8"))
    # Made critical, as Alertmanager would send it, for rule "critical" (no group_wait).
    for labels in (alert["alerts"][0]["labels"], alert["commonLabels"]):
        labels["severity"] = "critical"
    response = requests.post(f"{daemon.url}/alertmanager", json=alert, timeout=10)
    assert response.ok, response.text
    response = requests.post(
        f"{daemon.url}/hooks/ci",
        json={"app": "pay", "branch": "main"},
        headers={"Authorization": "Bearer demo-ci-token"},
        timeout=10,
    )
    assert response.ok, response.text
    with (daemon.dir / "logs" / "app.log").open("a", encoding="utf-8") as log_file:
        log_file.write("2026-11-28 13:27:49 ERROR db.pool - connection refused\n")

    def robot_texts() -> list[str]:
        return [m["text"] for m in daemon.messages("demo-ops-token")]

    try:
        texts = wait_until(lambda: len(t := robot_texts()) >= 3 and t, timeout=30)
        notices = wait_until(lambda: daemon.messages("demo-app-key"), timeout=10)
    except AssertionError as exc:
        raise AssertionError(f"{exc}; robot got {robot_texts()}\n{daemon.log()}") from None
    assert len(texts) == 3, texts
    assert sum("DiskFull" in t for t in texts) == 1, texts  # templates/alertmanager.md.j2
    assert sum("pay failed on main" in t for t in texts) == 1, texts
    assert sum("connection refused" in t for t in texts) == 1, texts
    assert all("告警" in t for t in texts), texts  # the robot's keyword
    assert len(notices) == 1 and "DiskFull" in json.dumps(notices[0], ensure_ascii=False)

    assert daemon.stop() == 0, daemon.log()


# -- pipx install --------------------------------------------------------------------------------


def test_pipx_install(wheel: Path, tmp_path: Path) -> None:
    tools = tmp_path / "pipx-venv"
    run([sys.executable, "-m", "venv", tools], cwd=tmp_path)
    run(
        [tools / "bin" / "python", "-m", "pip", "install", "--quiet", "pipx"],
        cwd=tmp_path,
        timeout=INSTALL_TIMEOUT,
    )
    home, bin_dir, workdir = tmp_path / "pipx-home", tmp_path / "pipx-bin", tmp_path / "work"
    workdir.mkdir()
    env = clean_env(
        PIPX_HOME=str(home),
        PIPX_BIN_DIR=str(bin_dir),
        PIPX_MAN_DIR=str(tmp_path / "pipx-man"),
        USE_EMOJI="0",
    )
    run(
        [tools / "bin" / "pipx", "install", "--quiet", wheel],
        cwd=workdir,
        env=env,
        timeout=INSTALL_TIMEOUT,
    )

    command = bin_dir / NAME
    assert is_inside(command, home / "venvs" / NAME), command.resolve()
    result = run([command, "--version"], cwd=workdir, env=env)
    assert result.stdout.strip() == f"{NAME} {VERSION}"
    result = run([command, "schema"], cwd=workdir, env=env)
    assert json.loads(result.stdout) == json.loads(SCHEMA_FILES[0].read_text("utf-8"))
