"""Every way a config can be wrong, as the operator sees it.

Table-driven: each tests/configs/bad/NAME.yaml is a small broken config and NAME.expected holds the
exact lines (Problem.format(), file shown as its base name, the fixture directory as "<dir>")
that `load_config` must report, in order. Add a case by adding a pair of files.

Secrets in the fixtures contain the word CANARY (inline, in bad/secrets/ files and in ENVIRON), so
one scan proves no problem message and no `check` output ever carries one.

tests/configs/bugs/ holds configs for bugs found by these tests whose exact message is free; their
tests assert the shape of the behaviour instead.
"""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bridge.config.compile import load_config
from bridge.config.yamlsource import load_document
from bridge.errors import ConfigError, Problem
from tests.harness import ROOT, bridge_cli, example_variables

CONFIGS = ROOT / "tests" / "configs"
BAD = CONFIGS / "bad"
BUGS = CONFIGS / "bugs"
EXAMPLE = ROOT / "config.example.yaml"

SECRET_MARK = "CANARY"
SECRET_KEYS = frozenset({"secret", "app_secret", "token", "webhook"})
# The environment every fixture is loaded with: nothing is read from the machine's environment.
ENVIRON: Mapping[str, str] = {
    "BRIDGE_TEST_OPS_WEBHOOK": "https://oapi.dingtalk.com/robot/send?CANARY-env-without-token=1",
}


def fixture_names() -> list[str]:
    return sorted(p.stem for p in BAD.glob("*.yaml"))


def fixture_params() -> list[Any]:
    return list(fixture_names())


def normalise(text: str, directory: Path) -> str:
    """Show fixture paths as base names and the fixture directory (in hints) as <dir>."""
    return text.replace(f"{directory}{os.sep}", "").replace(str(directory), "<dir>")


def load_problems(path: Path, environ: Mapping[str, str] = ENVIRON) -> list[Problem]:
    with pytest.raises(ConfigError) as info:
        load_config(path, environ=environ)
    return info.value.problems


def formatted(path: Path, environ: Mapping[str, str] = ENVIRON) -> list[str]:
    return [normalise(p.format(), path.parent) for p in load_problems(path, environ)]


def expected_lines(name: str) -> list[str]:
    return (BAD / f"{name}.expected").read_text("utf-8").splitlines()


def run_check(
    path: Path, extra_env: Mapping[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BRIDGE_TEST_")}
    for name in example_variables():
        env.pop(name, None)
    env.update(extra_env or {})
    return bridge_cli("check", "-c", str(path), env=env)


def _secret_values(node: Any, key: str | None = None) -> Iterator[str]:
    """String values under secret-bearing keys, wherever they sit in a loaded document."""
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _secret_values(v, str(k))
    elif isinstance(node, list):
        for item in node:
            yield from _secret_values(item, key)
    elif key in SECRET_KEYS and node is not None and not isinstance(node, bool):
        yield str(node)


def known_secrets(name: str) -> set[str]:
    """Every secret the fixture holds: inline values, secret files and ENVIRON."""
    values = {v for v in ENVIRON.values()}
    values |= {p.read_text("utf-8").strip() for p in (BAD / "secrets").iterdir()}
    # The bridge's own bounded loader: yaml.safe_load would expand the alias-bomb fixtures.
    doc, _ = load_document((BAD / f"{name}.yaml").read_text("utf-8"), name, {})
    data = doc.data  # None for the syntax-error fixtures: the CANARY scan still covers them
    values |= set(_secret_values(data))
    return {v for v in values if len(v) >= 6}


# -- the table --------------------------------------------------------------------------------


def test_fixture_table_is_complete() -> None:
    names = fixture_names()
    assert len(names) >= 25
    for name in names:
        assert (BAD / f"{name}.expected").is_file(), f"{name}.yaml has no .expected"
        assert expected_lines(name), f"{name}.expected is empty"
    orphans = {p.stem for p in BAD.glob("*.expected")} - set(names)
    assert not orphans, f".expected without .yaml: {sorted(orphans)}"


@pytest.mark.parametrize("name", fixture_params())
def test_bad_config_reports_expected_problems(name: str) -> None:
    assert formatted(BAD / f"{name}.yaml") == expected_lines(name)


@pytest.mark.parametrize("name", fixture_names())
def test_problems_are_sorted_by_line(name: str) -> None:
    problems = load_problems(BAD / f"{name}.yaml")
    positions = [(p.line or 0, p.column or 0) for p in problems]
    assert positions == sorted(positions)


@pytest.mark.parametrize("name", [n for n in fixture_names() if n.startswith("multi_problem")])
def test_multi_problem_file_reports_everything_at_once(name: str) -> None:
    problems = load_problems(BAD / f"{name}.yaml")
    assert len(problems) >= 10
    # Problems come from several sections of the file, not only the first bad one.
    sections = {p.path.split(".")[0].split("[")[0] for p in problems}
    assert {"targets", "inputs", "rules"} <= sections


def test_bad_duration_is_reported_where_it_is_written() -> None:
    # Holds today and after the fix of the double report (see XFAIL["bad_duration"]).
    problems = load_problems(BAD / "bad_duration.yaml")
    assert problems
    assert {(p.line, p.column, p.path) for p in problems} == {(5, 14, "targets.ops.timeout")}
    assert any("must be a duration" in p.message for p in problems)


def test_problem_format_without_position() -> None:
    assert Problem("c.yaml", None, None, "", "the file is empty", "hint").format() == (
        "c.yaml: the file is empty (hint)"
    )
    assert Problem("c.yaml", 3, None, "a.b", "bad").format() == "c.yaml:3: a.b: bad"


# -- secrets ----------------------------------------------------------------------------------


def test_secret_fixtures_exist() -> None:
    """The secret scan below must have secrets to look for, in several kinds of field."""
    holding = [n for n in fixture_names() if SECRET_MARK in (BAD / f"{n}.yaml").read_text("utf-8")]
    assert len(holding) >= 5
    text = "\n".join((BAD / f"{name}.yaml").read_text("utf-8") for name in holding)
    fields = {k for k in SECRET_KEYS if re.search(rf"^\s+{k}:.*{SECRET_MARK}", text, re.MULTILINE)}
    assert fields == SECRET_KEYS


@pytest.mark.parametrize("name", fixture_names())
def test_no_secret_in_any_problem(name: str) -> None:
    text = "\n".join(p.format() for p in load_problems(BAD / f"{name}.yaml"))
    assert SECRET_MARK not in text
    for secret in known_secrets(name):
        assert secret not in text


@pytest.mark.parametrize(
    "name",
    [
        "secret_wrong_type",
        "secret_required_wrong_type",
        "secret_file_conflict",
        "webhook_and_webhook_file",
        "webhook_not_a_url",
        "webhook_file_without_access_token",
        "env_webhook_without_access_token",
    ],
)
def test_check_never_prints_secrets(name: str) -> None:
    result = run_check(BAD / f"{name}.yaml", ENVIRON)
    assert result.returncode == 1
    assert "problem" in result.stderr
    assert SECRET_MARK not in result.stdout + result.stderr


# -- the CLI ----------------------------------------------------------------------------------


def test_check_reports_every_problem_of_a_multi_problem_file() -> None:
    path = BAD / "multi_problem_sections.yaml"
    expected = expected_lines("multi_problem_sections")
    result = run_check(path)
    assert result.returncode == 1
    assert result.stdout == ""
    lines = normalise(result.stderr, path.parent).splitlines()
    assert lines[0] == f"multi_problem_sections.yaml: {len(expected)} problems:"
    assert lines[1:] == [f"  {line}" for line in expected]


def test_check_accepts_the_example() -> None:
    result = run_check(EXAMPLE)
    assert result.returncode == 0, result.stderr
    assert re.fullmatch(
        rf"{re.escape(str(EXAMPLE))}: OK: \d+ inputs, \d+ rules, \d+ targets "
        r"\(sha256 [0-9a-f]{12}\)\n",
        result.stdout,
    )
    assert result.stderr == ""


# -- cases found as bugs, kept as regression tests ----------------------------------


@pytest.mark.parametrize("tag", ["int", "float", "timestamp"])
def test_explicit_tag_that_does_not_fit_is_a_problem(tag: str) -> None:
    problems = load_problems(BUGS / f"yaml_tag_{tag}.yaml")
    assert [(p.line, p.path) for p in problems][:1] == [(5, "targets.ops.secret")]
    assert SECRET_MARK not in "\n".join(p.format() for p in problems)


def test_check_on_explicit_tag_prints_no_traceback() -> None:
    result = run_check(BUGS / "yaml_tag_int.yaml")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert SECRET_MARK not in result.stdout + result.stderr


def test_unterminated_quote_points_at_its_start() -> None:
    problems = load_problems(BUGS / "yaml_unterminated_quote.yaml")
    assert len(problems) == 1
    assert problems[0].line == 4


@pytest.mark.parametrize("name", ["document_marker_only", "null_document"])
def test_document_without_content_is_explained(name: str) -> None:
    assert load_problems(BUGS / f"{name}.yaml")
    result = run_check(BUGS / f"{name}.yaml")
    assert result.returncode == 1
    assert " 0 problems" not in result.stderr


def test_merge_key_value_can_be_overridden() -> None:
    config = load_config(BUGS / "merge_key_override.yaml", environ={})
    ops2 = config.targets["ops2"]
    assert ops2.type == "robot"
    assert ops2.webhook.endswith("access_token=merge-ops2")
    assert ops2.timeout == 7.0


# -- inputs that used to traceback or run for long: refused quickly, with a located problem --------

HOSTILE = [
    "timezone_directory",
    "timezone_too_long",
    "yaml_too_deep",
    "yaml_alias_bomb",
    "yaml_merge_bomb",
    "yaml_alias_cycle",
    "merge_key_not_a_mapping",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_check_refuses_hostile_documents_without_a_traceback(name: str) -> None:
    # (bridge_cli's own timeout is the guard against a hang; the speed is not asserted here)
    result = run_check(BAD / f"{name}.yaml")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr and "Error:" not in result.stderr
    assert f"{name}.yaml:" in result.stderr and "internal error" not in result.stderr


def test_reload_refuses_an_alias_bomb_and_keeps_running(tmp_path: Path) -> None:
    from tests.harness import Daemon

    good = (BAD / "timezone_directory.yaml").read_text("utf-8").replace("America", "UTC")
    server = f'server: {{listen: "127.0.0.1:{{port}}"}}\nstate_dir: "{tmp_path / "state"}"\n'
    daemon = Daemon(server + good, directory=tmp_path)
    try:
        for name in ("yaml_alias_bomb", "yaml_too_deep", "timezone_directory"):
            daemon.config_path.write_text((BAD / f"{name}.yaml").read_text("utf-8"), "utf-8")
            answer = daemon.post("/-/reload", {})
            assert answer.status_code == 422, answer.text
            assert expected_lines(name)[0].split(": ", 1)[1] in "\n".join(answer.json()["problems"])
        assert daemon.post("/-/reload", {}).json()["result"] == "failed"
        assert daemon.proc.poll() is None
    finally:
        daemon.stop()
    assert "Traceback" not in daemon.log()
