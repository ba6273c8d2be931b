"""The shipped unit file passes `systemd-analyze verify` (no warnings either), and says what the
issue asks of it: Type=notify, reload by SIGHUP, a state directory, a user of its own, hardening."""

from __future__ import annotations

import configparser
import subprocess
import sys
from pathlib import Path

from tests.harness import required_tool

UNIT = Path(__file__).resolve().parent.parent / "packaging" / "systemd" / "dingtalk-bridge.service"


def test_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = required_tool("systemd-analyze", "systemd")
    # verify checks that ExecStart exists: point it at this interpreter, as an install would.
    text = UNIT.read_text("utf-8").replace(
        "/usr/local/bin/dingtalk-bridge", f"{sys.executable} -m bridge"
    )
    unit = tmp_path / "dingtalk-bridge.service"
    unit.write_text(text, "utf-8")
    done = subprocess.run([analyze, "verify", str(unit)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    problems = [line for line in done.stderr.splitlines() if unit.name in line]
    assert problems == []


def test_unit_declares_notify_reload_state_and_hardening() -> None:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text("utf-8"))
    service = parser["Service"]
    assert service["Type"] == "notify"
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert service["StateDirectory"] == "dingtalk-bridge"
    assert service["DynamicUser"] == "yes"
    assert service["WatchdogSec"]
    for hardening in ("NoNewPrivileges", "ProtectSystem", "ProtectHome", "PrivateTmp"):
        assert service[hardening] in ("yes", "strict"), hardening
    assert service["CapabilityBoundingSet"] == ""
    assert service["RestrictAddressFamilies"] == "AF_UNIX AF_INET AF_INET6"


def test_unit_gives_the_default_connection_limit_its_descriptors() -> None:
    # Under the unit's filter the daemon may not raise RLIMIT_NOFILE itself (see the unit).
    from bridge.app.fdlimit import RESERVED
    from bridge.config.model import DEFAULT_CONNECTION_LIMIT

    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(UNIT.read_text("utf-8"))
    assert int(parser["Service"]["LimitNOFILE"]) >= DEFAULT_CONNECTION_LIMIT + RESERVED + 256
